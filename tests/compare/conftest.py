"""Fixtures for the comparison API tests."""

from __future__ import annotations

from .factory import store_uri

__all__ = ["store_uri"]
