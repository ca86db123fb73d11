"""Chat with a running `zhllama webui` in a real browser (Chromium through Playwright) and screenshot it.

A manual check, not part of the test suite (it needs a browser): the suite tests the web UI's
handlers and Gradio app in-process (tests/serve/); this shows the page works as a person uses it.

    apt-get install chromium fonts-noto-cjk      # the browser, and a font with Chinese glyphs
    python -m venv /tmp/pw && /tmp/pw/bin/pip install playwright
    zhllama webui --engine llamacpp --model model.gguf --port 7861 &
    /tmp/pw/bin/python scripts/webui_browser_check.py http://127.0.0.1:7861 webui.png

It types each message into the chat box, presses Enter, waits for the reply bubble, prints both
sides, and saves a full-page PNG.  Playwright's own browser download is not needed: it drives the
system Chromium (``--chromium``).
"""

from __future__ import annotations

import argparse
import time

MESSAGES = ["你好，请介绍一下你自己。", "今天天气怎么样？"]


def main() -> int:
    from playwright.sync_api import sync_playwright

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("url")
    ap.add_argument("png")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--settle", type=float, default=3.0, help="seconds to let a streamed reply finish")
    args = ap.parse_args()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1100, "height": 800})
        page.goto(args.url, wait_until="domcontentloaded", timeout=60_000)  # not networkidle: offline font requests hang
        box = page.get_by_role("textbox").first
        box.wait_for(timeout=60_000)
        bots = page.locator('[data-testid="bot"]')
        for i, message in enumerate(MESSAGES):
            box.fill(message)
            box.press("Enter")
            page.wait_for_function(f"document.querySelectorAll('[data-testid=\"bot\"]').length >= {i + 1}",
                                   timeout=120_000)
            time.sleep(args.settle)
            print(f"turn {i + 1}: user {message!r} -> model {bots.nth(i).inner_text()!r}")
        users, replies = page.locator('[data-testid="user"]').count(), bots.count()
        page.screenshot(path=args.png, full_page=True)
        browser.close()
    if users != len(MESSAGES) or replies != len(MESSAGES):
        print(f"expected {len(MESSAGES)} turns, saw {users} user and {replies} model bubbles")
        return 1
    print(f"saved {args.png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
