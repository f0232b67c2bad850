"""Workbench latency: app start, Predict, and the embedding map (PCA at once, UMAP after).

    python benchmarks/app_latency.py                       # the starter bundle, prints a table
    python benchmarks/app_latency.py --write docs/performance.md
    python benchmarks/app_latency.py --bundle runs/x/decoder/bundle.safetensors --clips 500
    python benchmarks/app_latency.py --hostile-upload   # only: peak memory of one bad upload
    python benchmarks/app_latency.py --upload-memory    # only: the bad and the largest good upload
    python benchmarks/app_latency.py --concurrent 10 --write docs/performance.md  # only: 10 at once

* start: `python -m workbench` as a child process, until its page answers HTTP 200 (a fresh
  process each time; the background warm-up it starts does not delay the page);
* Predict: the Predict handler on the 16-frame physics example with a painted square (decode,
  three mp4s, frame strip, surprise curve), in-process, and the same request through HTTP
  (gradio_client against the launched app);
* embedding map: UMAP warm-up (numba compiling in this fresh process), clip features of
  `--clips` physics clips (extraction, then from the disk cache), the PCA map, and UMAP once
  warm. Features are cached in a temporary folder, so the extraction is always measured.

`--hostile-upload` measures only the app's memory for one hostile upload: a 10 s, 8192 x 256
video (written here with PyAV) through the Predict tab's upload handler. `--upload-memory` adds
the largest legitimate upload: 10 s of 4096 x 2304 (the largest frames the app reads) at
30 fps (the app keeps at most 10 s and 300 frames). Each prints the process's resident memory
before, its peak during (VmHWM) and what stays held after, and PASS or FAIL against
`UPLOAD_PEAK_RISE_MIB`, the figure docs/performance.md states: how far one upload may raise
the app's resident memory at its peak.

`--concurrent N` measures only N Predicts sent at the same moment over HTTP: N gradio_client
sessions each load the example, then all send Predict at once (a barrier releases them); it
prints the median and the slowest answer and PASS or FAIL against `CONCURRENT_TARGET_S`, the
figure docs/performance.md states for 10 at once. With `--write` it replaces only its own part
of the app section (between the app-concurrent markers), the rest of the section stays.

Medians of `--repeats` runs, standard-library timers. The machine's load average is printed
and written with the figures: other work on the machine slows every number here.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timezone
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from PIL import Image

from decoder.bundle import STARTER_PATH
from workbench import clip_table
from workbench.app import build_app, configure_torch, launch
from workbench.context import AppContext
from workbench.examples import example_names
from workbench.maps import pca_2d, start_umap_warm_up, umap_2d
from workbench.paths import REPO_ROOT, use_numba_cache
from workbench.plots import embedding_figure
from workbench.predict import EDITOR_PX
from workbench.tab_predict import PredictHandlers

EXAMPLE = example_names()[0]  # a 16-frame physics scene
START_MARKER, END_MARKER = "<!-- app:start -->", "<!-- app:end -->"
# `--concurrent`'s part, inside the app section: each mode rewrites only its own part.
CONCURRENT_START, CONCURRENT_END = "<!-- app-concurrent:start -->", "<!-- app-concurrent:end -->"
# Every one of 10 Predicts sent at the same moment is answered within this (2 CPU cores).
CONCURRENT_TARGET_S = 5.0
Row = tuple[str, float, str]  # what, seconds, note


def median_seconds(run: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def time_start(bundle: Path, runs_dir: Path, timeout: float = 120.0) -> float:
    """Seconds from `python -m workbench` to its page answering, in a fresh process."""
    port = free_port()
    command = [sys.executable, "-m", "workbench", "--port", str(port), "--bundle", str(bundle)]
    command += ["--runs-dir", str(runs_dir)]
    started = time.perf_counter()
    child = subprocess.Popen(
        command, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        while time.perf_counter() - started < timeout:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as reply:
                    if reply.status == 200:
                        return time.perf_counter() - started
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if child.poll() is not None:
                    raise RuntimeError(child.stderr.read().decode()) from None
                time.sleep(0.1)
        raise RuntimeError(f"the app did not answer within {timeout} s")
    finally:
        child.terminate()
        child.wait(30)


def painted_rectangle() -> tuple[np.ndarray, np.ndarray]:
    """(background, layer) of an ImageEditor value: a rectangle of about a sixth of the frame."""
    background = np.full((EDITOR_PX, EDITOR_PX, 4), 255, np.uint8)
    layer = np.zeros((EDITOR_PX, EDITOR_PX, 4), np.uint8)
    layer[80:200, 100:240] = 255
    return background, layer


def measure_predict(ctx: AppContext, key: str, repeats: int) -> Row:
    handlers = PredictHandlers(ctx)
    clip_key = handlers.load_example(EXAMPLE, key)[0]
    background, layer = painted_rectangle()
    editor = {"background": background, "layers": [layer], "composite": background}
    predict = lambda: handlers.predict(key, clip_key, 0, 1, editor)
    predict()  # the first call initialises lazily
    bundle = ctx.registry.load(key)
    geometry = f"model input {bundle.num_frames} frames x {bundle.img_size} px"
    return ("Predict, handler (16-frame clip)", median_seconds(predict, repeats), geometry)


@contextmanager
def served(ctx: AppContext) -> Iterator[str]:
    """The app launched on a free localhost port, as `make app` serves it; yields its URL."""
    demo = build_app(ctx)
    _, url, _ = launch(demo, port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        yield url
    finally:
        demo.close()


def predict_request(url: str, key: str, work: Path) -> Callable[[], object]:
    """A new gradio_client session with the example loaded; returns its Predict request (the
    painted rectangle, uploaded as the browser uploads the editor's layers)."""
    from gradio_client import Client, handle_file

    # The app is served over plain HTTP, so there is nothing to verify; with verification on,
    # gradio_client loads the CA bundle into a new SSL context for every HTTP call (uploads,
    # the request, its stream, each download): measured, 10 clients spent about 3 s of the
    # shared 2 cores on that, which made the app's answers look 2-3 s slower than they are.
    client = Client(url, verbose=False, ssl_verify=False)
    client.predict(EXAMPLE, key, api_name="/load_example")
    files = []
    for name, image in zip(("background", "layer"), painted_rectangle()):
        files.append(work / f"{name}.png")
        Image.fromarray(image, "RGBA").save(files[-1])
    background, layer = (handle_file(str(path)) for path in files)
    value = {"background": background, "layers": [layer], "composite": background, "id": None}
    return lambda: client.predict(
        key, 0, 1, value, "painted region", "whole clip", 0, 1, 0, api_name="/predict"
    )


def measure_predict_http(ctx: AppContext, key: str, repeats: int, work: Path) -> Row:
    with served(ctx) as url:
        request = predict_request(url, key, work)
        request()
        seconds = median_seconds(request, repeats)
    return ("Predict, through HTTP (gradio_client)", seconds, "upload, outputs, download")


def measure_concurrent(ctx: AppContext, key: str, count: int, work: Path) -> list[float]:
    """Seconds each of `count` Predicts took, sent at the same moment from as many sessions.
    The clients run in a process of their own, as browsers do: in the app's process their
    threads would hold its interpreter lock while they upload, poll and download."""
    with served(ctx) as url, get_context("spawn").Pool(1) as clients:
        return clients.apply(client_seconds, (url, key, count, work))


def client_seconds(url: str, key: str, count: int, work: Path) -> list[float]:
    """(In the clients' process) `count` sessions, then one Predict from each at once."""
    requests = [predict_request(url, key, work) for _ in range(count)]
    requests[0]()  # the first call initialises lazily: not part of the figure
    barrier = threading.Barrier(count)

    def timed(request: Callable[[], object]) -> float:
        barrier.wait()
        started = time.perf_counter()
        request()
        return time.perf_counter() - started

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(timed, requests))  # re-raises a failed request's error


