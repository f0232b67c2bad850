"""A model bundle: everything the workbench needs to show predictions, in one safe file.

A bundle holds the encoder, predictor, target encoder and pixel decoder, the run's config, the
decoder's config and a provenance record (command, git commit, metrics, probe accuracy). It is a
safetensors file: tensors named `encoder.*`, `predictor.*`, `target_encoder.*`, `decoder.*`,
and JSON strings in the header's metadata. Opening one can never run code; a pickle (`.pt`,
`.pth`, anything from `torch.save`) offered as a bundle is refused unopened.

Weights may be stored in fp16 or bf16 to keep the file small (the committed starter is); they
are loaded back as float32. The fixed sin-cos position tables stay float32.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save as safetensors_bytes
from torch import nn

from decoder.clips import fit_clip
from decoder.config import DecoderConfig
from decoder.masks import (
    TemporalExtent,
    check_token_mask,
    mask_index_for,
    painted_token_mask,
    preset_mask,
)
from decoder.model import PixelDecoder, build_decoder
from train.checkpoint import CheckpointError
from train.config import Config, ConfigError, from_dict, to_dict
from train.pretrained import (
    Pretrained,
    load_strict,
    pretrained_from_model_file,
    read_model_file,
)
from train.tokens import TokenGeometry

STARTER_PATH = Path(__file__).parent / "starter" / "starter.safetensors"
BUNDLE_FORMAT = "vjepa-workbench-bundle"
FORMAT_VERSION = 1
PARTS = ("encoder", "predictor", "target_encoder", "decoder")
# safetensors files start with the header length as a little-endian u64, then a JSON header.
MAX_HEADER_BYTES = 100_000_000


class BundleError(CheckpointError):
    """A bundle that cannot be opened; the message says why and what to do."""


@dataclass
class Bundle:
    """A run's models (one `Pretrained`, its step as the provenance records it) and the pixel
    decoder fitted on them."""

    pretrained: Pretrained
    decoder_config: DecoderConfig | None  # None: a run with no decoder fitted (see below)
    decoder: PixelDecoder | None
    provenance: dict[str, Any]

    # ------------------------------------------------------------------ what the app asks

    @property
    def config(self) -> Config:
        return self.pretrained.config

    @property
    def encoder(self) -> nn.Module:
        return self.pretrained.encoder

    @property
    def predictor(self) -> nn.Module:
        return self.pretrained.predictor

    @property
    def target_encoder(self) -> nn.Module:
        return self.pretrained.target_encoder

    def with_config(self, config: Config) -> Bundle:
        """The same models under another config (e.g. a smaller clip size: positions allow it)."""
        return replace(self, pretrained=replace(self.pretrained, config=config))

    @property
    def geometry(self) -> TokenGeometry:
        return TokenGeometry.from_model_config(self.config.model)

    @property
    def num_frames(self) -> int:
        return self.config.model.num_frames

    @property
    def img_size(self) -> int:
        return self.config.model.img_size

    @property
    def grid(self) -> tuple[int, int, int]:
        """Token grid (time steps, rows, columns)."""
        return self.geometry.grid

    @property
    def has_decoder(self) -> bool:
        return self.decoder is not None

    @property
    def device(self) -> torch.device:
        return next(self.encoder.parameters()).device

    def fit_clip(self, clip: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Any uint8 clip -> uint8 [3, T, H, W] at this model's frames and size."""
        return fit_clip(clip, self.num_frames, self.img_size)

    def painted_mask(
        self, pixel_mask: torch.Tensor | np.ndarray, extent: TemporalExtent | None = None
    ) -> torch.Tensor:
        """A painted img_size x img_size mask over `extent` (default: the whole clip) ->
        token mask [T', H', W']."""
        return painted_token_mask(pixel_mask, extent or TemporalExtent(), self.geometry)

    def preset_mask(self, name: str, seed: int = 0) -> tuple[torch.Tensor, int]:
        """(token mask, predictor mask token) of a preset: multiblock-short, multiblock-long,
        random-tube or causal. Pass both to `render_prediction`."""
        return preset_mask(name, self.geometry, self.config.mask, seed)

    def mask_index_for(self, token_mask: torch.Tensor | np.ndarray) -> int:
        """The predictor mask token a painted mask uses (see decoder.masks.mask_index_for)."""
        return mask_index_for(check_token_mask(token_mask, self.geometry), self.config.mask)

    def summary(self) -> str:
        """One line for a UI: model, clip geometry, training, quality."""
        m, t, s = self.encoder, self.num_frames, self.img_size
        line = (
            f"V-JEPA encoder {m.embed_dim} wide x {len(m.blocks)} blocks, {t} frames x {s} px "
            f"({'x'.join(map(str, self.grid))} tokens), pretrained {self.pretrained.step} steps"
        )
        weights = next(m.parameters()).dtype
        if weights != torch.float32:  # opened with `--weights bf16`
            line += f", {str(weights).removeprefix('torch.')} weights"
        probe = self.provenance.get("probe") or {}
        accuracy = probe.get("accuracy", {})
        if accuracy:
            cells = ", ".join(f"{label} {a['mean']:.0%}" for label, a in accuracy.items())
            line += f"; attentive-probe accuracy {cells}"
        return line

    def to(self, device: torch.device | str) -> Bundle:
        for part in self.modules():
            part.to(device)
        return self

    def eval(self) -> Bundle:
        for part in self.modules():
            part.eval().requires_grad_(False)
        return self

    def modules(self) -> list[nn.Module]:
        return [getattr(self, name) for name in PARTS if getattr(self, name) is not None]


