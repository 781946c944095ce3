"""The generated site in headless Chromium, opened from disk as a person would open it:
no console errors, no request leaves file://, the table sorts and filters, charts draw."""

from __future__ import annotations

import concurrent.futures
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sagetrack import report

from .conftest import HOSTILE, RUNS, make_store

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)")
sync_api = pytest.importorskip("playwright.sync_api",
                               reason="Playwright is not installed (pip install playwright)")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("report")
    uri = make_store(str(base / "store"))
    return Path(report.build(uri, base / "site").location)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM)
        yield chromium
        chromium.close()


class Page:
    """A page of the site that records console errors and every request it makes."""

    def __init__(self, browser: Any, site: Path) -> None:
        self.site = site
        self.page = browser.new_page(viewport={"width": 1300, "height": 900})
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error"
                     else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))

    def open(self, route: str, view: str) -> Any:
        self.page.goto((self.site / "index.html").as_uri() + route)
        self.page.wait_for_selector(f"body[data-ready='{view}']", timeout=15_000)
        return self.page

    def ids(self) -> list[str]:
        return self.page.eval_on_selector_all("tr[data-run]", "rs => rs.map(r => r.dataset.run)")

    def wait_rows(self, count: int) -> None:
        """Wait until the table shows ``count`` rows (the filter applies after typing)."""
        deadline = time.monotonic() + 30  # a loaded machine types and draws slowly
        while len(self.ids()) != count and time.monotonic() < deadline:
            self.page.wait_for_timeout(50)
        assert len(self.ids()) == count

    def check(self) -> None:
        assert self.errors == []
        assert [u for u in self.requests if not u.startswith("file://")] == []
        assert self.page.evaluate("window.__pwned") is None


@pytest.fixture
def page(browser: Any, site: Path) -> Iterator[Page]:
    p = Page(browser, site)
    yield p
    p.page.close()


def test_runs_page_sorts_filters_selects_and_keeps_it_in_the_url(page):
    pg = page.open("#runs", "runs")
    assert sorted(page.ids()) == sorted(f"{e}/{r}" for e, r in RUNS)
    pg.click("th[data-key='final.val_loss']")
    assert page.ids()[:2] == ["resnet/resnet-b", "resnet/resnet-a"]  # 0.5, 0.55, ...
    assert page.ids()[-1] == "custom/loop-1"
    pg.click("th[data-key='final.val_loss']")
    assert page.ids()[:2] == ["resnet/evil-1", "resnet/resnet-live"]  # 0.9, 0.7, ...
    assert page.ids()[-1] == "custom/loop-1"  # no val_loss: last either way
    pg.fill("input.filter", "status=running")
    page.wait_rows(1)
    assert page.ids() == ["resnet/resnet-live"]
    assert pg.inner_text("tr[data-run] .status").startswith("running")
    pg.fill("input.filter", "learning-rate<0.1")
    page.wait_rows(2)
    pg.check("tr[data-run='resnet/resnet-b'] input[type=checkbox]")
    url = pg.url
    assert "sort=-final.val_loss" in url and "sel=resnet%2Fresnet-b" in url
    pg.goto("about:blank")
    pg.goto(url)  # a shared link opens the same view
    pg.wait_for_selector("body[data-ready='runs']")
    assert pg.input_value("input.filter") == "learning-rate<0.1"
    assert page.ids() == ["resnet/resnet-live", "resnet/resnet-b"]  # still sorted
    assert pg.is_checked("tr[data-run='resnet/resnet-b'] input[type=checkbox]")
    assert pg.inner_text("button.primary") == "Compare 1 selected"
    page.check()
    pg = page.open("#runs?x=params.learning-rate&y=final.val_loss", "runs")
    assert pg.eval_on_selector(".scatter .uplot", "c => c.dataset.series") == "1"
    assert "4 runs with both values" in pg.inner_text(".scatter")
    page.check()


def test_run_page_draws_every_curve_and_shows_record_text_as_text(page):
    pg = page.open("#run/resnet/resnet-b", "run")
    charts = pg.eval_on_selector_all(".uplot", "cs => cs.map(c => [c.querySelector('.u-title')"
                                                ".textContent, c.dataset.series])")
    # per epoch: loss and accuracy (each with its val_ curve); per batch: loss
    assert charts == [["loss", "2"], ["accuracy", "2"], ["loss", "1"]]
    assert "algo-2" in pg.inner_text("#environment")
    assert "+print('lr 0.05')" in pg.inner_text("pre.diff")
    page.check()
    pg = page.open("#run/resnet/evil-1", "run")
    assert HOSTILE.split("\u2028")[0] in pg.inner_text("#failure")
    assert pg.query_selector("img[src=x]") is None
    page.check()
    pg = page.open("#run/custom/loop-1", "run")
    titles = pg.eval_on_selector_all(".u-title", "ts => ts.map(t => t.textContent)")
    assert sorted(titles) == ["disc_loss", "gen_loss"]
    page.check()


