"""The slides and the site (tools/publish.py) in headless Chromium, served from a local folder with
every request to another host blocked and counted: a deck initialises reveal.js, shows the lesson's
title and advances with the arrow key; the site's index links to a lesson, whose page renders its
math with MathJax, shows its figures and leads to the next lesson.

reveal.js and MathJax come from tools/web/node_modules (`make web-assets`, which `make browser`
runs first). Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import functools
import http.server
import importlib.util
import sys
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from .conftest import skip_or_fail

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
DECK = "00_welcome"  # a short lesson
SITE = ["00_welcome", "02_tokens_embeddings_qkv"]  # the second has figures and equations
LOCAL_HOSTS = {"127.0.0.1", "localhost"}


def _publish():
    tools = REPO / "tools"
    sys.path.insert(0, str(tools))
    spec = importlib.util.spec_from_file_location("publish", tools / "publish.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def served(tmp_path_factory, chromium_path):
    """The deck and a two-lesson site, built into a temporary folder served on 127.0.0.1."""
    publish = _publish()
    for package in ("reveal.js", "mathjax"):
        if not (publish.NODE_MODULES / package / "package.json").is_file():
            skip_or_fail(f"{publish.NODE_MODULES / package} is missing: run `make web-assets`")
    root = tmp_path_factory.mktemp("publish")
    publish.build_slides(root / "slides", [NOTEBOOKS / f"{DECK}.ipynb"])
    publish.build_site(root / "site", [NOTEBOOKS / f"{n}.ipynb" for n in SITE])
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def offline_page(browser):
    """A page whose requests to any host but this machine are aborted and counted; failed local
    requests (404s) are recorded too."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(20_000)
    blocked: list[str] = []
    failed: list[str] = []

    def route(r):
        url = urlsplit(r.request.url)
        if url.scheme in ("http", "https", "ws", "wss") and url.hostname not in LOCAL_HOSTS:
            blocked.append(r.request.url)
            return r.abort()
        return r.continue_()

    context.route("**/*", route)
    pg = context.new_page()
    pg.on("response", lambda resp: failed.append(f"{resp.status} {resp.url}") if resp.status >= 400 else None)
    pg.blocked, pg.failed = blocked, failed
    yield pg
    context.close()


def _no_favicon(failed: list[str]) -> list[str]:
    return [f for f in failed if not f.endswith("/favicon.ico")]


def test_a_deck_renders_and_advances(offline_page, served, artifacts):
    pg = offline_page
    pg.goto(f"{served}/slides/{DECK}.slides.html")
    pg.wait_for_function("window.Reveal && Reveal.isReady()")
    assert pg.evaluate("Reveal.getIndices()")["h"] == 0
    title = pg.locator(".reveal .slides section.present h1").first
    assert "Welcome" in title.text_content()  # the text as written (the theme shows it in capitals)
    assert pg.evaluate("Reveal.getTotalSlides()") > 5
    pg.screenshot(path=str(artifacts / "slides-first.png"))
    pg.keyboard.press("ArrowRight")
    pg.wait_for_function("Reveal.getIndices().h === 1")
    assert pg.locator(".reveal .slides section.present").first.is_visible()
    pg.screenshot(path=str(artifacts / "slides-second.png"))
    assert pg.blocked == [], f"requests to other hosts: {pg.blocked}"
    assert _no_favicon(pg.failed) == [], f"missing files: {pg.failed}"


def test_the_site_navigates_with_math_and_figures(offline_page, served, artifacts):
    pg = offline_page
    pg.goto(f"{served}/site/index.html")
    assert pg.locator("table a").count() == len(SITE)
    pg.locator(f'table a[href="{SITE[0]}.html"]').click()
    pg.wait_for_url(f"**/{SITE[0]}.html")
    assert "Welcome" in pg.locator("h1").first.inner_text()
    pg.locator("nav.course-nav a[rel=next]").first.click()
    pg.wait_for_url(f"**/{SITE[1]}.html")
    # MathJax 2 (CommonHTML output) has typeset the equations
    pg.wait_for_selector(".MathJax_CHTML", state="attached")
    assert pg.locator(".MathJax_CHTML").count() > 5
    assert pg.locator("script[type^='math/tex']").count() == pg.locator(".MathJax_CHTML").count()
    widths = pg.evaluate(
        "Array.from(document.querySelectorAll('.jp-OutputArea-output img')).map(i => i.naturalWidth)"
    )
    assert widths and all(w > 0 for w in widths), widths
    pg.screenshot(path=str(artifacts / "site-lesson.png"))
    assert pg.locator("nav.course-nav a[rel=prev]").first.get_attribute("href") == f"{SITE[0]}.html"
    pg.locator("nav.course-nav a[href='index.html']").first.click()
    pg.wait_for_url("**/index.html")
    assert pg.blocked == [], f"requests to other hosts: {pg.blocked}"
    assert _no_favicon(pg.failed) == [], f"missing files: {pg.failed}"
