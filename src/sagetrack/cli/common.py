"""What every ``sagetrack`` command shares: output, errors, and opening the store."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from .. import settings
from ..api import Store, default_uri
from ..errors import SagetrackError

__all__ = ["CommandError", "_err", "_json", "_out", "_quiet_sagemaker", "_store", "_uri"]


class CommandError(SagetrackError):
    """A command cannot do what was asked; the message says why (exit status 1)."""


# -- helpers -------------------------------------------------------------------------------
def _printable(text: str) -> str:
    # a record may hold lone surrogates (valid JSON escapes, not encodable text)
    return text.encode("utf-8", "replace").decode("utf-8")


def _out(text: str) -> None:
    text = _printable(text)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def _err(text: str) -> None:
    sys.stderr.write(f"sagetrack: {_printable(text)}\n")


def _json(value: Any) -> None:
    _out(json.dumps(value, indent=2, default=str))


def _quiet_sagemaker() -> None:
    """Keep the SDK's import-time banners off stdout (they would break ``--json``)."""
    os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    config_log = logging.getLogger("sagemaker.config")
    if not config_log.handlers:  # else the SDK adds a stdout handler at import
        config_log.addHandler(logging.StreamHandler(sys.stderr))
    config_log.setLevel(logging.WARNING)


def _uri(args: argparse.Namespace) -> str:
    if args.uri:
        return str(args.uri)
    if settings.URI.get():
        return settings.URI.get()
    _quiet_sagemaker()
    try:
        return default_uri()
    except SagetrackError:
        raise
    except Exception as exc:  # no credentials or region: say how to choose a store
        raise CommandError(
            "Cannot find the default store (the SageMaker session's default bucket): "
            f"{type(exc).__name__}: {exc}. Pass --uri or set SAGETRACK_URI.") from exc


def _store(args: argparse.Namespace) -> Store:
    store = Store(_uri(args))
    if not store.uri.startswith("s3://") and not Path(store.uri).is_dir():
        raise CommandError(f"No store at {store.uri}: the folder does not exist. Pass --uri "
                           "or set SAGETRACK_URI.")
    return store
