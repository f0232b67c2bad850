"""Opening a big model on a CPU: bf16 weights (half the bytes, outputs within the stated
tolerance of fp32) and a smaller input (another token grid, still predicting), with clear errors
for sizes that do not split into the model's tubelets. Micro models, random weights."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from conftest import MICRO
from decoder.bundle import BundleError, load_bundle, without_decoder
from decoder.latents import predicted_latents, token_mask_set
from train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from train.config import ConfigError, dump_config, load_config, to_dict
from train.data import normalize_clip
from train.pretrained import (
    BF16_MEAN_DIFFERENCE,
    BF16_TAIL_DIFFERENCE,
    MODEL_PARTS,
    WEIGHT_DTYPES,
    Pretrained,
    bf16_gap,
    build_models,
    cast_weights,
    initial_models,
    load_pretrained,
    resized_config,
)
from train.streamed_weights import file_page_releaser, models_from_file
from workbench.__main__ import WEIGHTS, main, parse_args
from workbench.bundles import BundleRegistry, OpenOptions, opened_with
from workbench.latent_view import latent_view
from workbench.masks_ui import MaskChoice
from workbench.predict import predict
from workbench_fixtures import free_port, write_micro_bundle

POSITIONS = ["rope", "sincos_uniform", "sincos"]


def micro_models(positions: str) -> Pretrained:
    """The micro models at step 0 (as the app's step-0 reference builds them)."""
    return initial_models(load_config("tiny_cpu", [*MICRO, f"model.positions={positions}"]))


def opened(positions: str, options: OpenOptions):
    return opened_with(without_decoder(micro_models(positions), {}), options)


def parameter_bytes(models: Pretrained) -> int:
    parts = (models.encoder, models.predictor, models.target_encoder)
    return sum(p.numel() * p.element_size() for part in parts for p in part.parameters())


def random_clip(frames: int, size: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (3, frames, size, size), dtype=torch.uint8, generator=gen)


@pytest.mark.parametrize("positions", POSITIONS)
def test_bf16_weights_halve_the_bytes_and_stay_within_the_tolerance(positions):
    full = opened(positions, OpenOptions("fp32"))
    half = opened(positions, OpenOptions("bf16"))
    assert parameter_bytes(half.pretrained) * 2 == parameter_bytes(full.pretrained)
    assert all(p.dtype == torch.bfloat16 for p in half.encoder.parameters())
    # The fixed position tables keep float32: bf16 has too few digits for positions.
    assert all(b.dtype == torch.float32 for b in half.encoder.buffers())

    clips = normalize_clip(random_clip(4, 32)[None])
    for name in ("multiblock-short", "multiblock-long", "causal"):
        mask, mask_index = full.preset_mask(name, seed=1)
        masks = token_mask_set(mask[None])
        reference = predicted_latents(full.pretrained, clips, masks, mask_index)
        low = predicted_latents(half.pretrained, clips, masks, mask_index)
        gap = bf16_gap(reference, low)
        assert 0 < gap["tail"] <= BF16_TAIL_DIFFERENCE, name
        assert 0 < gap["mean"] <= BF16_MEAN_DIFFERENCE, name


def test_bf16_weights_leave_fp32_models_computing_as_before():
    """The cast to the weights' dtype is a no-op for float32 weights: the same numbers."""
    models = micro_models("rope")
    clips = normalize_clip(random_clip(4, 32)[None])
    before = models.encoder(clips)
    assert before.dtype == torch.float32
    assert torch.equal(models.encoder(clips), before)


@pytest.mark.parametrize("positions", POSITIONS)
def test_a_smaller_input_changes_the_grid_and_still_predicts(positions):
    bundle = opened(positions, OpenOptions("bf16", num_frames=2, img_size=16))
    assert (bundle.num_frames, bundle.img_size, bundle.grid) == (2, 16, (1, 2, 2))
    mask, mask_index = bundle.preset_mask("multiblock-long", seed=0)
    assert tuple(mask.shape) == (1, 2, 2)
    view = latent_view(bundle, random_clip(2, 16), mask, mask_index)
    assert view.predicted.shape == (2, 16, 16, 3)
    assert torch.isfinite(torch.from_numpy(view.surprise_per_step)).any()


@pytest.mark.parametrize("positions", ["sincos_uniform", "sincos"])
def test_a_smaller_grid_uses_the_exact_sincos_table_of_that_grid(positions):
    """The stored table stays at the native grid; at another one the encoder computes the same
    features as a model built at that grid with the same weights."""
    models = micro_models(positions)
    config = resized_config(models.config, 2, 16)
    native = build_models(config).eval()
    weights = {k: v for k, v in models.encoder.state_dict().items() if k != "pos_embed"}
    native.encoder.load_state_dict(weights, strict=False)
    clip = normalize_clip(random_clip(2, 16)[None])
    assert torch.equal(models.encoder(clip), native.encoder(clip))


def test_the_full_predict_runs_on_a_resized_bf16_model():
    bundle = opened("rope", OpenOptions("bf16", num_frames=2, img_size=16))
    stages = []
    window = random_clip(2, 16).permute(1, 2, 3, 0).numpy()  # frames [T, H, W, 3]
    shown = predict(
        bundle,
        window,
        MaskChoice("multiblock-long"),
        None,
        progress=lambda share, text: stages.append(share),
    )
    assert stages == sorted(stages) and len(stages) == 3
    assert all(path.is_file() for path in shown.videos.values())


@pytest.mark.parametrize(
    ("frames", "size", "words"),
    [
        (3, None, "multiple of the tubelet depth (2 frames)"),
        (0, None, "0 frames"),
        (None, 20, "multiple of the patch size (8 px)"),
        (None, 4, "4 px"),
    ],
)
def test_sizes_that_do_not_split_into_tubelets_are_refused(frames, size, words):
    config = micro_models("rope").config
    with pytest.raises(ConfigError, match="cannot resize") as err:
        resized_config(config, frames, size)
    assert words in str(err.value)


def test_bad_options_are_refused_with_the_flag_named(tmp_path):
    with pytest.raises(ConfigError, match="--weights fp16"):
        OpenOptions("fp16").check()
    assert tuple(WEIGHT_DTYPES) == WEIGHTS
    with pytest.raises(SystemExit):
        parse_args(["--weights", "fp16"])
    args = parse_args(["--model", "run", "--weights", "bf16", "--frames", "8", "--img-size", "160"])
    assert (args.weights, args.frames, args.img_size) == ("bf16", 8, 160)
    # The options shape the --model model: without one they are an error, not ignored.
    assert main(["--frames", "8", "--port", str(free_port()), "--runs-dir", str(tmp_path)]) == 2
    # A pixel decoder is fitted at one clip size: a bundle with one is not resized.
    bundle_path = write_micro_bundle(tmp_path / "micro.safetensors")
    registry = BundleRegistry(
        tmp_path, tmp_path / "no-starter", bundle_path, "--model", OpenOptions(num_frames=2)
    )
    with pytest.raises(BundleError, match="without a pixel decoder"):
        registry.load(registry.default_key())
    with pytest.raises(BundleError, match="multiple of the patch size"):
        opened_with(without_decoder(micro_models("rope"), {}), OpenOptions(img_size=12))


def test_the_registry_opens_only_the_model_flag_model_in_bf16(tmp_path):
    bundle_path = write_micro_bundle(tmp_path / "micro.safetensors")
    other = write_micro_bundle(tmp_path / "runs" / "other" / "bundle.safetensors", seed=1)
    registry = BundleRegistry(
        tmp_path / "runs", tmp_path / "no-starter", bundle_path, "--model", OpenOptions("bf16")
    )
    flagged = registry.load(registry.default_key())
    assert next(flagged.encoder.parameters()).dtype == torch.bfloat16
    assert next(flagged.decoder.parameters()).dtype == torch.float32  # reads float32 latents
    assert "bfloat16 weights" in flagged.summary()
    assert next(registry.load(str(other)).encoder.parameters()).dtype == torch.float32
    # The decoded Predict: bf16 latents, read by the float32 decoder.
    window = random_clip(4, 32).permute(1, 2, 3, 0).numpy()
    shown = predict(flagged, window, MaskChoice("multiblock-long"), None)
    assert shown.comparison is not None and "Masked" in shown.summary


# ------------------------------------------------------------------------------------------
# Opening a checkpoint straight into its precision (train.streamed_weights).


def write_micro_checkpoint(folder, positions: str = "sincos_uniform", **edits):
    """A run directory of the micro models (random weights); `edits` replace parts."""
    models = micro_models(positions)
    folder.mkdir(parents=True, exist_ok=True)
    dump_config(models.config, folder / "config.yaml")
    state = {
        "config": to_dict(models.config),
        "step": 3,
        "loss": 0.25,
        **{part: getattr(models, part).state_dict() for part in MODEL_PARTS},
        **edits,
    }
    return save_checkpoint(folder / "checkpoints", state, keep_copy=False)


@pytest.mark.parametrize("positions", POSITIONS)
def test_a_checkpoint_opens_straight_into_bf16_as_a_load_then_cast(tmp_path, positions):
    path = write_micro_checkpoint(tmp_path, positions)
    reference = load_pretrained(path)
    streamed, rest = models_from_file(path)
    half, _ = models_from_file(path, torch.bfloat16)
    cast = cast_weights(load_pretrained(path), torch.bfloat16)
    for part in MODEL_PARTS:
        expected, got = getattr(reference, part).state_dict(), getattr(streamed, part).state_dict()
        assert all(torch.equal(got[k], v) and got[k].dtype == v.dtype for k, v in expected.items())
        expected, got = getattr(cast, part).state_dict(), getattr(half, part).state_dict()
        assert all(torch.equal(got[k], v) and got[k].dtype == v.dtype for k, v in expected.items())
    assert all(p.dtype == torch.bfloat16 for p in half.encoder.parameters())
    assert all(b.dtype == torch.float32 for b in half.encoder.buffers())  # position tables
    assert (half.step, rest["loss"], half.encoder.training) == (3, 0.25, False)


def test_a_streamed_open_is_strict_and_lists_every_disagreement(tmp_path):
    models = micro_models("rope")
    encoder = models.encoder.state_dict()
    encoder.pop("norm.bias")
    encoder["norm.weight"] = torch.zeros(5)
    encoder["head.weight"] = torch.zeros(2)
    path = write_micro_checkpoint(tmp_path, "rope", encoder=encoder)
    with pytest.raises(CheckpointError) as err:
        models_from_file(path, torch.bfloat16)
    message = str(err.value)
    assert "missing (1): norm.bias" in message
    assert "unexpected (1): head.weight" in message
    assert "norm.weight: checkpoint (5,)" in message


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="page release is Linux only")
def test_released_pages_leave_the_process_and_read_back_unchanged(tmp_path):
    """The tensors of a mapped file stop counting in the resident memory once copied; a page
    handed back is read from the file again if touched."""
    path = tmp_path / "big.pt"
    big = torch.arange(16 * 2**20, dtype=torch.float32)  # 64 MiB
    torch.save({"big": big}, path)
    mapped = load_checkpoint(path, mmap=True)["big"]
    assert torch.equal(mapped, big)  # every page is now resident
    before = status_kib("RssFile")
    file_page_releaser(path)(mapped)
    after = status_kib("RssFile")
    assert before - after >= 48 * 1024, (before, after)
    assert torch.equal(mapped, big)


