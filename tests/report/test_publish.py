"""``report.publish`` to S3 (moto): the site beside the records, a presigned link, and
later publications that rewrite only what changed."""

from __future__ import annotations

import re
import urllib.request
from urllib.parse import urlparse

from sagetrack import report

from ..support.records import open_store, write_run
from .conftest import RUNS, make_store


def fetch(url: str) -> tuple[str, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:  # moto on 127.0.0.1
        return response.headers["Content-Type"], response.read()


def test_publish_to_s3_shares_a_presigned_site_and_rewrites_only_changes(aws):
    uri = make_store(f"s3://{aws.bucket}/tracking")
    store = open_store(uri)
    first = report.publish(store, expires="2h")
    assert first.location == f"s3://{aws.bucket}/tracking/_site"
    keys = set(aws.list_keys("tracking/_site/"))
    for path in ("index.html", "share.html", "manifest.json", "data/runs.js", "data/meta.js",
                 "assets/uPlot.iife.min.js", "assets/uPlot.LICENSE",
                 *(f"data/run/{e}/{r}.js" for e, r in RUNS)):
        assert f"tracking/_site/{path}" in keys
    # the printed link: share.html, signed for 2 hours, served as HTML
    url = urlparse(first.url)
    assert url.path == f"/{aws.bucket}/tracking/_site/share.html" or \
        url.path == "/tracking/_site/share.html"
    assert "X-Amz-Expires=7200" in first.url
    ctype, page = fetch(first.url)
    assert ctype.startswith("text/html")
    # every file the page loads is a presigned URL too, with the type browsers require
    signed = dict(re.findall(r'"([a-z]+/[^"]+)":"(http[^"]+)"', page.decode()))
    assert set(signed) >= {"data/runs.js", "assets/report.css", "data/run/custom/loop-1.js"}
    ctype, body = fetch(signed["data/runs.js"].replace("\\u0026", "&"))
    assert ctype.startswith("text/javascript") and body.startswith(b'sagetrack.data("runs",')
    assert fetch(signed["assets/report.css"].replace("\\u0026", "&"))[0].startswith("text/css")
    # nothing changed: only the link is signed again
    assert report.publish(store).written == ["share.html"]
    write_run(uri, "resnet", "resnet-new", started="2024-05-06T09:00:00.000+00:00",
              ended="2024-05-06T09:10:00.000+00:00")
    assert sorted(report.publish(store).written) == [
        "data/meta.js", "data/run/resnet/resnet-new.js", "data/runs.js", "share.html"]
