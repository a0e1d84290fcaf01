"""Reusable Pulumi ComponentResources of the AIWFE platform (one component per module)."""
