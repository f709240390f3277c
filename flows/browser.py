"""Headless Chromium through Playwright: a page to PNG, with its console errors.

Playwright drives the system's Chromium (Debian's ``chromium`` package); it does not
download a browser of its own.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from frontends.errors import NnloomError

__all__ = ["chromium", "screenshot", "BrowserError"]

_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


class BrowserError(NnloomError):
    """No Chromium or Playwright, or the page could not be rendered."""


def chromium() -> str | None:
    for name in _CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def screenshot(page: Path, png: Path, *, width: int = 1100) -> list[str]:
    """Render ``page`` (whole height) into ``png``; returns the console's errors: uncaught
    exceptions, ``console.error`` messages and resources that failed to load."""
    exe = chromium()
    if exe is None:
        raise BrowserError("Chromium is not installed: apt-get install chromium")
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        raise BrowserError(
            "Playwright is not installed: pip install 'nnloom[test]' (or pip install playwright)"
        ) from None
    errors: list[str] = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=exe, args=["--no-sandbox"])
            try:
                tab = browser.new_page(viewport={"width": width, "height": 900})
                tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
                tab.on("pageerror", lambda e: errors.append(f"uncaught: {e}"))
                tab.goto(Path(page).resolve().as_uri(), wait_until="load")
                tab.screenshot(path=str(png), full_page=True)
            finally:
                browser.close()
    except Error as exc:
        raise BrowserError(f"Chromium could not render {page}: {exc}") from None
    return errors