def without_decoder(pretrained: Pretrained, provenance: dict[str, Any]) -> Bundle:
    """A run's models with no pixel decoder (one not fitted yet): everything but the decoded
    prediction works. Bundle files always hold a decoder; this is never written as one."""
    return Bundle(_at_recorded_step(pretrained, provenance), None, None, provenance).eval()


def _at_recorded_step(pretrained: Pretrained, provenance: dict[str, Any]) -> Pretrained:
    """The models at the pretraining step the provenance records (what the app reports)."""
    return replace(pretrained, step=int(provenance.get("pretrain", {}).get("steps", 0)))


# ---------------------------------------------------------------------------------------------
# Writing.


def save_bundle(
    path: str | Path,
    pretrained: Pretrained,
    decoder: PixelDecoder,
    decoder_config: DecoderConfig,
    provenance: dict[str, Any],
    weight_dtype: torch.dtype = torch.float32,
) -> Path:
    """Write a bundle atomically (a kill mid-write leaves any previous file intact)."""
    modules = {
        "encoder": pretrained.encoder,
        "predictor": pretrained.predictor,
        "target_encoder": pretrained.target_encoder,
        "decoder": decoder,
    }
    tensors = {}
    for part, module in modules.items():
        fixed = {name for name, _ in module.named_buffers()}
        for name, value in module.state_dict().items():
            value = value.detach().to("cpu").contiguous()
            if value.is_floating_point() and name not in fixed:
                value = value.to(weight_dtype)
            tensors[f"{part}.{name}"] = value
    metadata = {
        "format": BUNDLE_FORMAT,
        "format_version": str(FORMAT_VERSION),
        "weight_dtype": str(weight_dtype).removeprefix("torch."),
        "config": json.dumps(to_dict(pretrained.config)),
        "decoder_config": json.dumps(to_dict(decoder_config)),
        "provenance": json.dumps(provenance, default=str),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with tmp.open("wb") as f:
            f.write(safetensors_bytes(tensors, metadata))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


# ---------------------------------------------------------------------------------------------
# Reading.


def _refuse_non_safetensors(path: Path) -> None:
    """Look at the first bytes only: a pickle is named and refused before anything parses it."""
    with path.open("rb") as f:
        head = f.read(9)
    if len(head) == 9 and head[8:9] == b"{":
        # The safetensors layout: a sane header length, then the JSON header. Checked first: the
        # length's low byte may be anything, 0x80 (a pickle's first byte) included.
        (header_len,) = struct.unpack("<Q", head[:8])
        if 2 <= header_len <= MAX_HEADER_BYTES:
            return
    if head.startswith(b"PK\x03\x04"):
        kind = "a PyTorch checkpoint (torch.save zip holding a pickle)"
    elif head[:1] == b"\x80":
        kind = "a Python pickle"
    elif len(head) < 9:
        kind = "too short to be a bundle"
    else:
        kind = "not a safetensors file"
    if kind is not None:
        raise BundleError(
            f"{path} is {kind}, not a model bundle. Bundles are safetensors files (tensors and "
            "JSON only), so opening one cannot run code; this file was not loaded, because a "
            "pickle can execute code when unpickled. If you trust its source, load it with "
            "train.pretrained.load_pretrained (weights_only=True) and write a bundle with "
            "decoder.bundle.save_bundle."
        )


def _metadata_json(metadata: dict[str, str], key: str, path: Path) -> Any:
    try:
        return json.loads(metadata[key])
    except (KeyError, json.JSONDecodeError) as err:
        raise BundleError(f"{path}: metadata {key!r} is missing or not JSON ({err})") from err


def load_bundle(
    path: str | Path = STARTER_PATH,
    device: torch.device | str = "cpu",
    weight_dtype: torch.dtype = torch.float32,
) -> Bundle:
    """A bundle file -> models in eval mode on `device`; V-JEPA weights in `weight_dtype`
    (filled in it, never built in float32 first), the pixel decoder float32."""
    path = Path(path)
    if not path.is_file():
        hint = " Build it with `make starter`." if path.resolve() == STARTER_PATH.resolve() else ""
        raise BundleError(f"no bundle at {path}.{hint}")
    _refuse_non_safetensors(path)
    try:
        parts, metadata = read_model_file(path)
    except CheckpointError as err:
        raise BundleError(str(err)) from err
    if metadata.get("format") != BUNDLE_FORMAT:
        raise BundleError(
            f"{path} is a safetensors file but not a {BUNDLE_FORMAT} (format "
            f"{metadata.get('format')!r}); write bundles with decoder.bundle.save_bundle. A "
            "released V-JEPA file (e.g. Hugging Face model.safetensors) must be imported "
            "first: `python -m train.released FILE RUN_DIR`, then open RUN_DIR"
        )
    if metadata.get("format_version") != str(FORMAT_VERSION):
        raise BundleError(
            f"{path} has bundle format version {metadata.get('format_version')}; this code "
            f"reads version {FORMAT_VERSION}: rebuild it (make starter) or update the code"
        )
    unexpected = sorted(set(parts) - set(PARTS))
    if unexpected:
        raise BundleError(
            f"{path}: unexpected tensors under {unexpected[0]!r} (parts are {', '.join(PARTS)})"
        )
    try:
        decoder_config = from_dict(DecoderConfig, _metadata_json(metadata, "decoder_config", path))
    except ConfigError as err:
        raise BundleError(f"{path}: its stored config is not valid here: {err}") from err
    pretrained = pretrained_from_model_file(parts, metadata, path, weight_dtype)
    provenance = _metadata_json(metadata, "provenance", path)
    config = pretrained.config
    geometry = TokenGeometry.from_model_config(config.model)
    decoder = build_decoder(
        decoder_config.model,
        pretrained.predictor.predictor_proj.out_features,
        geometry.grid,
        geometry.patch_dim,
    )
    decoder_state = parts.get("decoder", {})
    load_strict(
        decoder,
        {k: v.float() if v.is_floating_point() else v for k, v in decoder_state.items()},
        "decoder",
    )
    bundle = Bundle(_at_recorded_step(pretrained, provenance), decoder_config, decoder, provenance)
    return bundle.to(device).eval()
