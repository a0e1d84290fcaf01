"""CrossGuard entry point: `pulumi preview --policy-pack policies` runs this file.

The CLI runs it as `python <pack folder>`, which puts the pack folder first on `sys.path`: the
package `aiwfe_policies` beside this file is all it needs, so a copy of the folder alone (what
`pulumi policy publish` uploads) runs too. Only this module constructs the PolicyPack (it starts a
gRPC server and never returns); the rules live in the package, where the offline runner and the
tests use the very same functions.
"""

from aiwfe_policies.crossguard import PACK_NAME, build_policies
from pulumi_policy import PolicyPack

PolicyPack(name=PACK_NAME, policies=build_policies())
