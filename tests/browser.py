"""Driving the app in a real headless Chromium (Playwright), for the browser test and the
README screenshots.

Playwright's own browser download is not needed: the system's Chromium is used (Debian:
`apt-get install chromium`), found on PATH or through the CHROMIUM environment variable.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Page, Playwright

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
INSTALL_HINT = "install Chromium (Debian/Ubuntu: `apt-get install chromium`) or set CHROMIUM=path"
VIEWPORT = {"width": 1400, "height": 1000}


def find_chromium() -> str | None:
    """The Chromium executable: $CHROMIUM, else `chromium` or `chromium-browser` on PATH."""
    explicit = os.environ.get("CHROMIUM")
    if explicit:
        return explicit if Path(explicit).is_file() else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


def open_browser(playwright: Playwright, user_data_dir: Path) -> BrowserContext:
    """A headless Chromium with a fresh profile in `user_data_dir`."""
    executable = find_chromium()
    if executable is None:
        raise RuntimeError(f"no Chromium found: {INSTALL_HINT}")
    return playwright.chromium.launch_persistent_context(
        str(user_data_dir),
        executable_path=executable,
        headless=True,
        args=CHROMIUM_ARGS,
        viewport=VIEWPORT,
    )


def paint_stroke(page: Page, editor_selector: str = "#mask-editor") -> None:
    """Drag the brush across the middle of the ImageEditor's picture.

    The drawing canvas is wider than the picture (which is centred in it), so the stroke stays
    within a box around the centre.
    """
    canvas = page.locator(f"{editor_selector} canvas").first
    canvas.scroll_into_view_if_needed()  # the mouse only paints what is in the viewport
    box = canvas.bounding_box()
    if box is None:
        raise RuntimeError("the image editor's canvas is not on the page")
    x, y = box["x"] + box["width"] / 2 - 60, box["y"] + box["height"] / 2 - 40
    page.mouse.move(x, y)
    page.mouse.down()
    for i in range(1, 21):
        page.mouse.move(x + 6 * i, y + 12 * (i % 5), steps=3)
    page.mouse.up()
    time.sleep(0.5)  # the editor commits the stroke to its layer asynchronously


def wait_for_editor(page: Page) -> None:
    """Wait until the ImageEditor is not reloading (the page locks it while a new clip, window
    or frame is laid in, so that no stroke lands on a picture about to be replaced)."""
    page.wait_for_selector("#mask-editor:not([data-reloading])")


def paint_and_predict(page: Page, attempts: int = 3) -> None:
    """Paint a stroke once the editor is ready, press Predict, and wait for the result.

    On a busy machine the editor can still be setting up a new picture's canvas when it is
    unlocked, and a stroke then misses; Predict says "nothing is painted" beside the results,
    and the stroke is painted again, as a person would."""
    done = page.locator("#predict-summary:has-text('Masked')")
    refused = page.locator("#predict-status")
    for _ in range(attempts):
        wait_for_editor(page)
        paint_stroke(page)
        page.click("#predict-button")
        done.or_(refused).first.wait_for()
        if not refused.is_visible():
            return
    raise RuntimeError(f"Predict still saw no paint after {attempts} strokes")
