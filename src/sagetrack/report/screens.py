"""Screenshots of a generated report (runs, run and compare pages) with headless Chromium.

Drives the system's Chromium through Playwright (``pip install playwright``; no browser
download: Debian's ``chromium`` package, or ``browser=``).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError

__all__ = ["find_browser", "screenshots"]

BROWSERS = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")


def find_browser(browser: str | None = None) -> str:
    """Path of a Chromium to drive (``browser``, else the first of :data:`BROWSERS`)."""
    for candidate in (browser,) if browser else BROWSERS:
        path = shutil.which(candidate) if candidate else None
        if path:
            return path
    raise ConfigurationError(
        f"No Chromium found (looked for {browser or ', '.join(BROWSERS)}). Install one "
        "(Debian: apt-get install chromium) or pass browser='/path/to/chromium'.")


def _wait(page: Any, view: str) -> None:
    page.wait_for_selector(f"body[data-ready='{view}']", timeout=30_000)


def screenshots(site: str | Path, out_dir: str | Path, *, browser: str | None = None,
                width: int = 1400, height: int = 900) -> list[Path]:
    """Save ``runs.png``, ``run.png`` (the newest run) and ``compare.png`` (the two newest
    runs) of the report in folder ``site`` into ``out_dir``; returns the paths written."""
    index = Path(site).resolve() / "index.html"
    if not index.is_file():
        raise ConfigurationError(f"No report in {site}: {index} does not exist. Generate one "
                                 "with `sagetrack report -o DIR` first.")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        raise ConfigurationError("Screenshots need Playwright: pip install playwright (it "
                                 "drives the system's Chromium).") from exc
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=find_browser(browser))
        try:
            page = chromium.new_page(viewport={"width": width, "height": height})
            page.goto(index.as_uri() + "#runs")
            _wait(page, "runs")
            keys: list[str] = page.eval_on_selector_all(
                "tr[data-run]", "rows => rows.map(r => r.dataset.run)")
            shots = [("runs", "#runs")]
            if keys:
                shots.append(("run", f"#run/{keys[0]}"))
            if len(keys) > 1:
                shots.append(("compare", f"#compare?runs={keys[0]},{keys[1]}"))
            for name, route in shots:
                page.goto("about:blank")
                page.goto(index.as_uri() + route)
                _wait(page, name)
                path = out / f"{name}.png"
                page.screenshot(path=str(path), full_page=True)
                written.append(path)
        finally:
            chromium.close()
    return written