def test_compare_page_overlays_the_selected_runs(page):
    pg = page.open("#compare?runs=resnet/resnet-a,resnet/resnet-b,resnet/resnet-live",
                   "compare")
    series = pg.eval_on_selector_all(".uplot", "cs => cs.map(c => c.dataset.series)")
    assert series == ["3"] * 4  # loss, val_loss, accuracy, val_accuracy: one curve per run
    assert "learning-rate" in pg.inner_text("#values")
    page.check()
    pg = page.open("#compare?runs=resnet/resnet-a,resnet/resnet-b", "compare")
    assert "Hyperparameters" in pg.inner_text("#diff")  # sagetrack diff resnet-a resnet-b
    page.check()


def test_screenshots_of_the_three_pages(site, tmp_path):
    if not shutil.which("chromium"):
        pytest.skip("chromium is not on PATH")
    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # outside this module's browser
        paths = pool.submit(report.screenshots, site, tmp_path / "shots").result()
    assert [p.name for p in paths] == ["runs.png", "run.png", "compare.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths)


def test_the_shared_link_of_an_s3_site_opens_every_page(browser, aws):
    uri = make_store(f"s3://{aws.bucket}/tracking")
    shared = report.publish(uri)
    page = Page(browser, Path("/unused"))
    pg = page.page
    pg.goto(shared.url)  # a presigned URL (moto on 127.0.0.1)
    pg.wait_for_selector("body[data-ready='runs']", timeout=15_000)
    assert len(page.ids()) == len(RUNS)
    pg.click("a[href='#run/resnet/resnet-b']")
    pg.wait_for_selector("body[data-ready='run']", timeout=15_000)
    assert pg.eval_on_selector_all(".uplot", "cs => cs.length") == 3
    assert page.errors == []
    assert {u.split("/")[2] for u in page.requests} == {shared.url.split("/")[2]}
    pg.close()


def test_a_watched_report_redraws_each_time_it_is_regenerated(browser, tmp_path, monkeypatch):
    from sagetrack.api import Store
    from sagetrack.report import site as site_module
    from sagetrack.report.target import Target

    from ..support.records import write_run

    # every generation within one second: the page must tell them apart by their content
    monkeypatch.setattr(site_module, "now_iso", lambda: "2024-05-03T10:00:00Z")
    uri = make_store(str(tmp_path / "store"))
    target = Target.folder(tmp_path / "site")
    site_module.generate(Store(uri), target, watch=1.0)
    page = Page(browser, tmp_path / "site")
    pg = page.open("#runs?q=resnet-live", "runs")
    assert page.ids() == ["resnet/resnet-live"]
    assert pg.inner_text("tr[data-run] .status").startswith("running")

    def regenerate(run_id: str, status: str) -> None:
        write_run(uri, "resnet", run_id, status=status, losses=[0.7, 0.6, 0.5],
                  started="2024-05-03T09:00:00.000+00:00",
                  ended=None if status == "running" else "2024-05-03T10:00:00.000+00:00")
        assert f"data/run/resnet/{run_id}.js" in \
            site_module.generate(Store(uri), target, watch=1.0).written

    wait = 30_000  # the page polls every 2 s; a loaded machine is slow
    regenerate("resnet-live-2", "running")  # a second run starts
    pg.wait_for_function("() => document.querySelectorAll('tr[data-run]').length === 2",
                         timeout=wait)
    regenerate("resnet-live", "completed")  # the first one ends
    pg.wait_for_function("() => { const cell = document.querySelector(\"tr[data-run="
                         "'resnet/resnet-live'] .status\"); return cell !== null && "
                         "cell.textContent.startsWith('completed'); }", timeout=wait)
    assert pg.input_value("input.filter") == "resnet-live"  # the view kept its state
    assert pg.eval_on_selector_all("main > *", "vs => vs.length") == 1  # one drawing
    page.check()
    pg.close()
