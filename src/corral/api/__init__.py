"""HTTP: the vmpooler-compatible REST API."""

from corral.api.app import create_app

__all__ = ["create_app"]
