"""The files sagetrack adds to the code tarball: its container side and ``sitecustomize.py``.

SageMaker copies ``dependencies`` to the root of ``sourcedir.tar.gz``; the toolkit puts
that folder first on the user process's ``PYTHONPATH``, so ``sitecustomize.py`` runs
before the user's script. Only the container side of sagetrack is shipped (stdlib +
boto3 + Keras imports), never the client or the CLI.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import threading
from pathlib import Path

__all__ = ["BOOTSTRAP_NAMES", "RUNTIME_PACKAGE", "bootstrap_paths"]

#: top-level names sagetrack adds to the tarball (excluded from the user code hash)
#: the container side ships under this private name, so that it can never collide with a
#: ``sagetrack`` package of the user's own; inside the job, ``import sagetrack`` gives it
#: unless the user's code has its own package of that name (``container/alias.py``)
RUNTIME_PACKAGE = "_sagetrack_runtime"
BOOTSTRAP_NAMES = frozenset({RUNTIME_PACKAGE, "sitecustomize.py"})

_PACKAGE = Path(__file__).resolve().parent.parent
_SHIPPED = ["__init__.py", "_version.py", "errors.py", "_redact.py", "_threads.py", "settings.py",
            "py.typed",
            "store/__init__.py", "store/backends.py", "store/layout.py", "store/schema.py"]
_lock = threading.Lock()
_staged: list[str] = []


def bootstrap_paths() -> list[str]:
    """Paths to pass as extra ``dependencies``:
    ``[<tmp>/_sagetrack_runtime, <tmp>/sitecustomize.py]``."""
    with _lock:
        if _staged and all(Path(p).exists() for p in _staged):
            return list(_staged)
        root = Path(tempfile.mkdtemp(prefix="sagetrack-bootstrap-"))
        atexit.register(shutil.rmtree, root, True)
        package = root / RUNTIME_PACKAGE
        names = _SHIPPED + sorted(
            f"container/{p.name}" for p in (_PACKAGE / "container").glob("*.py")
            if p.name != "sitecustomize.py")
        for name in names:
            target = package / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(_PACKAGE / name, target)
        shutil.copyfile(_PACKAGE / "container" / "sitecustomize.py", root / "sitecustomize.py")
        _staged[:] = [str(package), str(root / "sitecustomize.py")]
        return list(_staged)
