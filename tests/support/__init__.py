"""Test support shared by the suite and bench/chaos.py: each module one concern (see the module docs)."""
