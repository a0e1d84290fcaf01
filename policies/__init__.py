"""The policy pack's folder (what `--policy-pack policies` takes). The pack itself is the package
`aiwfe_policies`; this file only lets the program import its stdlib-only facts as
`policies.aiwfe_policies.contract` from the repository root."""
