"""Pulumi entry point: everything happens in stacks.platform.main."""

import pulumi

from stacks.platform import main
from stacks.settings import SettingsError

try:
    main()
except SettingsError as error:
    # RunError is how a Pulumi program stops cleanly: the CLI prints the one line, no traceback.
    raise pulumi.RunError(str(error)) from None
