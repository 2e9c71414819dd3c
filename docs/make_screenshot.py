"""Screenshot of the running demo for the README (Debian chromium through Playwright).

    python app.py &                                   # wait until it serves
    python docs/make_screenshot.py [URL] [--example N] [--scale S] [--out docs/screenshot.png]

Opens the page, picks example N, sets the scale, runs, waits until the three sliders are filled
(or the run ends with missing weights), and saves a full-page PNG.
"""
from __future__ import annotations

import argparse
import time

from playwright.sync_api import sync_playwright

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", nargs="?", default="http://127.0.0.1:7860/")
    parser.add_argument("--example", type=int, default=0, help="index in the examples gallery")
    parser.add_argument("--scale", default="3.3")
    parser.add_argument("--backbone", default=None, help="EDSR-baseline, RDN or SwinIR")
    parser.add_argument("--out", default="docs/screenshot.png")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds to wait for the run")
    args = parser.parse_args()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, args=ARGS, headless=True)
        page = browser.new_page(viewport={"width": args.width, "height": 1000})
        page.goto(args.url, wait_until="domcontentloaded")
        page.wait_for_selector("#run", timeout=120_000)
        page.locator("#examples button.gallery-item").nth(args.example).click()
        page.wait_for_selector("#input-image img", timeout=60_000)
        if args.backbone:
            page.locator(f"#backbone label:has-text('{args.backbone}')").click()
        scale = page.locator("#scale input[type=number]")
        scale.fill(args.scale)
        scale.press("Enter")
        page.locator("#run").click()
        deadline = time.monotonic() + args.timeout
        time.sleep(2)
        while time.monotonic() < deadline:  # done: the table has the last method's row, no progress bar
            table = page.inner_text("#results")  # empty until a run reports (the notes above it are not)
            idle = page.evaluate("() => { const t = document.querySelector('#info [data-testid=status-tracker]');"
                                 " return !t || t.classList.contains('hide'); }")
            if "LTE" in table and idle:
                break
            time.sleep(2)
        time.sleep(2)  # let the last images paint
        page.screenshot(path=args.out, full_page=True)
        browser.close()
    print(args.out)


if __name__ == "__main__":
    main()
