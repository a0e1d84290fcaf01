"""The AIWFE policy pack: rules as plain functions (engine.py) grouped by area (rules/), loaded by
CrossGuard (crossguard.py, from the folder's __main__.py) and by the offline runner (offline.py).

Self-contained: it imports only the standard library, `pulumi_policy` (engine and CrossGuard, on
use) and itself, with relative imports, so it runs as `aiwfe_policies` from a copy of the pack folder
and as `policies.aiwfe_policies` from the repository. `contract.py` holds the facts the program
shares with it.
"""
