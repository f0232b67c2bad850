"""Reading released V-JEPA checkpoints into this project's key names (train/released.py decides
and checks the rest).

- V-JEPA 1 `.pth.tar` and V-JEPA 2 `.pt`: `encoder`, `predictor` and `target_encoder` state
  dicts; below the DDP and wrapper prefixes (`module.`, `backbone.`) the names are this
  project's (`patch_embed.proj`, `blocks.N.attn.qkv`, `predictor_blocks.N...`, `mask_tokens.i`).
- V-JEPA 2.1 `.pt`: the same prefixes and block names, plus the keys of V2_1_KEYS, which the
  model's 2.1 options hold under the same names (train/released.py sets them). The teacher is
  `target_encoder`, or `ema_encoder` in the distilled ViT-B / ViT-L files; a file without an
  `encoder` gets a copy of its teacher (docs/training.md, "V-JEPA 2.1").
- Hugging Face `VJEPA2Model` safetensors: `encoder.embeddings.patch_embeddings.proj`,
  `encoder.layer.N.{norm1, attention.{query,key,value,proj}, norm2, mlp.fc1, mlp.fc2}`,
  `encoder.layernorm`, `predictor.embeddings.{predictor_embeddings, mask_tokens [n, 1, 1, D]}`,
  `predictor.layer.N...`, `predictor.layernorm`, `predictor.proj`. Queries, keys and values are
  concatenated in that order into `qkv`; the mask tokens are split into `mask_tokens.i`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from train.checkpoint import CheckpointError, load_checkpoint

PREFIXES = ("module.", "backbone.", "_orig_mod.")
PARTS = ("encoder", "predictor", "target_encoder")
HF_LAYOUT = "Hugging Face VJEPA2Model"
# Hugging Face names -> this project's, outside the blocks.
HF_NAMES = {
    "encoder.embeddings.patch_embeddings.proj": ("encoder", "patch_embed.proj"),
    "encoder.embeddings.position_embeddings": ("encoder", "pos_embed"),
    "encoder.layernorm": ("encoder", "norm"),
    "predictor.embeddings.predictor_embeddings": ("predictor", "predictor_embed"),
    "predictor.embeddings.position_embeddings": ("predictor", "predictor_pos_embed"),
    "predictor.layernorm": ("predictor", "predictor_norm"),
    "predictor.proj": ("predictor", "predictor_proj"),
}
HF_BLOCK_NAMES = {
    "norm1": "norm1",
    "attention.proj": "attn.proj",
    "norm2": "norm2",
    "mlp.fc1": "mlp.fc1",
    "mlp.fc2": "mlp.fc2",
}
HF_QKV = ("query", "key", "value")


@dataclass
class ReleasedStates:
    """The state dicts under this project's names (a Hugging Face file has no `target_encoder`:
    the import copies the encoder), and what reading them found."""

    layout: str
    states: dict[str, dict[str, torch.Tensor]]
    ignored: dict[str, str] = field(default_factory=dict)  # released key -> why
    notes: list[str] = field(default_factory=list)
    # Hugging Face keys that map to nothing, and the absent pieces of incomplete q/k/v triples.
    unexpected: list[str] = field(default_factory=list)
    absent_pieces: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    hf_config: dict = field(default_factory=dict)
    epoch: int = 1
    family: str = ""  # "V-JEPA 2.1" when the file is one; else told apart by released.py


def strip_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    clean = {}
    for key, value in state.items():
        name = key
        while name.startswith(PREFIXES):
            name = next(name[len(p) :] for p in PREFIXES if name.startswith(p))
        clean[name] = value
    return clean


# V-JEPA 2.1 (facebookresearch/vjepa2, app/vjepa_2_1/models/ and src/hub/backbones.py, read at
# commits be434e4621e78d7cb176ccbea23c136c2141a42f and 16de6c80c258eab97f0517f69399576f06568cb9):
# the keys only its checkpoints hold, and the model option that holds each under the same name.
V2_1_KEYS = {
    "norms_block.": "model.hierarchical_levels (LayerNorms at 4 depths instead of one `norm`)",
    "video_mod_embed": "model.modality_embed / pred_modality_embed (added to video tokens)",
    "img_mod_embed": "model.modality_embed / pred_modality_embed (added to image tokens)",
    "patch_embed_img.": "model.image_patch_embed (1-frame tubelets for one-frame clips)",
    "predictor_proj_context": "model.pred_context_head (the predictor's head on context tokens)",
    "predictor_embed.0.": "model.pred_levels (the predictor reads the 4 levels concatenated)",
}
# The distilled ViT-B / ViT-L keep their teacher-trained EMA encoder under this name.
V2_1_EMA = "ema_encoder"
V2_1 = "V-JEPA 2.1"


def v2_1_keys(raw: dict) -> list[str]:
    """Every V-JEPA 2.1 key of the file, as `part.key` below the prefixes."""
    found = []
    for part in (*PARTS, V2_1_EMA):
        state = raw.get(part)
        if isinstance(state, dict):
            keys = [k for k in strip_prefixes(state) if k.startswith(tuple(V2_1_KEYS))]
            found += [f"{part}.{k}" for k in sorted(keys)]
    return found


def read_v2_1(path: Path, raw: dict) -> ReleasedStates:
    """The three parts of a 2.1 file: the teacher (`ema_encoder` if the file has one, else
    `target_encoder`) is the target encoder, as torch.hub loads it; a missing `encoder` is a copy
    of the teacher; a second teacher the file also holds is reported as ignored."""
    teacher = V2_1_EMA if V2_1_EMA in raw else "target_encoder"
    missing = [k for k in ("predictor", teacher) if not isinstance(raw.get(k), dict)]
    if missing:
        raise CheckpointError(
            f"{path} is a V-JEPA 2.1 checkpoint without {', '.join(missing)} (found keys: "
            f"{', '.join(sorted(map(str, raw))[:12])}); it needs a predictor and a "
            f"`{V2_1_EMA}` or `target_encoder`"
        )
    read = ReleasedStates(".pt (V-JEPA 2.1)", {}, epoch=int(raw.get("epoch", 1) or 1))
    read.family = V2_1
    read.states["target_encoder"] = strip_prefixes(raw[teacher])
    read.states["predictor"] = strip_prefixes(raw["predictor"])
    if isinstance(raw.get("encoder"), dict):
        read.states["encoder"] = strip_prefixes(raw["encoder"])
    else:
        read.states["encoder"] = dict(read.states["target_encoder"])
        read.notes.append(f"encoder: a copy of `{teacher}` (the file has no `encoder`)")
    read.notes.append(
        f"target encoder: `{teacher}`, the encoder V-JEPA 2.1's torch.hub loads for this file"
    )
    if teacher == V2_1_EMA and isinstance(raw.get("target_encoder"), dict):
        read.ignored["target_encoder"] = (
            f"the file also holds `{V2_1_EMA}`, the distilled model's encoder torch.hub loads"
        )
    return read


def read_released(path: str | Path) -> ReleasedStates:
    path = Path(path)
    if path.is_dir() or path.suffix == ".safetensors":
        return read_hugging_face(path)
    raw = load_checkpoint(path)
    if V2_1_EMA in raw or v2_1_keys(raw):
        return read_v2_1(path, raw)
    missing = [k for k in PARTS if k not in raw]
    if missing:
        raise CheckpointError(
            f"{path} is not a V-JEPA checkpoint: no {', '.join(missing)} (found keys: "
            f"{', '.join(sorted(map(str, raw))[:12])}); a Hugging Face export is a .safetensors "
            "file or its folder"
        )
    states = {part: strip_prefixes(raw[part]) for part in PARTS}
    return ReleasedStates("V-JEPA .pt / .pth.tar", states, epoch=int(raw.get("epoch", 1) or 1))


def read_hugging_face(path: Path) -> ReleasedStates:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = path if path.is_dir() else path.parent
    files = sorted(folder.glob("*.safetensors")) if path.is_dir() else [path]
    if not files:
        raise CheckpointError(f"no .safetensors file in {path}")
    tensors: dict[str, torch.Tensor] = {}
    for file in files:
        try:
            tensors.update(load_file(file))
        except (SafetensorError, OSError) as err:
            raise CheckpointError(f"cannot read {file}: {err}") from err
    config_file = folder / "config.json"
    hf_config = json.loads(config_file.read_text()) if config_file.is_file() else {}
    read = hugging_face_states(tensors)
    read.hf_config = hf_config
    read.notes.append(
        "target encoder: a copy of the encoder. The Hugging Face port was converted from the "
        "released `encoder`, not its `target_encoder` (the EMA copy V-JEPA trains against)"
    )
    if hf_config:
        read.notes.append(f"read heads and crop size from {config_file.name}")
    return read


def hugging_face_states(tensors: dict[str, torch.Tensor]) -> ReleasedStates:
    """VJEPA2Model names -> this project's; unknown names and incomplete q/k/v are listed."""
    states: dict[str, dict[str, torch.Tensor]] = {"encoder": {}, "predictor": {}}
    qkv: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    unexpected: list[str] = []
    absent_pieces: dict[tuple[str, str], list[str]] = {}
    for key, value in tensors.items():
        block = re.fullmatch(r"(encoder|predictor)\.layer\.(\d+)\.(.+)\.(weight|bias)", key)
        base, _, kind = key.rpartition(".")
        if block:
            part, index, inner, kind = block.groups()
            blocks = "blocks" if part == "encoder" else "predictor_blocks"
            if inner.startswith("attention.") and inner.split(".", 1)[1] in HF_QKV:
                qkv.setdefault((part, f"{blocks}.{index}.attn.qkv.{kind}"), {})[
                    inner.split(".", 1)[1]
                ] = value
            elif inner in HF_BLOCK_NAMES:
                states[part][f"{blocks}.{index}.{HF_BLOCK_NAMES[inner]}.{kind}"] = value
            else:
                unexpected.append(key)
        elif key == "predictor.embeddings.mask_tokens":
            for i, token in enumerate(value.reshape(value.shape[0], 1, 1, -1)):
                states["predictor"][f"mask_tokens.{i}"] = token.reshape(1, 1, -1)
        elif base in HF_NAMES and kind in ("weight", "bias"):
            part, name = HF_NAMES[base]
            states[part][f"{name}.{kind}"] = value
        elif key in HF_NAMES:
            part, name = HF_NAMES[key]
            states[part][name] = value
        else:
            unexpected.append(key)
    for (part, name), pieces in sorted(qkv.items()):
        absent = [p for p in HF_QKV if p not in pieces]
        if absent:
            triple = hugging_face_name(part, name)
            names = [triple.replace("{query,key,value}", piece) for piece in absent]
            absent_pieces[(part, name)] = names
            continue
        states[part][name] = torch.cat([pieces[p] for p in HF_QKV], dim=0)
    return ReleasedStates(HF_LAYOUT, states, unexpected=unexpected, absent_pieces=absent_pieces)


def hugging_face_name(part: str, key: str) -> str:
    """This project's key -> the VJEPA2Model key it comes from (for error messages)."""
    block = re.fullmatch(r"(blocks|predictor_blocks)\.(\d+)\.(.+)\.(weight|bias)", key)
    if block:
        stack, index, inner, kind = block.groups()
        inner = {ours: hf for hf, ours in HF_BLOCK_NAMES.items()}.get(inner, inner)
        inner = "attention.{query,key,value}" if inner == "attn.qkv" else inner
        return f"{'encoder' if stack == 'blocks' else 'predictor'}.layer.{index}.{inner}.{kind}"
    if key.startswith("mask_tokens."):
        return "predictor.embeddings.mask_tokens"
    for hf, (hf_part, ours) in HF_NAMES.items():
        if hf_part == part and (key == ours or key.startswith(ours + ".")):
            return hf + key[len(ours) :]
    return f"{part}.{key}"
