"""Screenshots of each tab for the README, taken in a real headless Chromium.

    python tests/screenshots.py                      # starter bundle -> docs/screenshots/
    python tests/screenshots.py --bundle runs/x/decoder/bundle.safetensors --out shots
    python tests/screenshots.py --tabs model predict     # only these

Launches the app on a free localhost port with a fresh runs folder, then per tab does what a
person would: paints a stroke and presses Predict; shows the features; maps 2,000 physics
clips, selects a few and hovers one; shows an inertia matched set with its surprise curves;
starts a short training and waits for its curves (then stops it); opens the model's
provenance. Needs Chromium (Debian: `apt-get install chromium`)
and playwright (a test dependency). The Train shot takes a few minutes on a laptop CPU.
"""

from __future__ import annotations

import argparse
import os
import socket
import tempfile
import time
from pathlib import Path

from browser import open_browser, paint_and_predict
from decoder.bundle import STARTER_PATH
from workbench.app import build_app, configure_torch, launch, start_background_work
from workbench.context import AppContext
from workbench.paths import REPO_ROOT, use_numba_cache

TIMEOUT_MS = 600_000
TABS = ["predict", "features", "embeddings", "physics", "train", "model"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()
    page.wait_for_timeout(500)


def shoot(page, out: Path, name: str) -> None:
    page.evaluate("window.scrollTo(0, 0)")
    page.wait_for_timeout(800)  # let plots and videos settle
    path = out / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"wrote {path}")


def predict(page, out: Path) -> None:
    open_tab(page, "Predict")  # --tabs may have opened another tab first
    page.wait_for_selector("#clip-info:has-text('frames')")
    # The painted region hidden from the middle frame on: the starter's own task (the future
    # from the first half), where its decoded prediction shows the hidden objects.
    page.get_by_label("the future").check()
    paint_and_predict(page)
    page.wait_for_selector("#video-prediction video")
    page.wait_for_timeout(2000)  # every player loads its video
    # The players show a hidden frame (about the 7th of 8), not the first, which is visible.
    page.evaluate(
        """() => Promise.all([...document.querySelectorAll('video')].map(v => new Promise(
            done => {
                setTimeout(done, 5000);  // a player that cannot load stays as it is
                const seek = () => {
                    v.pause();
                    v.onseeked = done;
                    v.currentTime = v.duration * 0.8;
                };
                if (v.readyState >= 1) seek();
                else { v.onloadedmetadata = seek; v.load(); }
            })))"""
    )
    shoot(page, out, "predict")


def features(page, out: Path) -> None:
    open_tab(page, "Features")
    page.click("#features-button")
    page.wait_for_selector("#features-strip img")
    shoot(page, out, "features")


def embeddings(page, out: Path) -> None:
    open_tab(page, "Embeddings")
    page.click("#embedding-button")
    page.wait_for_selector("#embedding-status:has-text('UMAP of')")
    page.fill("#embedding-selection textarea", "0, 1, 2, 3")
    page.click("#embedding-show")
    page.wait_for_selector("#embedding-selected img")
    plot = page.locator("#embedding-map .js-plotly-plot").bounding_box()
    for step in range(40):  # sweep over the map until a point is under the pointer
        page.mouse.move(
            plot["x"] + plot["width"] * (0.3 + step / 100), plot["y"] + plot["height"] / 2
        )
        page.wait_for_timeout(100)
    page.wait_for_timeout(1500)
    shoot(page, out, "embeddings")


def train(page, out: Path, steps: int) -> None:
    open_tab(page, "Train")
    page.fill("#train-steps input", str(steps))
    page.click("#train-start")
    # Curves after the first online probe (every steps/8), or when the run ends.
    page.wait_for_selector("#train-status:has-text('step')")
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        text = page.locator("#train-status").inner_text()
        if "finished" in text or "failed" in text:
            break
        words = text.split("step ", 1)[-1].split(" ", 1)[0]
        if words.isdigit() and int(words) >= steps // 2:
            break
        page.wait_for_timeout(2000)
    page.wait_for_timeout(2500)  # one more refresh of the curves
    shoot(page, out, "train")
    page.click("#train-stop")


def physics(page, out: Path) -> None:
    open_tab(page, "Physics")
    # An inertia set: the law that needs a model of motion (docs/results.md).
    page.get_by_label("Law").click()
    page.get_by_role("option", name="inertia").click()
    page.click("#physics-pair-button")
    page.wait_for_selector("text=Mean surprise over the windows")  # the set's note
    shoot(page, out, "physics")


def model(page, out: Path) -> None:
    open_tab(page, "Model")
    page.wait_for_selector("#model-summary:has-text('V-JEPA encoder')")
    shoot(page, out, "model")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bundle", type=Path, default=STARTER_PATH)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "screenshots")
    # The Train tab's default run; the shot is taken halfway, when the yardstick has risen.
    parser.add_argument("--train-steps", type=int, default=400)
    parser.add_argument(
        "--tabs", nargs="+", default=TABS, choices=TABS, help="which screenshots (default: all)"
    )
    args = parser.parse_args()
    use_numba_cache()

    from playwright.sync_api import sync_playwright  # a test dependency

    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    # The starter is found as the app finds it on a fresh clone; another bundle is --bundle.
    bundle = args.bundle.resolve()
    extra = None if bundle == STARTER_PATH.resolve() else bundle
    # Runs go to ./runs of a scratch folder, so the pages show `runs/...` as on a user's machine.
    work = Path(tempfile.mkdtemp(prefix="screenshots-"))
    os.chdir(work)
    ctx = AppContext.create("runs", extra)
    configure_torch()
    start_background_work(ctx).join()  # features and UMAP ready, as in a warm app
    demo = build_app(ctx)
    _, url, _ = launch(demo, port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        with sync_playwright() as playwright:
            browser = open_browser(playwright, work / "profile")
            page = browser.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(url)
            page.wait_for_selector("#mask-editor canvas")
            shots = {
                "predict": lambda: predict(page, out),
                "features": lambda: features(page, out),
                "embeddings": lambda: embeddings(page, out),
                "physics": lambda: physics(page, out),
                "train": lambda: train(page, out, args.train_steps),
                "model": lambda: model(page, out),
            }
            for name in args.tabs:
                shots[name]()
            browser.close()
    finally:
        ctx.jobs.stop()
        ctx.jobs.wait(120)
        demo.close()


if __name__ == "__main__":
    main()
