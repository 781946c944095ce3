"""Fixtures for the user API (sagetrack.Store, sagetrack.Run, plots) tests."""

from __future__ import annotations

from ..support.records import store_uri

__all__ = ["store_uri"]
