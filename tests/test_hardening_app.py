"""The app under a hostile client (issue: hardening, items 1-3): server paths only under the
--data-dir folders and never a file's contents in a message; uploads bounded in pixels and
named without the server's folders; a port in use is one line that says --port."""

from __future__ import annotations

import socket

import av
import gradio as gr
import numpy as np
import pytest

from train.data.base import DataError
from train.data.listfile import read_list_file
from train.data.reader import decode_size
from workbench import clip_table, video_io
from workbench.__main__ import main, parse_args, read_auth_file
from workbench.clip_store import MAX_BYTES
from workbench.clip_table import FOLDER
from workbench.context import AppContext
from workbench.tab_embeddings import EmbeddingHandlers
from workbench.tab_predict import PredictHandlers
from workbench.tab_train import TrainHandlers
from workbench_fixtures import free_port, moving_square_video, write_micro_bundle

SECRET = "API_TOKEN=s3cr3t-value"


@pytest.fixture(scope="module")
def micro_runs(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    write_micro_bundle(runs / "micro" / "decoder" / "bundle.safetensors")
    return runs


@pytest.fixture
def served(micro_runs, tmp_path, monkeypatch):
    """(context allowing tmp_path/data, the bundle key, the data folder, a folder outside it)."""
    monkeypatch.setattr(clip_table, "FEATURE_CACHE_DIR", tmp_path / "cache")
    data, outside = tmp_path / "data", tmp_path / "outside"
    data.mkdir()
    outside.mkdir()
    ctx = AppContext.create(micro_runs, starter=micro_runs / "no-starter", data_dirs=[data])
    return ctx, ctx.registry.default_key(), data, outside


def map_message(ctx: AppContext, key: str, folder: str) -> str:
    """The message the Embeddings tab shows for `folder` (it must refuse)."""
    handlers = EmbeddingHandlers(ctx)
    with pytest.raises(gr.Error) as caught:
        next(handlers.map_clips(key, FOLDER, 2, folder, "", progress=lambda *a, **k: None))
    return str(caught.value.message)


# ---------------------------------------------------------------------------------------------
# 1. Server paths.


def test_without_data_dirs_no_server_path_is_accepted(micro_runs, tmp_path):
    moving_square_video(tmp_path / "videos" / "a.mp4")
    ctx = AppContext.create(micro_runs, starter=micro_runs / "no-starter")
    message = map_message(ctx, ctx.registry.default_key(), str(tmp_path / "videos"))
    assert "--data-dir" in message and "python -m workbench" in message
    assert parse_args([]).data_dir == []
    assert parse_args(["--data-dir", "a", "--data-dir", "b"]).data_dir == [
        parse_args(["--data-dir", "a"]).data_dir[0],
        parse_args(["--data-dir", "b"]).data_dir[0],
    ]


def test_paths_outside_the_data_dirs_are_refused_alike_whether_they_exist_or_not(served):
    ctx, key, data, outside = served
    (outside / "secret.txt").write_text(SECRET + "\n")
    (data / "link").symlink_to(outside, target_is_directory=True)
    refused = {
        name: map_message(ctx, key, text)
        for name, text in {
            "dotdot": "../outside/secret.txt",
            "absolute": str(outside / "secret.txt"),
            "missing": str(outside / "nothing-here.txt"),
            "symlink": "link/secret.txt",
        }.items()
    }
    for message in refused.values():
        assert "lies outside the folders this app serves" in message
        assert SECRET not in message and "s3cr3t" not in message
        assert "does not exist" not in message


def test_a_text_file_given_as_a_list_file_is_not_echoed(served):
    ctx, key, data, _ = served
    (data / "secret.txt").write_text(f"{SECRET}\nDB_PASSWORD=hunter2\nthird_line\n")
    message = map_message(ctx, key, "secret.txt")
    assert "3 of its 3 entries name no file there" in message
    for line in (SECRET, "hunter2", "third_line", "API_TOKEN"):
        assert line not in message
    (data / "mixed.txt").write_text(f"{SECRET}\nsecond words\n")
    message = map_message(ctx, key, "mixed.txt")
    assert message.startswith("list file mixed.txt: line 1 has no label") and SECRET not in message
    assert str(data) not in message
    (data / "binary.lst").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    assert "not UTF-8 text" in map_message(ctx, key, "binary.lst")


def test_a_list_file_may_not_name_videos_outside_the_data_dirs(served):
    ctx, key, data, outside = served
    moving_square_video(outside / "private.mp4")
    moving_square_video(data / "ok.mp4")
    (data / "list.txt").write_text("ok.mp4 0\n../outside/private.mp4 1\n")
    message = map_message(ctx, key, "list.txt")
    assert "1 of its 2 entries name no file there (the first is entry 2)" in message
    (data / "clips").mkdir()
    (data / "clips" / "private.mp4").symlink_to(outside / "private.mp4")
    assert "links to files outside the data folders" in map_message(ctx, key, "clips")


def test_a_folder_under_a_data_dir_is_mapped(served):
    ctx, key, data, _ = served
    for name in ("a", "b"):
        moving_square_video(data / "videos" / f"{name}.mp4", frames=6, size=48)
    handlers = EmbeddingHandlers(ctx)
    first = next(handlers.map_clips(key, FOLDER, 2, "videos/", "", progress=lambda *a, **k: None))
    assert "2 videos of videos" in first[4]


def test_list_files_with_binary_contents_do_not_quote_bytes(tmp_path):
    binary = tmp_path / "x.lst"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(DataError, match="not UTF-8 text") as caught:
        read_list_file(binary)
    assert "0xff" not in str(caught.value)


def test_main_refuses_a_data_dir_that_does_not_exist(tmp_path, capsys):
    args = ["--runs-dir", str(tmp_path), "--port", str(free_port())]
    assert main([*args, "--data-dir", str(tmp_path / "missing")]) == 2
    assert "--data-dir" in capsys.readouterr().err


def test_decoder_fits_only_on_runs_in_the_runs_folder(micro_runs, tmp_path):
    run = tmp_path / "elsewhere"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "latest.pt").write_bytes(b"x")
    (run / "config.yaml").write_text("mask: {}\n")
    ctx = AppContext.create(micro_runs, starter=micro_runs / "no-starter")
    with pytest.raises(gr.Error, match="pick a run from the list"):
        TrainHandlers(ctx).fit_decoder(str(run), 5)
    with pytest.raises(gr.Error, match="pick a run from the list"):
        TrainHandlers(ctx).fit_decoder(str(micro_runs / ".." / run.name), 5)
    assert ctx.jobs.current is None


