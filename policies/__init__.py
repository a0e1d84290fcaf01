"""The AIWFE policy pack: rules as plain functions (engine.py), grouped by area (kubernetes.py),
loaded by CrossGuard (__main__.py) and by the offline runner (offline.py)."""
