"""Stack settings and the wiring of components for one stack."""
