"""What a reader and an explorer see, checked in a real headless Chromium with no network.

* the built book's chapter page: the math is typeset, the charts are drawn by the local vega
  bundle, a chart's slider redraws it, and the page asks nothing of any host but ours;
* the marimo app: it starts, renders the recurrence widget, and moving the widget's slider
  changes the output it shows.

Skipped, with how to install one, where no Chromium is found; CI installs Debian's chromium.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = "t1_01_linear_attention_rnn"
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
                 "--no-first-run", "--disable-component-update", "--disable-sync"]
SHOTS = ROOT / "book" / "_build" / "screenshots"  # kept for a human to look at
# Jupyter Book 1 (with Sphinx 7.4) sets some extensions up twice, so every page declares
# sphinx-thebe's constants twice and loads MathJax twice; the second copy of each throws
# harmlessly (the first one works: the math assertions below check it). Nothing else may throw.
KNOWN_BOOK_ERRORS = ("Identifier 'THEBE_JS_URL' has already been declared", "Cannot set property Package of")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="no Chromium found: install Debian's with `apt-get install chromium` "
        "(or set CHROMIUM=/path/to/chrome); CI installs it",
    ),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def book_url():
    """Serve book/_build/html, building it from the committed notebooks if it is missing or stale."""
    html = ROOT / "book" / "_build" / "html"
    page = html / "chapters" / f"{CHAPTER}.html"
    sources = [*(ROOT / "notebooks").glob("*.ipynb"), *(ROOT / "book").glob("*.yml"), *(ROOT / "book").glob("*.md")]
    if not page.exists() or page.stat().st_mtime < max(p.stat().st_mtime for p in sources):
        subprocess.run([sys.executable, "-m", "lablib.chapters", "book", "--no-execute"], cwd=ROOT, check=True)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(html))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_book_chapter_renders_math_and_interactive_charts_offline(browser, book_url):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    foreign = []
    page.on("request", lambda r: None if r.url.startswith((book_url, "data:", "blob:")) else foreign.append(r.url))
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{book_url}/chapters/{CHAPTER}.html", wait_until="load")

    # Math: MathJax (served locally) replaced the TeX with SVG.
    page.wait_for_selector("mjx-container svg", timeout=30_000)
    assert page.locator("mjx-container").count() > 20
    # Charts: every static SVG was upgraded to a vega-embed view by the local bundle.
    charts = page.locator(".lablib-vega")
    assert charts.count() >= 5
    page.wait_for_function(
        "() => [...document.querySelectorAll('.lablib-vega')].every(d => d.querySelector('.vega-embed'))",
        timeout=30_000,
    )
    # The state explorer's slider is an Altair parameter: moving it redraws the chart, no kernel.
    explorer = page.locator(".lablib-vega", has=page.locator("input[type=range]")).first
    explorer.scroll_into_view_if_needed()
    before = explorer.screenshot()
    slider = explorer.locator("input[type=range]").first
    slider.evaluate("(el) => { el.value = el.max; el.dispatchEvent(new Event('input', {bubbles: true})); }")
    page.wait_for_timeout(500)
    assert explorer.screenshot() != before, "moving the chart's slider did not redraw it"

    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "book_chapter.png"), full_page=False)
    assert not foreign, f"the page requested other hosts: {foreign[:5]}"
    errors = [e for e in errors if not e.startswith(KNOWN_BOOK_ERRORS)]
    assert not errors, f"JavaScript errors on the page: {errors[:3]}"
    page.close()


@pytest.fixture(scope="module")
def marimo_url():
    port = free_port()
    app = ROOT / "notebooks" / "apps" / f"{CHAPTER}.py"
    proc = subprocess.Popen(
        [sys.executable, "-m", "marimo", "run", str(app), "--headless", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT / "notebooks", stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    deadline = time.time() + 60
    while time.time() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            break
        if proc.poll() is not None:
            pytest.fail(f"marimo exited early:\n{proc.stdout.read()}")
        time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("marimo did not start listening within 60 s")
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)
    proc.kill()


def output_values(page) -> list[str]:
    return page.locator(".ll-output [data-value]").evaluate_all("(els) => els.map(e => e.dataset.value)")


def test_marimo_app_widget_reacts_to_its_slider(browser, marimo_url):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(marimo_url, wait_until="load")
    # The app runs every cell on start (the timing cell takes a few seconds on 2 cores).
    slider = page.locator(".ll-step").first
    slider.wait_for(state="attached", timeout=180_000)
    slider.scroll_into_view_if_needed()
    page.wait_for_function("() => true")
    before = output_values(page)
    assert before, "the widget shows no output values"
    slider.evaluate("(el) => { el.value = el.max; el.dispatchEvent(new Event('input', {bubbles: true})); }")
    page.wait_for_timeout(500)
    after = output_values(page)
    assert after and after != before, "moving the widget's slider did not change the output it shows"
    # And the marimo-rendered Altair charts are there too (marimo bundles vega itself).
    assert page.locator("marimo-vega, .vega-embed").count() >= 3
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "marimo_app.png"))
    assert not errors, f"JavaScript errors in the app: {errors[:3]}"
    page.close()
