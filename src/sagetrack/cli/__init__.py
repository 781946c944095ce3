"""The ``sagetrack`` command line (client side): ``main(argv) -> exit status``."""

from __future__ import annotations

from .main import main

__all__ = ["main"]
