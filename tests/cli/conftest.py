"""Fixtures for the CLI tests."""

from __future__ import annotations

from ..compare.factory import store_uri

__all__ = ["store_uri"]
