"""Workbench building blocks on numpy inputs: painted layers to masks, video in and out,
PCA colours, 2-D maps and neighbours, frame strips, figures."""

from __future__ import annotations

import av
import numpy as np
import pytest

from decoder.bundle import load_bundle
from decoder.masks import TemporalExtent
from train.config import BlockSpec, MaskConfig
from workbench.clip_store import ClipStore
from workbench.features import pca_rgb, token_map_to_frames
from workbench.frames import enlarge, side_by_side, strip, write_gif
from workbench.maps import nearest_neighbours, pca_2d
from workbench.masks_ui import (
    MaskChoice,
    mask_token_role,
    painted_pixels,
    temporal_extent,
    token_mask,
)
from workbench.plots import collapse_figure, embedding_figure, probe_figure, surprise_figure
from workbench.predict import EDITOR_PX, clip_window, last_start
from workbench.tab_embeddings import compact_clip_numbers, parse_clip_numbers
from workbench.video_io import Video, VideoError, read_video, write_mp4
from workbench_fixtures import MICRO_FRAMES, MICRO_SIZE, painted_editor, write_micro_bundle


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return load_bundle(write_micro_bundle(tmp_path_factory.mktemp("b") / "micro.safetensors"))


# ---------------------------------------------------------------------------------------------
# Painted layers -> masks.


def test_painted_pixels_is_the_union_of_all_layers_alpha():
    value = painted_editor(20, (0, 0, 5, 5))
    second = np.zeros((20, 20, 4), np.uint8)
    second[10:12, 10:15, 3] = 1  # faint paint still counts
    value["layers"].append(second)
    painted = painted_pixels(value)
    assert painted.sum() == 25 + 10
    assert painted[11, 14] and not painted[12, 14]


def test_painted_pixels_refuses_rgb_layers_and_no_clip():
    with pytest.raises(ValueError, match="RGBA"):
        painted_pixels({"background": None, "layers": [np.zeros((4, 4, 3), np.uint8)]})
    with pytest.raises(ValueError, match="load a clip"):
        painted_pixels(None)


@pytest.mark.parametrize(
    ("mode", "start", "stop", "expected"),
    [
        ("whole clip", 3, 5, TemporalExtent(0, None)),
        ("frame range", 1, 2, TemporalExtent(1, 3)),
        ("the future", 2, None, TemporalExtent(2, None)),
    ],
)
def test_temporal_extent_modes(mode, start, stop, expected):
    assert temporal_extent(mode, 4, start, stop) == expected


@pytest.mark.parametrize(
    ("mode", "start", "stop", "message"),
    [
        ("the future", 0, None, "at least the first frame"),
        ("frame range", 3, 1, "must not come after"),
        ("frame range", 0, 4, "does not fit"),
        ("sideways", 0, 0, "unknown extent"),
    ],
)
def test_temporal_extent_refuses_bad_ranges(mode, start, stop, message):
    with pytest.raises(ValueError, match=message):
        temporal_extent(mode, 4, start, stop)


def test_painted_square_becomes_the_tokens_under_it(bundle):
    # The editor is EDITOR_PX wide for a 32 px model: 10 px per model pixel, 80 per token.
    editor = painted_editor(EDITOR_PX, (0, 0, 80, 80))
    mask, index = token_mask(bundle, MaskChoice(extent="frame range", range_stop=1), editor)
    expected = np.zeros(bundle.grid, bool)
    expected[0, 0, 0] = True  # frames 0-1 are the first tubelet; the square is token (0, 0)
    np.testing.assert_array_equal(mask.numpy(), expected)
    assert index == 0  # a small region uses the short-range predictor token