# ---------------------------------------------------------------------------------------------
# 2. Memory.


def write_wide_video(path, size=(2048, 64), frames=20):
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = *size, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        for i in range(frames):
            picture = np.full((size[1], size[0], 3), 8 * i, np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
        container.mux(stream.encode())
    return path


def test_decode_size_bounds_the_pixels_of_a_frame():
    assert decode_size(8192, 256, 256, 256 * 456) == (1932, 60)
    assert decode_size(256, 8192, 256, 256 * 456) == (60, 1932)
    assert decode_size(1920, 1080, 256, 256 * 456) == decode_size(1920, 1080, 256) == (455, 256)
    assert decode_size(100, 50, 256, 256 * 456) == (100, 50)


def test_a_wide_upload_is_decoded_within_the_pixel_budget(tmp_path, monkeypatch):
    path = write_wide_video(tmp_path / "wide.mp4")
    video = video_io.read_video(path)
    frames, height, width, _ = video.frames.shape
    assert height * width <= video_io.FRAME_PIXELS and frames == 20
    assert video.source_size == (2048, 64) and "resized from 2048x64" in video.describe()
    # The clip's total is bounded too: a smaller budget keeps fewer frames.
    monkeypatch.setattr(video_io, "MAX_DECODE_PIXELS", 5 * width * height)
    assert len(video_io.read_video(path).frames) == 5
    assert video_io.MAX_DECODE_PIXELS * 3 <= 110e6  # the figure the docs state
    assert 4 * 110e6 < MAX_BYTES <= 512 * 2**20  # the clip store's documented cap


def test_frames_larger_than_the_decoder_may_hold_are_refused_before_decoding(tmp_path, monkeypatch):
    """The decoder holds a few frames at the file's own size: 4K fits, 8K is refused with a
    message, before anything is decoded (the reader is never opened)."""
    assert video_io.MAX_SOURCE_SIZE == (4096, 2304)  # 4K UHD (3840 x 2160) and DCI 4K fit
    path = write_wide_video(tmp_path / "big.mp4", size=(512, 64), frames=4)
    opened = []
    monkeypatch.setattr(video_io, "open_video", lambda *a, **k: opened.append(a))
    monkeypatch.setattr(video_io, "MAX_SOURCE_SIZE", (256, 64))
    with pytest.raises(video_io.VideoError) as caught:
        video_io.read_video(path)
    assert str(caught.value) == (
        "big.mp4 has frames of 512x64 pixels; the app reads frames of at most 256x64 pixels "
        "(or as many in another shape): scale it down first"
    )
    assert opened == []


# ---------------------------------------------------------------------------------------------
# 3. Upload messages and the port.


def test_upload_messages_name_the_file_not_the_servers_folder(micro_runs, tmp_path):
    from PIL import Image

    folder = tmp_path / "gradio-temp" / "0123abcd"
    folder.mkdir(parents=True)
    fake = folder / "holiday.mp4"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(fake, format="PNG")
    ctx = AppContext.create(micro_runs, starter=micro_runs / "no-starter")
    with pytest.raises(gr.Error) as caught:
        PredictHandlers(ctx).load_upload(str(fake), ctx.registry.default_key())
    message = str(caught.value.message)
    assert message.startswith("holiday.mp4 cannot be read")
    assert str(folder) not in message and "0123abcd" not in message


def test_a_port_in_use_is_one_line_that_says_port(tmp_path, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["--port", str(port), "--runs-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err
        == f"error: port {port} on 127.0.0.1 is in use (another app?): pass a free one with --port"
    )


def test_an_auth_file_gives_logins_and_bad_lines_are_named_by_number(tmp_path, capsys):
    good = tmp_path / "logins"
    good.write_text("# who may log in\nalice:pa:ss\n\nbob:secret\n")
    assert read_auth_file(good) == [("alice", "pa:ss"), ("bob", "secret")]
    bad = tmp_path / "bad"
    bad.write_text("alice:pw\nhunter2\n")
    args = ["--runs-dir", str(tmp_path), "--port", str(free_port()), "--auth-file", str(bad)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "line 2 is not `user:password`" in err and "hunter2" not in err


# ---------------------------------------------------------------------------------------------
# 13. A corrupt clip-feature cache is a miss: deleted, rebuilt, with a warning.


def test_a_corrupt_clip_cache_is_rebuilt_with_a_warning(micro_runs, tmp_path, monkeypatch, caplog):
    from decoder.bundle import load_bundle

    monkeypatch.setattr(clip_table, "FEATURE_CACHE_DIR", tmp_path / "cache")
    monkeypatch.setattr(clip_table, "_tables", {})
    bundle = load_bundle(micro_runs / "micro" / "decoder" / "bundle.safetensors")
    identity = {"path": "micro", "size": 1, "mtime_ns": 1}
    first = clip_table.clip_table(bundle, identity, clip_table.DataChoice(count=6))
    (cache,) = (tmp_path / "cache").glob("clips-*.npz")
    for damage in (cache.read_bytes()[:150], b"not a zip file at all"):
        cache.write_bytes(damage)
        clip_table._tables.clear()  # a new process: the table would come from disk
        with caplog.at_level("WARNING", logger="workbench"):
            again = clip_table.clip_table(bundle, identity, clip_table.DataChoice(count=6))
        assert f"clip-feature cache {cache.name} cannot be read" in caplog.text
        np.testing.assert_allclose(again.features, first.features, atol=1e-6)
        assert len(np.load(cache)["features"]) == 6  # rewritten whole
        caplog.clear()


# ---------------------------------------------------------------------------------------------
# 4. Rotated phone videos keep their shape, in the app and in training.


def write_rotated_video(path, degrees=90, size=(640, 360), frames=8):
    """A landscape-stored video flagged to display rotated (as phones record), showing a
    centred 160 px white square."""
    width, height = size
    picture = np.zeros((height, width, 3), np.uint8)
    picture[height // 2 - 80 : height // 2 + 80, width // 2 - 80 : width // 2 + 80] = 255
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.set_display_rotation(degrees)
        for _ in range(frames):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
        container.mux(stream.encode())
    return path


def square_sides(frame: np.ndarray) -> tuple[int, int]:
    """(width, height) in pixels of the bright square in an [H, W, 3] or [3, H, W] frame."""
    grey = frame.mean(-1) if frame.shape[-1] == 3 else frame.mean(0)
    bright = grey > 128
    return int(bright.any(0).sum()), int(bright.any(1).sum())


def test_a_rotated_video_is_not_squashed(tmp_path):
    from train.data.video import VideoDataset

    path = write_rotated_video(tmp_path / "phone.mp4")
    video = video_io.read_video(path)
    _, height, width, _ = video.frames.shape
    assert (width, height) == (256, 455) and video.source_size == (360, 640)
    w, h = square_sides(video.frames[0])
    assert abs(w - h) <= 2 and abs(w - 160 * 256 / 360) <= 3
    dataset = VideoDataset(path, num_frames=4, img_size=64, frame_step=1)
    decoded = dataset.read_clip(0)
    assert decoded.source_size == (360, 640) and decoded.decode_size[0] < decoded.decode_size[1]
    w, h = square_sides(decoded.frames[:, 0].numpy())
    assert abs(w - h) <= 2
    w, h = square_sides(dataset[0]["clip"][:, 0].numpy())  # the 64 px centre crop
    assert abs(w - h) <= 2 and w > 20


# ---------------------------------------------------------------------------------------------
# 8. The Train tab does not start a training in a run folder another process is writing.


def test_the_train_tab_refuses_a_run_folder_in_use(micro_runs, tmp_path):
    from train.run_dir import RunLock
    from workbench.jobs import JobManager, TrainRequest

    jobs = JobManager(tmp_path / "runs")
    # As a CLI training holds it before its first checkpoint:
    with RunLock(tmp_path / "runs" / "busy"), pytest.raises(ValueError, match="in use by another"):
        jobs.start_training(TrainRequest(name="busy", steps=2))
    assert jobs.current is None


# ---------------------------------------------------------------------------------------------
# 15. Notebook 04's first run waits on nothing outside the machine.

OFFLINE_PROBE = r"""
import json, sys

attempts = []


def record(event, args):
    # Any connection or name lookup that leaves the machine (a Unix socket or loopback is fine).
    if event == "socket.connect":
        address = args[1]
        host = address[0] if isinstance(address, tuple) else None
        if host is not None and not host.startswith("127.") and host not in ("::1", "localhost"):
            attempts.append(f"connect {address!r}")
    elif event == "socket.getaddrinfo" and args[0] not in (None, "localhost", "127.0.0.1", "::1"):
        attempts.append(f"look up {args[0]!r}")


sys.addaudithook(record)
cells = [c for c in json.load(open(sys.argv[1]))["cells"] if c["cell_type"] == "code"]
for cell in cells[:2]:  # the parameters and the imports
    exec("".join(cell["source"]))
import numpy as np
import umap  # what the notebook's UMAP map runs: numba compiles (or loads) its code here

points = np.random.default_rng(0).normal(size=(60, 8)).astype(np.float32)
umap.UMAP(n_neighbors=5, n_epochs=5, random_state=0, n_jobs=1).fit_transform(points)
print("attempts:", attempts)
"""


@pytest.mark.slow
def test_notebook_04_imports_and_first_map_need_no_network(tmp_path):
    """On a fresh machine the notebook sat idle for minutes on its first run. Its imports and a
    first UMAP map, with empty user caches (matplotlib's font list, IPython, XDG) and every
    proxy pointing at a closed port, must try no connection off the machine: a library that
    phones home would stall there until its timeout."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    closed = f"http://127.0.0.1:{free_port()}"
    env = {
        **os.environ,
        "HOME": str(tmp_path),
        "MPLCONFIGDIR": str(tmp_path / "matplotlib"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "IPYTHONDIR": str(tmp_path / "ipython"),
        **{name: closed for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")},
        "OMP_NUM_THREADS": "1",
    }
    done = subprocess.run(
        [sys.executable, "-c", OFFLINE_PROBE, str(repo / "notebooks" / "04_embeddings.ipynb")],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,  # a hang guard only: a cold numba cache compiles for about a minute
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "attempts: []"
