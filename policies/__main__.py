"""CrossGuard entry point: `pulumi preview --policy-pack policies` runs this file.

Only this module constructs the PolicyPack (it starts a gRPC server and never returns); the rules
live in importable modules so the offline runner and the tests use the very same functions.
"""

import sys
from pathlib import Path

# The CLI runs this file from inside policies/: make `policies.*` importable as in the offline runner.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi_policy import PolicyPack

from policies.crossguard import PACK_NAME, build_policies

PolicyPack(name=PACK_NAME, policies=build_policies())
