"""Bundles (save, load, refuse pickles) and rendering a prediction from one."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from decoder.bundle import STARTER_PATH, BundleError, load_bundle, save_bundle
from decoder.render import HIDDEN_COLOUR, render_prediction
from decoder_fixtures import (
    micro_decoder,
    micro_decoder_config,
    micro_pretrained,
    random_clip,
)


def write_micro_bundle(path: Path, weight_dtype: torch.dtype = torch.float32) -> Path:
    pretrained = micro_pretrained(scrambled=True)
    decoder = micro_decoder(pretrained)
    probe = {"accuracy": {"shape": {"mean": 0.5, "std": 0.0}}}
    provenance = {"command": "test", "pretrain": {"steps": 7}, "probe": probe}
    return save_bundle(
        path, pretrained, decoder, micro_decoder_config(), provenance, weight_dtype=weight_dtype
    )


@pytest.fixture
def bundle_path(tmp_path) -> Path:
    return write_micro_bundle(tmp_path / "micro.safetensors")


def small_mask() -> torch.Tensor:
    mask = torch.zeros(2, 4, 4, dtype=torch.bool)
    mask[1, 1:3, 1:3] = True  # the second time step only (frames 2-3)
    return mask


def test_round_trip_keeps_every_weight_and_the_records(bundle_path):
    bundle = load_bundle(bundle_path)
    pretrained = micro_pretrained(scrambled=True)
    for name, value in pretrained.predictor.state_dict().items():
        assert torch.equal(bundle.predictor.state_dict()[name], value), name
    assert torch.equal(
        bundle.decoder.decoder_pred.weight, micro_decoder(pretrained).decoder_pred.weight
    )
    assert bundle.provenance["pretrain"]["steps"] == 7 and bundle.pretrained.step == 7
    assert bundle.config.model.img_size == 32 and bundle.grid == (2, 4, 4)
    assert bundle.decoder_config.model.embed_dim == 32
    assert not any(p.requires_grad for m in bundle.modules() for p in m.parameters())
    assert "pretrained 7 steps" in bundle.summary() and "shape 50%" in bundle.summary()


def test_half_precision_bundle_is_smaller_and_close(tmp_path, bundle_path):
    half = write_micro_bundle(tmp_path / "half.safetensors", torch.float16)
    assert half.stat().st_size < 0.6 * bundle_path.stat().st_size
    full, small = load_bundle(bundle_path), load_bundle(half)
    assert small.encoder.blocks[0].attn.qkv.weight.dtype == torch.float32
    assert torch.equal(small.encoder.pos_embed, full.encoder.pos_embed)  # fixed tables exact
    clip, mask = random_clip(), small_mask()
    a = render_prediction(full, clip, mask).decoded.astype(int)
    b = render_prediction(small, clip, mask).decoded.astype(int)
    assert np.abs(a - b).max() <= 3


class WritesAFile:
    """Unpickling this creates a file: proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("writer", ["torch.save", "pickle"])
def test_a_pickle_is_refused_unopened(tmp_path, writer):
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.safetensors"
    payload = {"encoder": WritesAFile(marker)}
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload))
    with pytest.raises(BundleError, match="not loaded, because a pickle can execute code"):
        load_bundle(path)
    assert not marker.exists()


def test_other_bad_files_get_clear_errors(tmp_path):
    with pytest.raises(BundleError, match="no bundle at"):
        load_bundle(tmp_path / "missing.safetensors")
    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, plain, metadata={"format": "something-else"})
    with pytest.raises(BundleError, match="not a vjepa-workbench-bundle"):
        load_bundle(plain)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"hello, this is not a model at all")
    with pytest.raises(BundleError, match="not a safetensors file"):
        load_bundle(junk)


def test_render_composites_the_prediction_into_the_mask_only(bundle_path):
    bundle = load_bundle(bundle_path)
    clip = random_clip()
    frames = clip.permute(1, 2, 3, 0).numpy()  # [T, H, W, 3] as a video reader gives
    shown = render_prediction(bundle, frames, small_mask())
    for name in ("original", "masked", "composited", "decoded"):
        value = getattr(shown, name)
        assert value.shape == (4, 32, 32, 3) and value.dtype == np.uint8, name
    inside = shown.pixel_mask
    assert inside.sum() == 2 * 16 * 16 and inside[2:].all(axis=0)[8:24, 8:24].all()
    assert np.array_equal(shown.original, frames)
    assert np.array_equal(shown.composited[~inside], frames[~inside])
    assert np.array_equal(shown.masked[~inside], frames[~inside])
    assert (shown.decoded[~inside] == 0).all()
    centre = np.zeros_like(inside)
    centre[2:, 9:23, 9:23] = True  # inside the mask, away from its outline
    assert np.array_equal(shown.composited[centre], shown.decoded[centre])
    assert (shown.masked[centre] == HIDDEN_COLOUR).all()
    assert np.isnan(shown.surprise[:2]).all() and (shown.surprise[2:] > 0).all()
    assert shown.surprise_per_step.shape == (2,) and shown.mask_index == 0


