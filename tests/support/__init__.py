"""Test support shared by the suite and the benches: each module one concern (see the module docs).

Installed as the top-level package `support` (setup.py; `make setup` runs `pip install -e .[dev]`), so bench/ imports
it with no `sys.path` edits; pytest finds the same files through tests/ (pytest.ini `pythonpath`).
"""
