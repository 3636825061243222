"""Replica of the Multiverse sample API."""
