"""Talking HTTP to the API: one client (client.py) and the parts it is made of, one concept per module."""

from .client import Answer, ApiClient, Response
from .session import ClientSettings

__all__ = ["Answer", "ApiClient", "ClientSettings", "Response"]
