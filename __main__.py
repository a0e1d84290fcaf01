"""Pulumi entry point: everything happens in stacks.platform.main."""

from stacks.platform import main

main()
