"""The node's HTTP API (aiohttp + pydantic): `create_app(view, config)` returns the Application."""

from node.api.app import create_app
from node.api.config import ApiConfig

__all__ = ["ApiConfig", "create_app"]
