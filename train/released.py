"""Import a released V-JEPA checkpoint as a run directory of this project.

    python -m train.released FILE RUN_DIR [--frames 16] [--img-size PX] [--heads H]
        [--pred-heads H] [--positions auto|sincos|sincos_uniform|rope|rope_v21]
        [--mask-tokens I,J]

Four layouts, told apart by their contents (docs/training.md, "Released checkpoints", has the
full key mapping):

- V-JEPA 1 `.pth.tar`: `encoder`, `predictor` and `target_encoder` state dicts whose keys carry
  DDP and wrapper prefixes (`module.backbone.blocks.0.attn.qkv.weight`); below the prefixes the
  names are this project's. A fixed sin-cos `pos_embed` and `predictor_pos_embed`, 2 mask tokens.
- V-JEPA 2 `.pt`: the same dicts and names, 3-D RoPE in every block, 10 mask tokens. A
  `pos_embed` the file still holds is not used, and is reported as ignored.
- V-JEPA 2.1 `.pt`: V-JEPA 2's dicts plus hierarchical norms, modality embeddings, an image patch
  embedding and a multi-level predictor with a context head, which the model's 2.1 options hold
  under the same names (`v2_1_options`); the distilled ViT-B / ViT-L keep their encoder as
  `ema_encoder`. RoPE: V-JEPA 2.1's (one frequency per pair, rescaled positions).
- Hugging Face `VJEPA2Model` safetensors (the file, or its folder with `config.json`): renamed
  keys, queries, keys and values as three linears (concatenated here into `qkv`), the mask tokens
  as one [10, 1, 1, D] tensor. It was converted from the released `encoder`, not the
  `target_encoder`, so the imported target encoder is a copy of that encoder.

train/released_layouts.py reads the layouts into this project's names; this module decides what
the weights do not say, checks, loads and writes. Widths, depths and geometry are read from
tensor shapes. Heads are not visible in weights: the released sizes are in RELEASED_HEADS, a
Hugging Face `config.json` names them, and `--heads` / `--pred-heads` name them for anything
else. Loading is strict: every missing, unexpected or mis-shaped key of the three parts is
listed in one error. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from train.checkpoint import CheckpointError, save_checkpoint
from train.config import Config, MaskConfig, ModelConfig, dump_config, to_dict
from train.masks import num_mask_sets
from train.models.hierarchical import level_depths
from train.models.positions import sincos_3d
from train.models.rope_v21 import reference_grid
from train.models.vit import ROPE_LAYOUTS
from train.pretrained import MODEL_PARTS, Pretrained, build_models, models_from_state
from train.released_layouts import (
    HF_LAYOUT,
    PARTS,
    V2_1,
    ReleasedStates,
    hugging_face_name,
    read_released,
)

# Heads per encoder width of the released models (V-JEPA 1 ViT-L/H, V-JEPA 2 ViT-L/H/g, V-JEPA
# 2.1 ViT-B/L/g/G; ViT-g is `vit_giant_xformers`: 22 heads of 64, ViT-G `vit_gigantic_xformers`:
# 26 heads of 64). Anything else: --heads.
RELEASED_HEADS = {384: 6, 768: 12, 1024: 16, 1280: 16, 1408: 22, 1664: 26}
PREDICTOR_HEADS = {"V-JEPA 1": 16, "V-JEPA 2": 12, V2_1: 12}
V2_MASK_TOKENS = 10
V2_IMG_SIZE = 256  # the released V-JEPA 2 models' crop (ViT-g 384 is the exception: --img-size)
V2_1_IMG_SIZE = 384  # every released V-JEPA 2.1 model (`vjepa2_1_*_384`)


@dataclass
class ImportOptions:
    """What the weights cannot tell; None / "auto": from the file, the size table or defaults."""

    num_frames: int = 16
    img_size: int | None = None
    heads: int | None = None
    pred_heads: int | None = None
    positions: str = "auto"
    # Released mask token used for each of this project's mask sets (None: 0, 1, ...).
    mask_tokens: tuple[int, ...] | None = None


@dataclass
class ImportReport:
    layout: str
    notes: list[str]
    ignored: dict[str, str]

    def text(self) -> str:
        lines = [f"format: {self.layout}", *self.notes]
        lines += [f"ignored {key}: {why}" for key, why in self.ignored.items()]
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return {"layout": self.layout, "notes": list(self.notes), "ignored": dict(self.ignored)}


# ---------------------------------------------------------------------------------------------
# Deciding what the weights do not say.


def _count_blocks(state: dict[str, torch.Tensor], prefix: str) -> int:
    indices = {int(m.group(1)) for k in state if (m := re.match(rf"{prefix}\.(\d+)\.", k))}
    return max(indices) + 1 if indices else 0


def _need(state: dict[str, torch.Tensor], key: str, part: str) -> torch.Tensor:
    if key not in state:
        found = ", ".join(sorted(state)[:8]) or "nothing"
        raise CheckpointError(
            f"the {part} has no {key}, so its size cannot be read; this is not a V-JEPA {part} "
            f"(its keys start with: {found})"
        )
    return state[key]


def _mask_token_count(predictor: dict[str, torch.Tensor]) -> int:
    return sum(1 for k in predictor if re.fullmatch(r"mask_tokens\.\d+", k))


def choose_positions(read: ReleasedStates, options: ImportOptions) -> tuple[str, str]:
    """(family, positions): V-JEPA 1 (sin-cos) or V-JEPA 2 (RoPE), with the reason noted."""
    encoder, predictor = read.states["encoder"], read.states["predictor"]
    if read.family == V2_1:
        if options.positions not in ("auto", "rope_v21"):
            raise CheckpointError(
                f"--positions {options.positions}: V-JEPA 2.1 weights were trained with its own "
                "RoPE (rope_v21); leave --positions at auto"
            )
        read.notes.append(
            "positions: rope_v21 (V-JEPA 2.1: one frequency per channel pair; the encoder's "
            "height and width positions rescaled onto the 16 x 16 grid of 256 px, the "
            "predictor's not, as its torch.hub builds them)"
        )
        return V2_1, "rope_v21"
    if options.positions != "auto":
        family = "V-JEPA 1" if options.positions.startswith("sincos") else "V-JEPA 2"
        read.notes.append(f"positions: {options.positions} (--positions)")
        return family, options.positions
    if read.layout == HF_LAYOUT:
        why = "the Hugging Face VJEPA2Model uses 3-D RoPE"
    elif "pos_embed" not in encoder:
        why = "the encoder has no pos_embed"
    elif _mask_token_count(predictor) == V2_MASK_TOKENS:
        why = f"the predictor has {V2_MASK_TOKENS} mask tokens, as V-JEPA 2's"
    else:
        return "V-JEPA 1", "sincos"  # split settled by the table itself (sincos_split)
    read.notes.append(f"positions: rope (V-JEPA 2: {why}; --positions to override)")
    return "V-JEPA 2", "rope"


def sincos_split(table: torch.Tensor, grid: tuple[int, int, int], read: ReleasedStates) -> str:
    """Which formula the stored table follows: it is kept at the native grid either way, and
    the formula rebuilds it for other clip sizes."""
    for positions, uniform in (("sincos_uniform", True), ("sincos", False)):
        try:
            formula = sincos_3d(table.shape[-1], grid, uniform)
        except ValueError:
            continue
        if torch.allclose(table.reshape(formula.shape).float(), formula, atol=1e-4):
            read.notes.append(f"positions: {positions} (the stored table follows that formula)")
            return positions
    read.notes.append(
        "positions: sincos_uniform (the stored table follows neither sin-cos formula: it is used "
        "as stored at the native clip size; other sizes get V-JEPA 1's uniform table)"
    )
    return "sincos_uniform"


def choose_heads(
    width: int, given: int | None, from_config: int | None, what: str, flag: str
) -> int:
    """Heads named on the command line, in a Hugging Face config, or by the released sizes."""
    heads = given or from_config
    if heads is None:
        if width not in RELEASED_HEADS:
            sizes = ", ".join(f"{w}: {h}" for w, h in RELEASED_HEADS.items())
            raise CheckpointError(
                f"{what} width {width} is not a released size (width: heads {sizes}); heads "
                f"cannot be read from weights, so name them with {flag} N"
            )
        heads = RELEASED_HEADS[width]
    if width % heads:
        raise CheckpointError(f"{what} width {width} does not split into {heads} heads")
    return heads


def native_grid_size(
    read: ReleasedStates, options: ImportOptions, tubelet: int, patch: int, positions: str
) -> int:
    """Image side in pixels: from the sin-cos table's token count, or for RoPE (any grid) from
    --img-size, the Hugging Face config, an unused stored table, or V-JEPA 2's 256 px."""
    time_tokens = options.num_frames // tubelet
    table = read.states["encoder"].get("pos_embed")
    side = None
    if table is not None and time_tokens and options.num_frames % tubelet == 0:
        root = math.isqrt(table.shape[1] // time_tokens)
        side = root if time_tokens * root * root == table.shape[1] else None
    if positions not in ROPE_LAYOUTS:
        if table is None:
            raise CheckpointError(
                f"--positions {positions} needs the encoder's pos_embed, and this file has none "
                "(a V-JEPA 2 checkpoint: use --positions rope or auto)"
            )
        if side is None:
            raise CheckpointError(
                f"pos_embed has {table.shape[1]} tokens, which is not {time_tokens} time steps "
                f"(--frames {options.num_frames} / tubelet {tubelet}) of a square grid; pass the "
                "right --frames"
            )
        return side * patch
    if options.img_size:
        return options.img_size
    if read.hf_config.get("crop_size"):
        return int(read.hf_config["crop_size"])
    if side is not None:
        return side * patch
    if read.family == V2_1:
        read.notes.append(f"clip size: {V2_1_IMG_SIZE} px (V-JEPA 2.1's crop; --img-size)")
        return V2_1_IMG_SIZE
    read.notes.append(
        f"clip size: {V2_IMG_SIZE} px (RoPE weights fit any size; V-JEPA 2's crop; --img-size)"
    )
    return V2_IMG_SIZE


def v2_1_options(read: ReleasedStates, width: int, depth: int, patch: int) -> dict:
    """The model's V-JEPA 2.1 options, read from which 2.1 keys the file holds and their shapes
    (empty for other files). The report says what the features and predictions are."""
    if read.family != V2_1:
        return {}
    encoder, predictor = read.states["encoder"], read.states["predictor"]
    levels = sum(1 for k in encoder if re.fullmatch(r"norms_block\.\d+\.weight", k))
    if "predictor_embed.0.weight" in predictor:
        pred_levels = predictor["predictor_embed.0.weight"].shape[1] // width
    else:
        pred_levels = 1
    proj = _need(predictor, "predictor_proj.weight", "predictor").shape[0]
    out = proj // pred_levels
    try:
        depths = level_depths(depth, levels) if levels else ()
        grid = reference_grid(patch)
    except ValueError as err:
        raise CheckpointError(f"this V-JEPA 2.1 file cannot be represented: {err}") from err
    options = {
        "rope_reference_grid": grid,
        "hierarchical_levels": levels,
        "modality_embed": "video_mod_embed" in encoder,
        "image_patch_embed": "patch_embed_img.proj.weight" in encoder,
        "pred_levels": pred_levels,
        "pred_out_dim": None if out == width else out,
        "pred_context_head": "predictor_proj_context.weight" in predictor,
        "pred_modality_embed": "video_mod_embed" in predictor,
    }
    if depths:
        read.notes.append(
            f"features: the encoder's last level, `norms_block.{levels - 1}` after block "
            f"{depths[-1]} (levels after blocks {', '.join(map(str, depths))}), what V-JEPA "
            "2.1's torch.hub encoder returns; the workbench reads them from the target encoder"
        )
    if pred_levels > 1:
        read.notes.append(
            f"predictor: reads the {pred_levels} levels concatenated and predicts "
            f"{pred_levels} x {out}; the last {out} channels are the last level's prediction, "
            "comparable with the layer-normed features (train.models.hierarchical.level_targets "
            "normalises all levels as 2.1's training does)"
        )
    if out != width:
        read.notes.append(
            f"predictor: predicts {out}-wide features of its distillation teacher (ViT-G is "
            f"1664 wide), which this file does not hold; they cannot be compared with this "
            f"{width}-wide model's own features (no surprise or prediction views)"
        )
    return options


def infer_model_config(read: ReleasedStates, options: ImportOptions) -> ModelConfig:
    encoder, predictor = read.states["encoder"], read.states["predictor"]
    width, in_chans, tubelet, patch, _ = _need(encoder, "patch_embed.proj.weight", "encoder").shape
    embed_key = "predictor_embed.weight"
    if read.family == V2_1 and "predictor_embed.2.weight" in predictor:
        embed_key = "predictor_embed.2.weight"  # 2.1's multi-level MLP ends in the width
    pred_width = _need(predictor, embed_key, "predictor").shape[0]
    family, positions = choose_positions(read, options)
    img_size = native_grid_size(read, options, tubelet, patch, positions)
    grid = (options.num_frames // tubelet, img_size // patch, img_size // patch)
    if positions == "sincos" and options.positions == "auto":
        positions = sincos_split(encoder["pos_embed"], grid, read)
    from_config = read.hf_config.get("num_attention_heads")
    heads = choose_heads(width, options.heads, from_config, "encoder", "--heads")
    pred_heads = choose_heads(
        pred_width,
        options.pred_heads,
        read.hf_config.get("pred_num_attention_heads") or PREDICTOR_HEADS[family],
        "predictor",
        "--pred-heads",
    )
    mlp_ratio = _need(encoder, "blocks.0.mlp.fc1.weight", "encoder").shape[0] / width
    pred_hidden = _need(predictor, "predictor_blocks.0.mlp.fc1.weight", "predictor").shape[0]
    pred_mlp_ratio = pred_hidden / pred_width
    depth, pred_depth = (
        _count_blocks(encoder, "blocks"),
        _count_blocks(predictor, "predictor_blocks"),
    )
    read.notes.append(
        f"encoder: {width} wide, depth {depth}, {heads} heads; predictor: {pred_width} wide, "
        f"depth {pred_depth}, {pred_heads} heads; clip {options.num_frames} frames x {img_size} px"
    )
    return ModelConfig(
        size="vit_l",
        embed_dim=width,
        depth=depth,
        num_heads=heads,
        mlp_ratio=mlp_ratio,
        pred_embed_dim=pred_width,
        pred_depth=pred_depth,
        pred_num_heads=pred_heads,
        pred_mlp_ratio=None if pred_mlp_ratio == mlp_ratio else pred_mlp_ratio,
        positions=positions,
        num_frames=options.num_frames,
        img_size=img_size,
        patch_size=patch,
        tubelet_size=tubelet,
        in_chans=in_chans,
        **v2_1_options(read, width, depth, patch),
    )


def drop_unused_tables(read: ReleasedStates) -> None:
    """A RoPE model has no position table: a stored one is set aside, by name, never silently."""
    for part, name in (("encoder", "pos_embed"), ("predictor", "predictor_pos_embed")):
        if name in read.states[part]:
            read.states[part] = {k: v for k, v in read.states[part].items() if k != name}
            read.ignored[f"{part}.{name}"] = "a position table; RoPE models do not use one"
    target = read.states.get("target_encoder", {})
    if "pos_embed" in target:
        read.states["target_encoder"] = {k: v for k, v in target.items() if k != "pos_embed"}
        read.ignored["target_encoder.pos_embed"] = "a position table; RoPE models do not use one"


def select_mask_tokens(read: ReleasedStates, options: ImportOptions, mask_sets: int) -> None:
    """One released mask token per mask set of this project (`options.mask_tokens`, default
    0, 1, ...); the others are reported as ignored, with whether they were ever trained."""
    predictor = read.states["predictor"]
    tokens = {int(k.split(".")[1]): v for k, v in predictor.items() if k.startswith("mask_tokens.")}
    chosen = options.mask_tokens or tuple(range(mask_sets))
    if len(chosen) != mask_sets or any(i not in tokens for i in chosen):
        raise CheckpointError(
            f"--mask-tokens {','.join(map(str, chosen))}: give {mask_sets} indices (one per mask "
            f"set) among the file's {len(tokens)} mask tokens (0..{len(tokens) - 1})"
        )
    kept = {k: v for k, v in predictor.items() if not k.startswith("mask_tokens.")}
    for mask_set, index in enumerate(chosen):
        kept[f"mask_tokens.{mask_set}"] = tokens[index]
    read.states["predictor"] = kept
    untrained = sorted(i for i, t in tokens.items() if not bool(t.any()))
    for index in sorted(set(tokens) - set(chosen)):
        state = " (all zeros: never trained)" if index in untrained else ""
        read.ignored[f"predictor.mask_tokens.{index}"] = (
            f"not chosen for this project's {mask_sets} mask sets (one token each; "
            f"--mask-tokens){state}"
        )
    if len(tokens) != mask_sets or options.mask_tokens:
        read.notes.append(
            f"mask tokens: mask sets 0..{mask_sets - 1} use released tokens "
            f"{', '.join(map(str, chosen))} of {len(tokens)} (--mask-tokens)"
        )
    if read.family == V2_1:
        read.notes.append(
            f"mask tokens: V-JEPA 2.1's training keeps one per mask set and clip-length group "
            f"({len(tokens)} here); its predictor's forward uses token 1 unless told otherwise"
        )
    elif len(tokens) == V2_MASK_TOKENS:
        read.notes.append(
            "mask tokens: V-JEPA 2's training picks its token by clip-length group (token 0 for "
            "the first), not by mask set; its torch.hub and Hugging Face predictors use token 1"
        )
    for index in chosen:
        if index in untrained and len(untrained) < len(tokens):
            read.notes.append(
                f"warning: released mask token {index} is all zeros (never trained); trained "
                f"ones: {sorted(set(tokens) - set(untrained))}; choose with --mask-tokens"
            )


def check_against_model(read: ReleasedStates, cfg: Config) -> None:
    """Every missing, unexpected or mis-shaped key of the three parts, in one error (named as
    in the file: this project's names for .pt files, Hugging Face names for safetensors)."""
    with torch.device("meta"):  # shapes only, no memory
        models = build_models(cfg, shared_target=True)
    expected = {part: getattr(models, part) for part in MODEL_PARTS}
    hf = read.layout == HF_LAYOUT
    found: dict[tuple[str, str], list[str]] = {}
    if read.unexpected:
        found[("safetensors", "unexpected")] = list(read.unexpected)
    for part, got in read.states.items():
        own = {k: tuple(v.shape) for k, v in expected[part].state_dict().items()}
        where = "safetensors" if hf else part
        name = (lambda k, part=part: hugging_face_name(part, k)) if hf else (lambda k: k)
        for key in sorted(set(own) - set(got)):
            names = read.absent_pieces.get((part, key), [name(key)])
            found.setdefault((where, "missing"), []).extend(names)
        for key in sorted(set(got) - set(own)):
            found.setdefault((where, "unexpected"), []).append(name(key))
        for key in sorted(set(own) & set(got)):
            if tuple(got[key].shape) != own[key]:
                found.setdefault((where, "shape mismatch"), []).append(
                    f"{name(key)}: checkpoint {tuple(got[key].shape)} vs model {own[key]}"
                )
    if found:
        listing = "\n  ".join(
            f"{where}: {label} ({len(keys)}): {', '.join(keys)}"
            for (where, label), keys in found.items()
        )
        raise CheckpointError(
            f"the {read.layout} checkpoint does not match the model its shapes describe "
            f"({cfg.model.embed_dim} wide, {cfg.model.depth} blocks):\n  {listing}"
        )


# ---------------------------------------------------------------------------------------------
# Import and write.


def import_with_report(
    path: str | Path, options: ImportOptions | None = None
) -> tuple[Pretrained, ImportReport]:
    options = options or ImportOptions()
    read = read_released(path)
    model = infer_model_config(read, options)
    if model.positions in ROPE_LAYOUTS:
        drop_unused_tables(read)
    mask = MaskConfig()
    select_mask_tokens(read, options, num_mask_sets(mask))
    cfg = Config(model=model, mask=mask, steps=max(1, read.epoch))
    check_against_model(read, cfg)
    states = {part: dict(read.states.get(part, read.states["encoder"])) for part in PARTS}
    pretrained = models_from_state({**states, "config": to_dict(cfg), "step": 0}, cfg)
    return pretrained, ImportReport(read.layout, read.notes, read.ignored)


def import_released(path: str | Path, num_frames: int = 16, **options) -> Pretrained:
    return import_with_report(path, ImportOptions(num_frames=num_frames, **options))[0]


def write_run(
    pretrained: Pretrained, run_dir: str | Path, report: ImportReport | None = None
) -> Path:
    """A run directory other tools (eval, decoder, workbench) open like one of ours."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg = pretrained.config
    cfg.out = str(run_dir)
    dump_config(cfg, run_dir / "config.yaml")
    state = {
        "encoder": pretrained.encoder.state_dict(),
        "predictor": pretrained.predictor.state_dict(),
        "target_encoder": pretrained.target_encoder.state_dict(),
        "step": pretrained.step,
        "config": to_dict(cfg),
        "imported": True,
    }
    if report is not None:
        state["import_report"] = report.as_dict()
    return save_checkpoint(run_dir / "checkpoints", state, keep_copy=False)


def _indices(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(i) for i in text.split(","))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r}: give indices like 0,1") from err


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="V-JEPA .pth.tar / .pt, or Hugging Face .safetensors")
    parser.add_argument("run_dir", help="where to write the run directory")
    parser.add_argument("--frames", type=int, default=16, help="frames per clip (default 16)")
    parser.add_argument("--img-size", type=int, help="clip side in pixels (RoPE models only)")
    parser.add_argument("--heads", type=int, help="encoder heads, for widths outside the table")
    parser.add_argument("--pred-heads", type=int, help="predictor heads (V-JEPA 1: 16, 2: 12)")
    parser.add_argument(
        "--positions",
        default="auto",
        choices=["auto", "sincos", "sincos_uniform", "rope", "rope_v21"],
    )
    parser.add_argument(
        "--mask-tokens", type=_indices, help="released mask token per mask set (default 0,1)"
    )
    args = parser.parse_args(argv)
    options = ImportOptions(
        num_frames=args.frames,
        img_size=args.img_size,
        heads=args.heads,
        pred_heads=args.pred_heads,
        positions=args.positions,
        mask_tokens=args.mask_tokens,
    )
    try:
        pretrained, report = import_with_report(args.checkpoint, options)
        written = write_run(pretrained, args.run_dir, report)
    except CheckpointError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(report.text())
    m = pretrained.config.model
    print(f"imported ViT {m.embed_dim}x{m.depth} ({m.num_frames}x{m.img_size}px) -> {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
