"""End-to-end in a real browser: Debian's chromium driven by Playwright (no browser download).

Opens the demo, picks an example, sets ×3.3, runs, and checks that the three image sliders are
filled with PNGs and the table lists every method. Skipped when chromium or Playwright is missing
(CI installs both: see .ci/run).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

pytest.importorskip("gradio")
sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the Python package)")

from app_server import shared_server  # noqa: E402

CHROMIUM = os.environ.get("HIIF_TEST_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 240_000


@pytest.fixture(scope="module")
def browser():
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)) and not shutil.which(CHROMIUM):
        pytest.skip(f"chromium not found at {CHROMIUM} (apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="module")
def server():
    return shared_server()


def test_example_at_3_3_fills_the_three_sliders(browser, server, tmp_path):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(server.url, wait_until="domcontentloaded", timeout=TIMEOUT_MS)
        page.wait_for_selector("#run", timeout=TIMEOUT_MS)
        assert "weights: 9 of 9 models installed" in page.inner_text("body")

        page.locator("#examples button.gallery-item").first.click()
        page.wait_for_selector("#input-image img", timeout=60_000)
        # before any run, the page says what Run will render (the default scale is 4)
        page.wait_for_function("document.querySelector('#info').innerText.includes('32×24 → 128×96')",
                               timeout=60_000)

        scale = page.locator("#scale input[type=number]")
        scale.fill("3.3")
        scale.press("Enter")
        page.locator("#run").click()

        for key in ("bicubic", "liif", "lte"):
            page.wait_for_function(
                f"[...document.querySelectorAll('#slider-{key} img')].filter(i => i.complete && "
                "i.naturalWidth > 0).length >= 2", timeout=TIMEOUT_MS)
            sources = page.eval_on_selector_all(f"#slider-{key} img", "els => els.map(e => e.src)")
            assert len(sources) == 2 and all(".png" in s for s in sources), sources
            sizes = page.eval_on_selector_all(f"#slider-{key} img",
                                              "els => els.map(e => [e.naturalWidth, e.naturalHeight])")
            assert sizes == [[106, 79], [106, 79]], sizes  # 32×24 example at ×3.3

        info = page.inner_text("#info")
        assert "×3.3" in info and "32×24 → 106×79" in info, info
        # the table is streamed too, and may reach the page after the sliders (a clean-clone run
        # beside a training job read it with HIIF and Bicubic only)
        page.wait_for_function(
            "['HIIF', 'Bicubic', 'LIIF', 'LTE'].every(m => "
            "document.querySelector('#results').innerText.includes(m))", timeout=TIMEOUT_MS)
        # the results stream in: the last update adds the final PNGs to the downloads
        page.wait_for_function(
            "(document.querySelector('#downloads').innerText.match(/[.]png/g) || []).length >= 4",
            timeout=TIMEOUT_MS)

        # the zoom animation of the same image and scale, HIIF against LIIF
        page.locator("#zoom-versus label", has_text="LIIF").click()
        page.locator("#zoom").click()
        page.wait_for_function("document.querySelector('#zoom-file').innerText.includes('.webp')",
                               timeout=TIMEOUT_MS)
        note = page.inner_text("#zoom-note")
        assert "against LIIF" in note and "×3.30" in note and "24 frames" in note, note
        assert not errors, errors
    except Exception:
        page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
        print(f"screenshot: {tmp_path / 'failure.png'}\napp log:\n{server.log_tail()}")
        raise
    finally:
        page.close()