def test_the_registry_opens_a_run_in_bf16_from_its_file(tmp_path):
    run = tmp_path / "runs" / "imported"
    write_micro_checkpoint(run, "rope")
    registry = BundleRegistry(
        tmp_path / "runs", tmp_path / "no-starter", run, "--model", OpenOptions("bf16")
    )
    bundle = registry.load(registry.default_key())
    assert all(p.dtype == torch.bfloat16 for p in bundle.encoder.parameters())
    assert bundle.provenance["pretrain"]["steps"] == 3
    view = latent_view(bundle, random_clip(4, 32), *bundle.preset_mask("multiblock-long", 0))
    assert torch.isfinite(torch.from_numpy(view.surprise_per_step)).any()


def status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/self/status")


def test_a_bundle_opens_straight_into_bf16_as_a_load_then_cast(tmp_path):
    path = write_micro_bundle(tmp_path / "micro.safetensors")
    half = load_bundle(path, weight_dtype=torch.bfloat16)
    cast = cast_weights(load_bundle(path).pretrained, torch.bfloat16)
    for part in MODEL_PARTS:
        expected, got = getattr(cast, part).state_dict(), getattr(half, part).state_dict()
        assert all(torch.equal(got[k], v) and got[k].dtype == v.dtype for k, v in expected.items())
    assert next(half.decoder.parameters()).dtype == torch.float32
    assert half.pretrained.step == load_bundle(path).pretrained.step
