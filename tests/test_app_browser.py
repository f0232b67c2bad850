"""End to end in a real headless Chromium: open the app, upload a clip, paint a stroke on the
canvas, press Predict, and check that the decoded prediction differs from the input inside the
painted region (and nowhere else). A screenshot goes to test-artifacts/."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from conftest import REPO
from workbench import clip_table, embed, tab_embeddings
from workbench.app import build_app, launch
from workbench.browser import INSTALL_HINT, find_chromium, open_browser, paint_and_predict
from workbench.context import AppContext
from workbench.frames import GAP_PX
from workbench.predict import STRIP_PX
from workbench.tab_embeddings import parse_clip_numbers
from workbench_fixtures import free_port, moving_square_video, write_micro_bundle

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("workbench_browser")]
ARTIFACTS = REPO / "test-artifacts"
TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    """The app on a free localhost port with a micro bundle; UMAP is replaced by PCA (UMAP's
    first fit compiles for half a minute; test_workbench_handlers covers it)."""
    patch = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("browser")
    patch.setattr(clip_table, "FEATURE_CACHE_DIR", root / "cache")
    patch.setattr(tab_embeddings, "umap_2d", embed.pca_2d)
    write_micro_bundle(root / "runs" / "micro" / "decoder" / "bundle.safetensors")
    demo = build_app(AppContext.create(root / "runs", starter=root / "no-starter"))
    _, url, _ = launch(demo, port=free_port(), prevent_thread_lock=True, quiet=True)
    yield url
    demo.close()
    patch.undo()


@pytest.fixture
def page(app_url, tmp_path):
    """A page of the app in a fresh headless Chromium profile."""
    playwright_api = pytest.importorskip("playwright.sync_api")
    if find_chromium() is None:
        pytest.skip(f"browser test needs Chromium: {INSTALL_HINT}")
    with playwright_api.sync_playwright() as playwright:
        browser = open_browser(playwright, tmp_path / "profile")
        page = browser.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(app_url)
        page.wait_for_selector("#mask-editor canvas")
        yield page
        browser.close()


def strip_rows(picture: np.ndarray) -> list[np.ndarray]:
    """The frame strip's three rows (original, masked, prediction) as [H, W, 3] int arrays."""
    return [
        picture[r * (STRIP_PX + GAP_PX) : r * (STRIP_PX + GAP_PX) + STRIP_PX].astype(int)
        for r in range(3)
    ]


def test_paint_and_predict_in_a_real_browser(page, tmp_path):
    clip = moving_square_video(tmp_path / "square.mp4")
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        page.set_input_files("#video-upload input[type=file]", str(clip))
        page.wait_for_selector("#clip-info:has-text('square.mp4')")
        paint_and_predict(page)
        page.wait_for_selector("#video-prediction video")
        source = page.locator("#frame-strip img").get_attribute("src")
        picture = Image.open(io.BytesIO(page.request.get(source).body())).convert("RGB")
    finally:  # the screenshot shows what happened, also when a step above failed
        page.screenshot(path=str(ARTIFACTS / "browser_predict.png"), full_page=True)
    original, masked, predicted = strip_rows(np.asarray(picture))
    hidden = np.abs(masked - original).max(-1) > 40  # the grey, outlined masked region
    assert 0.02 < hidden.mean() < 0.9, "the painted stroke should hide part of each frame"
    inside = np.abs(predicted - original)[hidden].mean()
    outside = np.abs(predicted - original)[~hidden].mean()
    assert inside > 10 and outside < 4, (inside, outside)


def test_lasso_on_the_map_selects_clips_in_a_real_browser(page):
    page.get_by_role("tab", name="Embeddings").click()
    page.fill("#embedding-count input", "200")
    page.click("#embedding-button")
    page.wait_for_selector("#embedding-status:has-text('UMAP of 200')")
    page.wait_for_timeout(1500)  # the selection bridge attaches to the new plot every second
    box = page.locator("#embedding-map .nsewdrag").first.bounding_box()
    corners = [(0.01, 0.01), (0.99, 0.01), (0.99, 0.99), (0.01, 0.99), (0.01, 0.01)]
    points = [(box["x"] + box["width"] * x, box["y"] + box["height"] * y) for x, y in corners]
    page.mouse.move(*points[0])
    page.mouse.down()
    for point in points[1:]:  # a lasso around the whole plotting area
        page.mouse.move(*point, steps=10)
    page.mouse.up()
    page.wait_for_selector("#embedding-selected img")
    selection = page.locator("#embedding-selection textarea").input_value()
    # All 200 clips, in the box's compact form ("0-199") or the bridge's list, as it stands.
    assert len(parse_clip_numbers(selection, 200)) == 200
    assert page.locator("#embedding-selected img").count() == 24  # MAX_SHOWN