def test_render_ignores_what_is_under_the_mask(bundle_path):
    bundle = load_bundle(bundle_path)
    clip, mask = random_clip(seed=0), small_mask()
    shown = render_prediction(bundle, clip, mask)
    hidden = torch.as_tensor(shown.pixel_mask)[None].expand_as(clip)
    repainted = torch.where(hidden, random_clip(seed=5), clip)
    again = render_prediction(bundle, repainted, mask)
    assert np.array_equal(again.decoded, shown.decoded)
    # Surprise compares the prediction with what is really there, so it does change.
    assert not np.allclose(again.surprise[2:], shown.surprise[2:])


def test_render_refuses_bad_input_with_the_expected_size(bundle_path):
    bundle = load_bundle(bundle_path)
    with pytest.raises(ValueError, match="exactly 4 frames of 32x32 px"):
        render_prediction(bundle, random_clip(frames=8, size=64), small_mask())
    with pytest.raises(ValueError, match="hides no token"):
        render_prediction(bundle, random_clip(), torch.zeros(2, 4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="hides every token"):
        render_prediction(bundle, random_clip(), torch.ones(2, 4, 4, dtype=torch.bool))
    # The app's path for any video: fit it, then paint and render.
    fitted = bundle.fit_clip(np.zeros((10, 48, 80, 3), dtype=np.uint8))
    painted = np.zeros((32, 32), dtype=bool)
    painted[4:12, 20:30] = True
    mask = bundle.painted_mask(painted)
    assert render_prediction(bundle, fitted, mask).composited.shape == (4, 32, 32, 3)
    preset, index = bundle.preset_mask("multiblock-long", seed=1)
    assert render_prediction(bundle, fitted, preset, index).mask_index == index == 1


@pytest.mark.skipif(not STARTER_PATH.exists(), reason="the starter bundle is built by make starter")
def test_the_committed_starter_bundle_opens_and_renders():
    bundle = load_bundle()
    assert STARTER_PATH.stat().st_size < 15 * 2**20
    for key in ("command", "git_commit", "pretrain", "decoder", "quality"):
        assert key in bundle.provenance, key
    clip = bundle.fit_clip(np.full((bundle.num_frames, 100, 120, 3), 90, dtype=np.uint8))
    mask, index = bundle.preset_mask("multiblock-short")
    shown = render_prediction(bundle, clip, mask, index)
    assert shown.composited.shape == (bundle.num_frames, bundle.img_size, bundle.img_size, 3)
    assert np.isfinite(shown.surprise).all()


@pytest.mark.parametrize("low_byte", [0x80, 0x50])
def test_a_header_length_whose_low_byte_looks_like_a_pickle_still_loads(tmp_path, low_byte):
    """safetensors files start with the header length: its low byte may be 0x80, a pickle's
    first byte, and such a bundle must not be refused as a pickle."""
    pretrained = micro_pretrained(scrambled=True)
    decoder = micro_decoder(pretrained)
    path = tmp_path / "odd.safetensors"
    for padding in range(300):
        provenance = {"command": "test", "pretrain": {"steps": 7}, "pad": "x" * padding}
        save_bundle(path, pretrained, decoder, micro_decoder_config(), provenance)
        if path.read_bytes()[0] == low_byte:
            break
    assert path.read_bytes()[0] == low_byte
    assert load_bundle(path).provenance["pad"] == "x" * padding


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_opening_a_bundle_holds_one_tensor_of_the_file_at_a_time(bundle_path, monkeypatch, dtype):
    """A ViT-L bundle must not be in memory whole beside its models: the file's tensors are
    read one by one while the models are filled, each dropped after its copy."""
    import weakref

    from train.pretrained import SafetensorsPart

    alive: list[weakref.ref] = []
    most_alive = 0
    read = SafetensorsPart.__getitem__

    def counting(self, name):
        nonlocal most_alive
        tensor = read(self, name)
        if self._prefix == "decoder.":  # a few MB, read as one state dict
            return tensor
        alive[:] = [ref for ref in alive if ref() is not None]
        alive.append(weakref.ref(tensor))
        most_alive = max(most_alive, len(alive))
        return tensor

    monkeypatch.setattr(SafetensorsPart, "__getitem__", counting)
    bundle = load_bundle(bundle_path, weight_dtype=dtype)
    assert len(alive) >= 1 and most_alive <= 2  # the one being copied (and the last, if kept)
    reference = load_bundle(bundle_path)
    for name, value in reference.encoder.state_dict().items():
        own = bundle.encoder.state_dict()[name]  # position tables stay float32
        assert torch.equal(own, value.to(own.dtype)), name


def test_a_mis_shaped_tensor_in_a_bundle_is_named_from_the_header(tmp_path, bundle_path):
    from safetensors import safe_open

    with safe_open(str(bundle_path), framework="pt") as f:
        tensors = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118
        metadata = f.metadata()
    tensors["encoder.norm.weight"] = torch.ones(5)
    save_file(tensors, str(tmp_path / "bad.safetensors"), metadata=metadata)
    with pytest.raises(Exception, match=r"shape mismatch \(1\): norm.weight: checkpoint \(5,\)"):
        load_bundle(tmp_path / "bad.safetensors")