def measure_map(ctx: AppContext, key: str, clips: int, repeats: int, work: Path) -> list[Row]:
    """Clip features (extracted, then cached), the PCA map, the UMAP map once warm."""
    clip_table.FEATURE_CACHE_DIR = work / "features"
    bundle, identity = ctx.registry.load(key), ctx.registry.identity(key)
    choice = clip_table.DataChoice(count=clips)
    started = time.perf_counter()
    clip_table.clip_table(bundle, identity, choice)
    extracted = time.perf_counter() - started
    clip_table._tables.clear()
    started = time.perf_counter()
    table = clip_table.clip_table(bundle, identity, choice)
    cached = time.perf_counter() - started
    labels = table.labels["shape"], table.label_names["shape"]
    pca_map = lambda: embedding_figure(pca_2d(table.features), *labels, "PCA", table.hover)
    umap_map = lambda: embedding_figure(umap_2d(table.features), *labels, "UMAP", table.hover)
    return [
        (f"clip features of {clips} physics clips", extracted, "first time: render + encode"),
        (f"clip features of {clips} clips, from the cache", cached, ""),
        (f"PCA map of {clips} clips, with its figure", median_seconds(pca_map, repeats), ""),
        (
            f"UMAP map of {clips} clips, after warm-up",
            median_seconds(umap_map, max(1, repeats // 5)),
            "200 epochs, cosine",
        ),
    ]


# (name, what it is, (width, height), fps); each 10 s long.
UPLOADS = {
    "hostile": ("a 10 s, 8192 x 256 video (a few MB)", (8192, 256), 25),
    "4k": ("10 s of 4096 x 2304 at 30 fps, the largest frames the app reads", (4096, 2304), 30),
}
# One upload may raise the app's resident memory by at most this much at its peak (decoder
# buffers + the decoded clip, at most ~105 MB, see workbench/video_io.py); the clip store then
# holds the clip (at most 512 MiB for all clips together, workbench/clip_store.py).
UPLOAD_PEAK_RISE_MIB = 200


def write_test_video(
    path: Path, size: tuple[int, int] = (8192, 256), seconds: float = 10.0, fps: int = 25
) -> Path:
    """A smoothly moving grey ramp: cheap to store (a few MB), costly to decode whole."""
    import av

    width, height = size
    ramp = ((np.arange(width)[None, :] + np.arange(height)[:, None]) % 256).astype(np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        for i in range(round(seconds * fps)):
            grey = ramp + np.uint8(4 * i % 256)  # wraps around in uint8
            container.mux(stream.encode(av.VideoFrame.from_ndarray(grey, format="gray")))
        container.mux(stream.encode())
    return path


def memory_mib(field: str) -> float:
    """A line of /proc/self/status (VmRSS: now, VmHWM: peak) in MiB (Linux only)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise SystemExit(f"no {field} in /proc/self/status: this measurement needs Linux")


def measure_upload_memory(bundle: Path, names: list[str]) -> bool:
    """Print the app process's memory around one upload of each of `names` (see UPLOADS), in
    this order and in one process, as one app serves them; True when every peak rise is
    within UPLOAD_PEAK_RISE_MIB."""
    import gc

    work = Path(tempfile.mkdtemp(prefix="app-memory-"))
    videos = {}
    for name in names:
        _, size, fps = UPLOADS[name]
        videos[name] = write_test_video(work / f"{name}.mp4", size, fps=fps)
    configure_torch()
    ctx = AppContext.create(work / "runs", bundle)
    key = ctx.registry.default_key()
    handlers = PredictHandlers(ctx)
    handlers.load_example(EXAMPLE, key)  # the app's ordinary working set
    passed = True
    for name, video in videos.items():
        gc.collect()
        before = memory_mib("VmRSS")
        try:  # reset the peak to the current RSS (Linux >= 4.0), so the peak is the upload's
            Path("/proc/self/clear_refs").write_text("5")
        except OSError as err:
            print(f"cannot reset the peak ({err.strerror}): it includes the start-up")
        message = handlers.load_upload(str(video), key)[1]
        peak = memory_mib("VmHWM")
        gc.collect()
        after = memory_mib("VmRSS")
        rise = peak - before
        verdict = "PASS" if rise <= UPLOAD_PEAK_RISE_MIB else "FAIL"
        passed &= verdict == "PASS"
        print(f"{UPLOADS[name][0]}: {video.name}, {video.stat().st_size / 2**20:.1f} MiB")
        print(f"  {message}")
        print(
            f"  RSS before {before:.0f} MiB, peak {peak:.0f} MiB, held after {after:.0f} MiB; "
            f"peak rise {rise:.0f} MiB: {verdict} (limit {UPLOAD_PEAK_RISE_MIB} MiB)"
        )
    return passed


def measure(args: argparse.Namespace) -> tuple[list[Row], str]:
    """(rows, the model's one-line summary)."""
    work = Path(tempfile.mkdtemp(prefix="app-latency-"))
    starts = [time_start(args.bundle, work / "runs") for _ in range(args.start_repeats)]
    rows = [("app start (page answers)", statistics.median(starts), f"{len(starts)} starts")]
    configure_torch()  # the app's own thread count
    warm_up = start_umap_warm_up()  # in the background, as the app does
    ctx = AppContext.create(work / "runs", args.bundle)
    key = ctx.registry.default_key()
    rows.append(measure_predict(ctx, key, args.repeats))
    rows.append(measure_predict_http(ctx, key, args.repeats, work))
    warm_up.wait()
    rows.append(("UMAP warm-up in a fresh process", warm_up.seconds or 0.0, "background thread"))
    rows += measure_map(ctx, key, args.clips, args.repeats, work)
    return rows, ctx.registry.load(key).summary()


def machine() -> str:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"{platform.machine()} {platform.processor() or ''}".strip()
        + f", {os.cpu_count()} cores, Python {platform.python_version()}, load average {load}"
    )


def table_markdown(rows: list[Row], command: str, model: str, before: str, after: str) -> str:
    lines = [
        "## Workbench latency",
        "",
        f"`{command}`",
        "",
        f"Model: {model}.  ",
        f"Machine before: {before}.  ",
        f"Machine after: {after}.",
        "",
        "| what | seconds | note |",
        "|---|---:|---|",
        *(f"| {what} | {seconds:.2f} | {note} |" for what, seconds, note in rows),
        "",
        "Targets: Predict under 1 s on 2 CPU cores; the app starts in under 10 s; the map of "
        "2,000 clips shows PCA at once and UMAP within 30 s after warm-up. A load average above "
        "the number of cores means other processes were competing for the CPU.",
    ]
    return "\n".join(lines)


def concurrent_markdown(
    seconds: list[float], command: str, model: str, before: str, after: str
) -> tuple[str, bool]:
    """(`--concurrent`'s part of the app section, whether every answer met the target)."""
    passed = max(seconds) <= CONCURRENT_TARGET_S
    verdict = "PASS" if passed else "FAIL"
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "### Concurrent Predicts",
        "",
        f"`{command}` ({when})",
        "",
        f"Model: {model}.  ",
        f"Machine before: {before}.  ",
        f"Machine after: {after}.",
        "",
        "| Predicts sent at once | median seconds | slowest seconds | target | result |",
        "|---:|---:|---:|---|---|",
        f"| {len(seconds)} | {statistics.median(seconds):.2f} | {max(seconds):.2f} | "
        f"every answer within {CONCURRENT_TARGET_S:.0f} s | {verdict} |",
        "",
        "Each Predict comes from its own gradio_client session with the example loaded; a "
        "barrier sends them at the same moment. The app runs 2 at a time and queues the rest "
        "(`default_concurrency_limit` in workbench/app.py), so the slowest answer waits for "
        "about half of the others. The clients run in a process of their own on the same "
        "machine (as browsers would, but sharing its 2 cores: their uploads, polling and "
        "downloads take CPU the app could use; their certificate checks are off, as the app "
        "speaks plain HTTP and gradio_client would otherwise load the CA bundle for each of "
        "its calls, about 3 s of CPU over 10 clients). The target is for 10 at once on 2 CPU "
        "cores; "
        "a load average above the number of cores means other processes were competing for "
        "the CPU.",
    ]
    return "\n".join(lines), passed


def between(content: str, start: str, end: str, path: Path) -> tuple[str, str, str]:
    """(what precedes `start`, what lies between the markers, what follows `end`)."""
    if start not in content or end not in content:
        raise SystemExit(f"{path} lacks the markers {start} ... {end}")
    head, rest = content.split(start, 1)
    inside, tail = rest.split(end, 1)
    return head, inside, tail


def write_between_markers(
    path: Path, text: str | None = None, concurrent: str | None = None
) -> None:
    """Replace the app section's table (`text`) or its concurrent part, keeping the other."""
    head, inside, tail = between(path.read_text(), START_MARKER, END_MARKER, path)
    table, kept = inside, None
    if CONCURRENT_START in inside:
        before, kept, after = between(inside, CONCURRENT_START, CONCURRENT_END, path)
        table = before + after
    table, kept = (text or table).strip(), (concurrent or kept or "").strip()
    if kept:
        table += f"\n\n{CONCURRENT_START}\n{kept}\n{CONCURRENT_END}"
    path.write_text(f"{head}{START_MARKER}\n{table}\n{END_MARKER}{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bundle", type=Path, default=STARTER_PATH)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--start-repeats", type=int, default=3)
    parser.add_argument("--clips", type=int, default=2000)
    parser.add_argument(
        "--write", type=Path, default=None, help="a markdown file with the app markers"
    )
    parser.add_argument(
        "--hostile-upload",
        action="store_true",
        help="only measure the memory of one 8192 x 256, 10 s upload (Linux)",
    )
    parser.add_argument(
        "--upload-memory",
        action="store_true",
        help="only measure the memory of that upload and of a 10 s 4K one (Linux)",
    )
    parser.add_argument(
        "--concurrent",
        type=int,
        default=None,
        metavar="N",
        help=f"only send N Predicts at once (target: 10 within {CONCURRENT_TARGET_S:.0f} s)",
    )
    args = parser.parse_args()
    if args.concurrent is not None and args.concurrent < 1:
        parser.error(f"--concurrent needs at least 1 request, got {args.concurrent}")
    os.environ.setdefault("TQDM_DISABLE", "1")
    use_numba_cache()
    if args.hostile_upload or args.upload_memory:
        print(f"machine: {machine()}")
        names = ["hostile", "4k"] if args.upload_memory else ["hostile"]
        sys.exit(0 if measure_upload_memory(args.bundle, names) else 1)
    command = shlex.join(["python", "benchmarks/app_latency.py", *sys.argv[1:]])
    if args.concurrent is not None:
        sys.exit(0 if concurrent(args, command) else 1)
    before = machine()
    rows, model = measure(args)
    after = machine()
    text = table_markdown(rows, command, model, before, after)
    print(text)
    if args.write is not None:
        write_between_markers(args.write, text)


def concurrent(args: argparse.Namespace, command: str) -> bool:
    """`--concurrent N`: print (and with --write, write) its figures; True on PASS."""
    before = machine()
    configure_torch()  # the app's own thread count
    work = Path(tempfile.mkdtemp(prefix="app-concurrent-"))
    ctx = AppContext.create(work / "runs", args.bundle)
    key = ctx.registry.default_key()
    seconds = measure_concurrent(ctx, key, args.concurrent, work)
    model = ctx.registry.load(key).summary()
    text, passed = concurrent_markdown(seconds, command, model, before, machine())
    print(text)
    print("each answer, seconds:", " ".join(f"{s:.2f}" for s in sorted(seconds)))
    if args.write is not None:
        write_between_markers(args.write, concurrent=text)
    return passed


if __name__ == "__main__":
    main()
