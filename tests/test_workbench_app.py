"""The launched app through gradio_client: each tab's main action over HTTP, as the browser
calls it, on a micro bundle; errors arrive as messages; the server listens on localhost."""

from __future__ import annotations

from pathlib import Path

import av
import httpx
import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from workbench import clip_table, maps, tab_embeddings
from workbench.__main__ import main, parse_args
from workbench.app import build_app, launch
from workbench.context import AppContext
from workbench.examples import example_names
from workbench.predict import EDITOR_PX
from workbench_fixtures import free_port, moving_square_video, painted_editor, write_micro_bundle

pytestmark = pytest.mark.xdist_group("workbench_app")
EXAMPLE = example_names()[3]  # a 16-frame physics scene


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(context, url) of the app on a free localhost port, with a micro bundle. UMAP is
    replaced by PCA here: the real one is tested in test_workbench_handlers, and its
    first fit compiles for half a minute."""
    patch = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("app")
    patch.setattr(clip_table, "FEATURE_CACHE_DIR", root / "cache")
    patch.setattr(tab_embeddings, "umap_2d", maps.pca_2d)
    write_micro_bundle(root / "runs" / "micro" / "decoder" / "bundle.safetensors")
    ctx = AppContext.create(root / "runs", starter=root / "no-starter")
    demo = build_app(ctx)
    _, url, _ = launch(demo, port=free_port(), prevent_thread_lock=True, quiet=True)
    yield ctx, url
    demo.close()
    ctx.jobs.stop()
    patch.undo()


@pytest.fixture
def client(served):
    return Client(served[1], verbose=False)


@pytest.fixture(scope="module")
def key(served):
    return served[0].registry.default_key()


def editor_files(tmp_path, box) -> dict:
    """The ImageEditor value as the browser uploads it: background and layer as PNG files."""
    value = painted_editor(EDITOR_PX, box)
    paths = {}
    for name, image in (("background", value["background"]), ("layer", value["layers"][0])):
        paths[name] = tmp_path / f"{name}.png"
        Image.fromarray(image, "RGBA").save(paths[name])
    background = handle_file(str(paths["background"]))
    return {
        "background": background,
        "layers": [handle_file(str(paths["layer"]))],
        "composite": background,
        "id": None,
    }


def frames_of(path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def test_the_server_listens_on_localhost_only(served):
    assert served[1].startswith("http://127.0.0.1:")
    args = parse_args([])
    assert (args.host, args.port) == ("127.0.0.1", 7860)


def test_predict_over_http_decodes_the_painted_region(client, key, tmp_path):
    loaded = client.predict(EXAMPLE, key, api_name="/load_example")
    assert "16 frames" in loaded[0]
    original, _, predicted, strip, _, summary = client.predict(
        key, 0, 1, editor_files(tmp_path, (160, 160, 320, 320)), "painted region",
        "whole clip", 0, 3, 0, api_name="/predict",
    )  # fmt: skip
    before, after = frames_of(original), frames_of(predicted)
    h = before.shape[1]
    inside = (slice(None), slice(h // 2 + 8, h - 8), slice(h // 2 + 8, h - 8))
    assert np.abs(after[inside].astype(int) - before[inside]).mean() > 10
    assert np.abs(after[:, : h // 2 - 8].astype(int) - before[:, : h // 2 - 8]).mean() < 3
    assert "Masked 25% of the tokens" in summary
    assert np.asarray(Image.open(strip)).shape[0] == 3 * 96 + 2 * 4


def test_bad_input_over_http_is_a_message_and_the_app_keeps_serving(client, key, tmp_path):
    client.predict(EXAMPLE, key, api_name="/load_example")
    empty = editor_files(tmp_path, (0, 0, 0, 0))
    with pytest.raises(AppError, match="nothing is painted"):
        client.predict(key, 0, 1, empty, "painted region", "whole clip", 0, 3, api_name="/predict")
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video")
    with pytest.raises(AppError, match="cannot be read"):
        client.predict(handle_file(str(text)), key, api_name="/load_upload")
    outputs = client.predict(key, 0, 1, empty, "causal", "whole clip", 0, 3, api_name="/predict")
    assert "Masked" in outputs[5]


def test_features_over_http(client, key):
    client.predict(EXAMPLE, key, api_name="/load_example")
    picture, movie, note = client.predict(key, 0, 1, "context encoder", api_name="/features")
    assert np.asarray(Image.open(picture)).shape == (2 * 96 + 4, 4 * 96 + 3 * 4, 3)
    assert len(frames_of(movie)) == 4 and note.startswith("context encoder")


def test_embedding_map_and_selection_over_http(client, key):
    figure, colour, method, status = client.predict(
        key, "physics world (labelled)", 30, "", "direction", api_name="/map_clips"
    )
    assert method == "UMAP" and "30 physics-world clips" in status
    assert ["direction", "direction"] in colour["choices"]
    assert figure["type"] == "plotly"
    selected, neighbours, note = client.predict("0, 4", api_name="/show_selection")
    assert len(selected) == 2 and len(neighbours) == 8 and "2 clips selected" in note


def raw_call(url: str, api_name: str, data: list, session: str | None = None) -> str:
    """A script's raw request, no gradio_client: POST the inputs to /gradio_api/call/NAME, then
    read the answer's event stream up to its `event: complete` or `event: error` (and the data
    line after it), returned as text."""
    with httpx.Client(base_url=url, timeout=120) as http:
        posted = http.post(
            f"gradio_api/call/{api_name}", json={"data": data, "session_hash": session}
        )
        assert posted.status_code == 200, posted.text
        lines: list[str] = []
        stream = http.stream("GET", f"gradio_api/call/{api_name}/{posted.json()['event_id']}")
        with stream as answer:
            for line in answer.iter_lines():
                lines.append(line)
                if len(lines) > 1 and lines[-2] in ("event: complete", "event: error"):
                    break  # the stream stays open for heartbeats after the last event
        return "\n".join(lines)


def file_data(path) -> dict:
    """A file input as a hostile client writes it: a server path it never uploaded."""
    return {"path": str(path), "orig_name": path.name, "meta": {"_type": "gradio.FileData"}}


def test_raw_requests_cannot_make_the_app_read_server_files(served, client, key, tmp_path):
    """Every endpoint that takes a file (the upload, the painted editor of Predict and of
    Compare) refuses a path the client did not upload: a server file (/etc/passwd) and a
    readable video outside the upload folder. The answer is an error, and neither the file's
    content nor anything read from it comes back."""
    url = served[1]
    passwd = Path("/etc/passwd")
    secret = passwd.read_text().splitlines()[0] if passwd.is_file() else None
    video = moving_square_video(tmp_path / "outside.mp4")
    # The same video, uploaded as the browser does, loads: only the path is refused below.
    assert "12 frames" in client.predict(handle_file(str(video)), key, api_name="/load_upload")[0]

    # A clip loaded in this session, so that only the injected editor files can fail Predict.
    assert "event: complete" in raw_call(url, "load_example", [EXAMPLE, key], "raw")
    editor = {"background": None, "layers": [], "composite": None, "id": None}
    background = tmp_path / "background.png"
    Image.fromarray(painted_editor(EDITOR_PX, (160, 160, 320, 320))["background"]).save(background)
    injected = [file_data(video), file_data(background)]
    if secret is not None:
        injected.append(file_data(passwd))
    for path in injected:
        painted = {**editor, "background": path, "composite": path, "layers": [path]}
        answers = {
            "load_upload": raw_call(url, "load_upload", [path, key], "raw"),
            "predict": raw_call(url, "predict", [key, 0, 1, painted, "painted region",
                                                 "whole clip", 0, 3, 0], "raw"),
            "compare_models": raw_call(url, "compare_models", [key, key, 0, 1, painted,
                                                               "painted region", "whole clip",
                                                               0, 3, 0], "raw"),
        }  # fmt: skip
        for endpoint, answer in answers.items():
            where = f"{endpoint} with {path['path']}"
            assert "event: error" in answer and "event: complete" not in answer, where
            assert "frames" not in answer and "Masked" not in answer, where
            if secret is not None:
                assert secret not in answer, where
    # Refused, not broken: the app still predicts for the client that uploaded its files.
    outputs = client.predict(
        key, 0, 1, editor_files(tmp_path, (160, 160, 320, 320)), "painted region",
        "whole clip", 0, 3, 0, api_name="/predict",
    )  # fmt: skip
    assert "Masked" in outputs[5]


def test_model_tab_over_http(client, key):
    header, summary, quality, *_ = client.predict(key, api_name="/describe_model")
    assert "run: micro/decoder" in header and "pretrained 7 steps" in summary
    assert quality["data"] == [["blob", 12.5, "", ""]]


@pytest.mark.slow
def test_training_over_http_runs_a_child_and_reports_it(served, client):
    ctx = served[0]
    message = client.predict(
        "tiny_cpu", 2, "multiblock", 5e-4, "http-run", False, False, 300,
        api_name="/start_training",
    )  # fmt: skip
    assert "Started training **http-run**" in message
    assert ctx.jobs.wait(240) == 0, ctx.jobs.current.log_tail()
    status = client.predict(api_name="/training_status")[0]
    assert "**http-run** finished at step 2 / 2" in status
    assert client.predict(api_name="/stop_training") == "Nothing is running."


def test_main_refuses_a_bundle_that_does_not_open(tmp_path, capsys):
    fake = tmp_path / "model.safetensors"
    fake.write_text("not a bundle")
    args = ["--bundle", str(fake), "--runs-dir", str(tmp_path), "--port", str(free_port())]
    assert main(args) == 2
    assert "not a model bundle" in capsys.readouterr().err
