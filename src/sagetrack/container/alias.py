"""``import sagetrack`` inside a training job, without shadowing a package of that name.

The estimator ships the container side as ``_sagetrack_runtime`` (a name no user code
has), so a ``source_dir`` holding its own ``sagetrack`` package runs exactly as it would
without tracking. A script that uses sagetrack explicitly (``import sagetrack``,
``sagetrack.TrackingCallback``, ``sagetrack.log_metrics``) still works: the finder below
answers ``sagetrack`` and ``sagetrack.*`` with the runtime's modules unless the name
belongs to a package that is not sagetrack (one without sagetrack's container side). A
copy of sagetrack installed in the image is passed over the same way, so that the script
and the tracking share one recorder and one callback class.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from types import ModuleType
from typing import Any

__all__ = ["install"]

PUBLIC = "sagetrack"


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None  # a placeholder; exec_module replaces it in sys.modules

    def exec_module(self, module: ModuleType) -> None:
        # the import system returns whatever sys.modules holds under the name afterwards
        sys.modules[module.__name__] = importlib.import_module(self.target)


class _AliasFinder(importlib.abc.MetaPathFinder):
    def __init__(self, runtime: str) -> None:
        self.runtime = runtime

    def find_spec(self, fullname: str, path: Any = None, target: Any = None
                  ) -> importlib.machinery.ModuleSpec | None:
        if fullname == PUBLIC:
            if _someone_elses(fullname):
                return None
        elif not fullname.startswith(PUBLIC + ".") or \
                sys.modules.get(PUBLIC) is not sys.modules.get(self.runtime):
            return None
        real = self.runtime + fullname[len(PUBLIC):]
        if importlib.util.find_spec(real) is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(real))


def _someone_elses(name: str) -> bool:
    """Whether ``name`` on ``sys.path`` is a package other than sagetrack."""
    spec = importlib.machinery.PathFinder.find_spec(name, sys.path)
    if spec is None:
        return False
    for location in spec.submodule_search_locations or []:
        if os.path.isfile(os.path.join(location, "container", "bootstrap.py")):
            return False  # sagetrack itself (installed in the image): use the runtime
    return True


def install(runtime: str) -> None:
    """Let ``import sagetrack`` find ``runtime`` when nothing else has that name."""
    if runtime == PUBLIC or any(isinstance(f, _AliasFinder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _AliasFinder(runtime))
