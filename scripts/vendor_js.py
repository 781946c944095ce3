"""Vendor the report's JavaScript charting library (uPlot) into the package.

``sagetrack report`` writes a site that works offline, so the charting library ships
inside sagetrack (``src/sagetrack/report/assets/``) rather than being loaded from a CDN.
This script fetches the pinned release from the npm registry with ``npm pack``, checks
its integrity hash, and copies the browser build, its stylesheet and its licence::

    python scripts/vendor_js.py            # re-vendor the pinned version
    python scripts/vendor_js.py --check    # verify the committed files match the release

To upgrade: change ``VERSION`` and ``INTEGRITY`` (``npm view uplot@X dist.integrity``),
run the script, review the diff, and run ``pytest tests/report``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PACKAGE = "uplot"
VERSION = "1.6.32"
#: the registry's ``dist.integrity`` of uplot-1.6.32.tgz
INTEGRITY = ("sha512-KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IKTXImkbLgkMy+jabjLgSLMasNuGGzQm"
             "/ep3tOkyTxpiQIw==")
#: file in the npm tarball -> name in the assets folder
FILES = {
    "package/dist/uPlot.iife.min.js": "uPlot.iife.min.js",
    "package/dist/uPlot.min.css": "uPlot.min.css",
    "package/LICENSE": "uPlot.LICENSE",
}
ASSETS = Path(__file__).resolve().parent.parent / "src" / "sagetrack" / "report" / "assets"


def _integrity(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def fetch() -> dict[str, bytes]:
    """The wanted files of ``uplot@VERSION``, from a tarball whose integrity was checked."""
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("npm is needed to fetch the package (apt-get install npm).")
    with tempfile.TemporaryDirectory(prefix="sagetrack-vendor-") as tmp:
        out = subprocess.run([npm, "pack", f"{PACKAGE}@{VERSION}", "--json",
                              "--pack-destination", tmp], capture_output=True, text=True,
                             check=True, timeout=300).stdout
        name = json.loads(out)[0]["filename"]
        data = (Path(tmp) / name).read_bytes()
    if _integrity(data) != INTEGRITY:
        raise SystemExit(f"{name}: integrity {_integrity(data)} is not the pinned {INTEGRITY}")
    files: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member, target in FILES.items():
            extracted = tar.extractfile(member)
            if extracted is None:
                raise SystemExit(f"{name} has no file {member}")
            files[target] = extracted.read()
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="compare the committed files with the release; write nothing")
    args = parser.parse_args(argv)
    files = fetch()
    if args.check:
        stale = [n for n, data in files.items() if not (ASSETS / n).is_file()
                 or (ASSETS / n).read_bytes() != data]
        print("stale: " + ", ".join(stale) if stale else f"{PACKAGE} {VERSION}: up to date")
        return 1 if stale else 0
    ASSETS.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (ASSETS / name).write_bytes(data)
        print(f"wrote {ASSETS / name} ({len(data):,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
