"""``authtriage serve``: the upload page and the API."""

from .app import Settings, create_app

__all__ = ["Settings", "create_app"]
