"""End to end in a real headless Chromium: open the app, upload a clip, paint a stroke on the
canvas, choose another frame to paint on (the stroke must survive the editor's reload), press
Predict, and check that the decoded prediction differs from the input inside the painted region
(and nowhere else), that the numbers come with their context (step 0, the decoded target, the
mean-colour fill), that the surprise heatmap is shown, and that a second model compares beside
the first. A screenshot goes to test-artifacts/."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from browser import INSTALL_HINT, find_chromium, open_browser, paint_and_predict
from conftest import REPO
from workbench import clip_table, maps, tab_embeddings
from workbench.app import build_app, launch
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
    patch.setattr(tab_embeddings, "umap_2d", maps.pca_2d)
    write_micro_bundle(root / "runs" / "micro" / "decoder" / "bundle.safetensors")
    # A second model, to compare with the first on the same clip and mask.
    write_micro_bundle(root / "runs" / "micro2" / "decoder" / "bundle.safetensors", seed=1)
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


def choose_last_frame_to_paint_on(page) -> None:
    """Click the right end of the "Frame to paint on" slider, as a person would, and wait
    until the editor has reloaded with that frame (it is locked meanwhile)."""
    track = page.locator("#paint-frame input[type=range]")
    box = track.bounding_box()
    track.click(position={"x": box["width"] - 2, "y": box["height"] / 2})
    page.wait_for_selector("#mask-editor[data-reloading]")  # the reload started...
    page.wait_for_selector("#mask-editor:not([data-reloading])")  # ...and ended
    assert page.locator("#paint-frame input[type=number]").input_value() == "3"


# What Predict last showed: the summary's text and the frame strip's address.
SHOWN_JS = (
    "() => [document.querySelector('#predict-summary').innerText, "
    "document.querySelector('#frame-strip img')?.getAttribute('src')]"
)


def picture_of(page, selector: str) -> np.ndarray:
    source = page.locator(f"{selector} img").get_attribute("src")
    return np.asarray(Image.open(io.BytesIO(page.request.get(source).body())).convert("RGB"))


def test_paint_survives_a_frame_change_and_predicts_in_context(page, tmp_path):
    clip = moving_square_video(tmp_path / "square.mp4")
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        page.set_input_files("#video-upload input[type=file]", str(clip))
        page.wait_for_selector("#clip-info:has-text('square.mp4')")
        paint_and_predict(page)  # the whole clip
        # Another frame to paint on reloads the editor: the stroke must stay. Predict again,
        # without repainting, hiding it in frames 2-3 only (the frame range set on loading).
        choose_last_frame_to_paint_on(page)
        page.get_by_label("frame range").check()
        before = page.evaluate(SHOWN_JS)
        page.click("#predict-button")
        status = page.locator("#predict-status")
        page.wait_for_function(  # a new summary and frame strip, or a refusal beside the old
            f"before => {{ const now = ({SHOWN_JS})(); return (now[0] !== before[0] && "
            "now[1] !== before[1]) || document.querySelector('#predict-status')?.offsetParent; }",
            arg=before,
        )
        assert not status.is_visible(), status.inner_text()
        page.wait_for_selector("#surprise-heatmap img")
        picture = picture_of(page, "#frame-strip")
        heatmap = picture_of(page, "#surprise-heatmap")
        summary = page.locator("#predict-summary").inner_text()
        line = page.locator("#comparison-summary").inner_text()
        # Two models, the same clip and mask.
        page.locator("#second-model input").click()
        page.get_by_role("option", name="run: micro2/decoder").click()
        page.click("#compare-button")
        page.wait_for_selector("#pair-strip img")
        table = page.locator("#pair-summary").inner_text()
    finally:  # the screenshot shows what happened, also when a step above failed
        page.screenshot(path=str(ARTIFACTS / "browser_predict.png"), full_page=True)
    original, masked, predicted = strip_rows(picture)
    hidden = np.abs(masked - original).max(-1) > 40  # the grey, outlined masked region
    frame, margin = STRIP_PX + GAP_PX, 4
    interiors = [hidden[:, i * frame + margin : i * frame + STRIP_PX - margin] for i in range(4)]
    assert not interiors[0].any() and not interiors[1].any(), "frames 0-1: outside the range"
    later = np.concatenate(interiors[2:], axis=1)
    assert 0.02 < later.mean() < 0.9, "the kept stroke should hide part of frames 2-3"
    inside = np.abs(predicted - original)[hidden].mean()
    outside = np.abs(predicted - original)[~hidden].mean()
    assert inside > 10 and outside < 4, (inside, outside)
    # Every number beside its reference: step 0, the decoded target, the mean-colour fill.
    assert "untrained, at step 0" in summary
    assert line.count(" dB") == 3 and "decoded target latents" in line and "mean-colour" in line
    # The heatmap: one row of 4 frames, the masked tokens in heat colours, the rest dimmed.
    assert heatmap.shape[:2] == (STRIP_PX, 4 * STRIP_PX + 3 * GAP_PX)
    assert len(np.unique(heatmap.reshape(-1, 3), axis=0)) > 8
    assert "run: micro/decoder" in table and "run: micro2/decoder" in table
    assert table.count(" dB") == 6


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
