"""The browser view of a store: a static site, no server (``sagetrack report``).

::

    from sagetrack import report
    site = report.build("s3://my-bucket/sagetrack", "site")      # a folder; open site.url
    shared = report.publish("s3://my-bucket/sagetrack")           # <store>/_site/ + a link
    report.screenshots("site", "shots")                            # PNGs of the three pages

Three pages, chosen by the URL hash: the runs table (sortable, filterable, columns to
choose, runs to select), one run (everything it recorded, learning curves) and a
comparison of selected runs (overlaid curves, ``sagetrack diff``, a table of values).
The site works opened from disk, offline: its scripts (uPlot, vendored) and data are
files beside the pages. See ``docs/report.md``.
"""

from __future__ import annotations

from .build import build, parse_expires, publish, watch
from .screens import screenshots
from .site import SiteResult

__all__ = ["SiteResult", "build", "parse_expires", "publish", "screenshots", "watch"]
