"""Offline-render benchmark: `python -m bench.render` (or `make bench`).

Kept empty of imports on purpose: the measuring child (`python -m bench.child`) is imported through
this package, and anything imported here would be charged to every measurement.
"""
