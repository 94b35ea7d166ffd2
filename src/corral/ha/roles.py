"""What one ``corral serve`` process does when several share one Redis store."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    ALL = "all"  # answers the API and runs pools (the only role on sqlite)
    API = "api"  # answers the API from the store; the managers run the pools
    MANAGER = "manager"  # runs the pools it holds the lease of; no API
