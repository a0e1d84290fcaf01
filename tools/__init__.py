"""Project tooling: offline render (render.py)."""