def test_future_extent_hides_the_painted_region_from_frame_k_on(bundle):
    editor = painted_editor(EDITOR_PX, (0, 0, EDITOR_PX, EDITOR_PX // 2))
    mask, _ = token_mask(bundle, MaskChoice(extent="the future", range_start=2), editor)
    assert not mask[0].any()
    assert mask[1, :, : MICRO_SIZE // 8 // 2].all() and not mask[1, :, 2:].any()


def test_empty_and_full_masks_are_refused_with_a_message(bundle):
    with pytest.raises(ValueError, match="nothing is painted"):
        token_mask(bundle, MaskChoice(), painted_editor(EDITOR_PX, (0, 0, 0, 0)))
    with pytest.raises(ValueError, match="hides every token"):
        token_mask(bundle, MaskChoice(), painted_editor(EDITOR_PX, (0, 0, EDITOR_PX, EDITOR_PX)))


def test_preset_masks_need_no_paint(bundle):
    mask, _ = token_mask(bundle, MaskChoice(source="causal"), None)
    assert mask[-1].all() and not mask[0].any()


# ---------------------------------------------------------------------------------------------
# Windows of frames.


def test_clip_window_takes_every_step_th_frame():
    frames = np.arange(20)[:, None, None, None] * np.ones((1, 2, 2, 3), np.uint8)
    window = clip_window(frames, start=3, step=2, num_frames=4)
    assert window[:, 0, 0, 0].tolist() == [3, 5, 7, 9]
    assert last_start(20, 2, 4) == 13
    with pytest.raises(ValueError, match="runs past the end"):
        clip_window(frames, start=14, step=2, num_frames=4)
    with pytest.raises(ValueError, match="needs 4 frames 8 apart"):
        clip_window(frames, start=0, step=8, num_frames=4)


# ---------------------------------------------------------------------------------------------
# Video in and out.


def _codec(path):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        return stream.codec_context.name, stream.codec_context.pix_fmt, frames


def test_write_mp4_is_browser_playable_h264_even_for_odd_sizes(tmp_path):
    frames = np.random.default_rng(0).integers(0, 255, (5, 33, 47, 3), dtype=np.uint8)
    path = write_mp4(frames, tmp_path / "odd.mp4", fps=4)
    assert _codec(path) == ("h264", "yuv420p", 5)


def test_read_video_downscales_and_keeps_the_first_seconds(tmp_path):
    frames = np.zeros((30, 480, 640, 3), np.uint8)
    frames[:, :, :320] = 200
    path = write_mp4(frames, tmp_path / "big.mp4", fps=10)
    video = read_video(path, max_seconds=1.5, short_side=96)
    assert video.frames.shape == (15, 96, 128, 3)
    assert video.total_frames == 30 and video.cut and video.source_size == (640, 480)
    assert video.frames[0, 50, 10, 0] > 150 and video.frames[0, 50, 120, 0] < 50
    assert "resized from 640x480" in video.describe()


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("notes.txt", b"hello", "not a video file"),
        ("broken.mp4", b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 200, "cannot be read"),
        ("empty.mp4", b"", "empty file"),
    ],
)
def test_read_video_refuses_bad_files_with_a_reason(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(VideoError, match=message):
        read_video(path)


def test_read_video_refuses_files_over_the_size_limit(tmp_path):
    path = write_mp4(np.zeros((2, 16, 16, 3), np.uint8), tmp_path / "small.mp4", fps=2)
    with pytest.raises(VideoError, match="the limit is"):
        read_video(path, max_bytes=10)


# ---------------------------------------------------------------------------------------------
# Pictures.


def test_strip_lays_rows_and_frames_out_with_gaps():
    a = np.zeros((3, 4, 4, 3), np.uint8)
    b = np.full((3, 4, 4, 3), 9, np.uint8)
    picture = strip([a, b], size=8)
    assert picture.shape == (8 + 4 + 8, 3 * 8 + 2 * 4, 3)
    assert picture[0, 0, 0] == 0 and picture[12, 0, 0] == 9 and picture[9, 0, 0] == 255
    assert enlarge(a, 9).shape == (3, 8, 8, 3)  # rounded down to a whole factor
    assert side_by_side([a, b]).shape == (3, 4, 4 + 4 + 4, 3)


def test_write_gif_keeps_every_frame(tmp_path):
    from PIL import Image

    frames = np.stack([np.full((8, 8, 3), v, np.uint8) for v in (0, 100, 200)])
    with Image.open(write_gif(frames, tmp_path / "a.gif")) as gif:
        assert gif.n_frames == 3


# ---------------------------------------------------------------------------------------------
# PCA colours, maps, neighbours.


def test_pca_rgb_gives_equal_tokens_equal_colours_in_every_frame():
    rng = np.random.default_rng(0)
    kinds = rng.normal(size=(3, 16))  # three kinds of token
    assignment = rng.integers(0, 3, size=(4, 5, 5))
    colours = pca_rgb(kinds[assignment])
    for kind in range(3):
        seen = colours.rgb[assignment == kind]
        assert (seen == seen[0]).all()
    assert len({tuple(colours.rgb[assignment == k][0]) for k in range(3)}) == 3
    assert colours.explained[:2].sum() == pytest.approx(1.0)  # three points span a plane
    assert token_map_to_frames(colours.rgb, 2, 3).shape == (8, 15, 15, 3)


def test_pca_2d_finds_the_spread_direction_and_neighbours_are_cosine_nearest():
    rng = np.random.default_rng(0)
    x = np.zeros((200, 5))
    x[:, 3] = rng.normal(size=200) * 10
    x[:, 1] = rng.normal(size=200)
    coords = pca_2d(x)
    assert abs(np.corrcoef(coords[:, 0], x[:, 3])[0, 1]) > 0.99
    features = np.array([[1, 0], [0.9, 0.1], [0, 1], [-1, 0], [0.8, -0.2]], np.float32)
    assert nearest_neighbours(features, [0], k=2).tolist() == [1, 4]
    assert 0 not in nearest_neighbours(features, [0, 1], k=3)


# ---------------------------------------------------------------------------------------------
# Figures.


def test_figures_carry_the_values_they_show():
    surprise = surprise_figure(np.array([np.nan, np.nan, 0.5, 0.7], np.float32))
    assert list(surprise.data[0].y[2:]) == pytest.approx([0.5, 0.7])
    fig = embedding_figure(np.zeros((4, 2)), np.array([0, 1, 1, 0]), ["a", "b"], "t")
    assert [trace.name for trace in fig.data] == ["a", "b"]
    assert list(fig.data[1].customdata) == [1, 2]
    records = [
        {"step": 10, "loss": 0.5, "pred_std": 0.1, "target_std": 0.4},
        {"step": 20, "loss": 0.4, "rankme": 30.0, "probe_shape": 0.5},
    ]
    collapse = collapse_figure(records)
    assert [len(trace.x) for trace in collapse.data] == [1, 1, 1]
    assert probe_figure(records).data[0].name == "shape"


def test_the_probe_curve_stands_beside_chance_and_its_first_measurement():
    records = [
        {"step": 1, "probe_shape": 0.2, "probe_speed": 0.3, "probe_label": 0.5},
        {"step": 50, "probe_shape": 0.4, "probe_speed": 0.35, "probe_label": 0.6},
    ]
    fig = probe_figure(records)
    traces = {trace.name: trace for trace in fig.data}
    # Chance: 1 / number of classes of the physics world's label, dashed, over the steps.
    for label, classes in (("shape", 6), ("speed", 3)):
        chance = traces[f"{label}: chance {1 / classes:.0%}"]
        assert chance.line.dash == "dash" and list(chance.x) == [1, 50]
        assert list(chance.y) == pytest.approx([1 / classes] * 2)
    # The first probe, one optimiser step in, is the reference; said so honestly.
    start = traces["shape: step 1 (≈ untrained)"]
    assert start.line.dash == "dot" and list(start.y) == pytest.approx([0.2, 0.2])
    # A video list's label has no known class count: no chance line is invented for it.
    assert not any(name.startswith("label: chance") for name in traces)
    assert "label: step 1 (≈ untrained)" in traces
    # A step-0 measurement is named as such; a chance level given overrides the default.
    step0 = probe_figure([{"step": 0, "probe_speed": 0.5}], chance={"speed": 0.4})
    assert [trace.name for trace in step0.data] == [
        "speed",
        "speed: chance 40%",
        "speed: step 0 (untrained)",
    ]
    # A first probe after real training is no untrained reference: the title says so.
    late = probe_figure([{"step": 10, "probe_shape": 0.3}])
    assert [trace.name for trace in late.data] == ["shape", "shape: chance 17%"]
    assert "first probe at step 10: no untrained reference" in late.layout.title.text


def test_clip_store_drops_the_oldest_clips_beyond_its_budget():
    def video(name: str) -> Video:
        return Video(np.zeros((2, 10, 10, 3), np.uint8), 8.0, name, (10, 10), 2)  # 600 bytes

    store = ClipStore(capacity=3, max_bytes=1300)
    keys = [store.put(video(str(i))) for i in range(3)]
    assert store.get(keys[2]).name == "2" and store.get(keys[1]).name == "1"
    with pytest.raises(ValueError, match="no clip loaded"):
        store.get(keys[0])  # 3 x 600 bytes > 1300: the oldest went
    big = ClipStore(max_bytes=10)
    assert big.get(big.put(video("only"))).name == "only"  # the newest always stays


def test_micro_bundle_loads_with_the_expected_geometry(tmp_path):
    bundle = load_bundle(write_micro_bundle(tmp_path / "micro.safetensors"))
    assert bundle.grid == (MICRO_FRAMES // 2, MICRO_SIZE // 8, MICRO_SIZE // 8)
    assert bundle.num_frames == MICRO_FRAMES and bundle.img_size == MICRO_SIZE
    assert bundle.pretrained.step == 7


def test_painted_editor_paints_only_the_box():
    value = painted_editor(40, (10, 20, 30, 40))
    alpha = value["layers"][0][..., 3]
    assert alpha.sum() == 255 * 20 * 20
    assert alpha[9, 25] == 0 and alpha[10, 20] == 255


# ---------------------------------------------------------------------------------------------
# Plain words in the UI.


@pytest.mark.parametrize(
    ("mask_cfg", "index", "words"),
    [
        (MaskConfig(), 0, "short-range blocks"),  # the paper's 8 small blocks
        (MaskConfig(), 1, "long-range blocks"),  # ...and its 2 large ones
        (MaskConfig(future_sets=1), 2, "future frames"),  # future sets follow the strategy's
        (MaskConfig(strategy="causal"), 0, "future frames"),
        (MaskConfig(strategy="random_tube"), 1, "tubes"),
        (MaskConfig(multiblock=[BlockSpec(num_blocks=4)]), 0, "hidden blocks"),
    ],
)
def test_mask_token_role_names_what_the_token_is_for(mask_cfg, index, words):
    assert mask_token_role(mask_cfg, index).startswith(words)


@pytest.mark.parametrize(
    ("numbers", "shown"),
    [
        ([3], "3"),
        ([5, 3, 4, 20, 4], "3-5, 20"),
        (list(range(295)), "0-294"),
        ([0, 2, 4, 5, 6, 9], "0, 2, 4-6, 9"),
    ],
)
def test_selections_are_shown_as_ranges_and_read_back(numbers, shown):
    assert compact_clip_numbers(numbers) == shown
    assert parse_clip_numbers(shown, 300) == sorted(set(numbers))


def test_clip_numbers_accept_lists_and_ranges_and_refuse_the_rest():
    assert parse_clip_numbers("7, 3 - 5, 3", 10) == [7, 3, 4, 5]  # in order, each once
    with pytest.raises(ValueError, match="runs backwards"):
        parse_clip_numbers("9-2", 10)
    with pytest.raises(ValueError, match=r"clip numbers 10, 11, 12, 13, 14, \.\.\. do not exist"):
        parse_clip_numbers("5-20", 10)
    with pytest.raises(ValueError, match="type clip numbers"):
        parse_clip_numbers("", 10)
