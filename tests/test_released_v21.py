"""Importing and running V-JEPA 2.1 checkpoints.

The released layout is written here from the public code (facebookresearch/vjepa2 at be434e46 /
16de6c80: app/vjepa_2_1/models/vision_transformer.py, predictor.py, utils/modules.py;
src/hub/backbones.py), key by key with its shapes, independently of this project's modules. The
tests import such files strictly, check that a model of this project round-trips through the
layout to the same outputs, and check the 2.1 RoPE against a slow formula written here.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from test_released_v2 import CLIPS, GEOMETRY, write_vjepa2_pt
from test_released_v2 import our_models as v2_models
from train.checkpoint import CheckpointError, atomic_save
from train.config import ModelConfig
from train.models import build_encoder, build_predictor
from train.models.hierarchical import level_depths, level_targets
from train.models.rope import apply_rope, rope_angles
from train.models.rope_v21 import rescaled_positions
from train.models.vit import Attention
from train.pretrained import load_pretrained
from train.released import import_with_report, main

TEACHER_WIDTH = 1664  # ViT-G: the distilled ViT-B / ViT-L predictors regress its features
WIDTH, DEPTH, PRED_WIDTH, PRED_DEPTH, MASK_TOKENS = 384, 4, 384, 1, 8
# ViT-S width (6 heads of 64, the released head width), 4 blocks (one per level); the 2.1
# predictor's head layout (384 wide, 12 heads); 4 frames x 32 px = 2 x 2 x 2 tokens.
V21 = ModelConfig(
    size="vit_s",
    depth=DEPTH,
    pred_embed_dim=PRED_WIDTH,
    pred_depth=PRED_DEPTH,
    pred_num_heads=12,
    num_frames=4,
    img_size=32,
    patch_size=16,
    tubelet_size=2,
    positions="rope_v21",
    rope_reference_grid=16,
    hierarchical_levels=4,
    modality_embed=True,
    image_patch_embed=True,
    pred_context_head=True,
    pred_modality_embed=True,
)
LAYOUTS = {  # ViT-g / ViT-G: 4 levels in and out; ViT-B / ViT-L: last level in, teacher out
    "full": replace(V21, pred_levels=4),
    "distilled": replace(V21, pred_out_dim=TEACHER_WIDTH),
}
KEEP = torch.tensor([[0, 3, 5], [7, 1, 2]])
TARGETS = torch.tensor([[1, 6], [0, 4]])


def released_2_1_states(distilled: bool, seed: int = 0) -> dict[str, dict[str, torch.Tensor]]:
    """encoder and predictor state dicts with the names and shapes V-JEPA 2.1's code writes
    (prefixes not yet added), filled with random numbers."""
    gen = torch.Generator().manual_seed(seed)
    r = lambda *shape: torch.randn(*shape, generator=gen)

    def block(state: dict, prefix: str, width: int) -> None:
        hidden = 4 * width  # mlp_ratio 4 (ViT-g: 48/11, ViT-G: 64/13)
        shapes = {
            "norm1": [(width,), (width,)],
            "attn.qkv": [(3 * width, width), (3 * width,)],
            "attn.proj": [(width, width), (width,)],
            "norm2": [(width,), (width,)],
            "mlp.fc1": [(hidden, width), (hidden,)],
            "mlp.fc2": [(width, hidden), (width,)],
        }
        for name, (weight, bias) in shapes.items():
            state[f"{prefix}.{name}.weight"] = r(*weight)
            state[f"{prefix}.{name}.bias"] = r(*bias)

    enc = {
        "patch_embed.proj.weight": r(WIDTH, 3, 2, 16, 16),  # PatchEmbed3D, tubelet 2
        "patch_embed.proj.bias": r(WIDTH),
        "patch_embed_img.proj.weight": r(WIDTH, 3, 1, 16, 16),  # img_temporal_dim_size=1
        "patch_embed_img.proj.bias": r(WIDTH),
        "img_mod_embed": r(1, 1, WIDTH) * 0.1,
        "video_mod_embed": r(1, 1, WIDTH) * 0.1,
    }
    for i in range(DEPTH):
        block(enc, f"blocks.{i}", WIDTH)
    for level in range(4):  # norms_block: one per hierarchical layer, always 4
        enc[f"norms_block.{level}.weight"] = 1 + 0.1 * r(WIDTH)
        enc[f"norms_block.{level}.bias"] = 0.1 * r(WIDTH)
    levels, out = (1, TEACHER_WIDTH) if distilled else (4, WIDTH)
    pred = {}
    if distilled:  # n_output_distillation=1: one Linear
        pred["predictor_embed.weight"] = r(PRED_WIDTH, WIDTH) * 0.05
        pred["predictor_embed.bias"] = r(PRED_WIDTH)
    else:  # Linear(4 x width, width), GELU, Linear(width, predictor width)
        pred["predictor_embed.0.weight"] = r(WIDTH, 4 * WIDTH) * 0.05
        pred["predictor_embed.0.bias"] = r(WIDTH)
        pred["predictor_embed.2.weight"] = r(PRED_WIDTH, WIDTH) * 0.05
        pred["predictor_embed.2.bias"] = r(PRED_WIDTH)
    for i in range(MASK_TOKENS):
        pred[f"mask_tokens.{i}"] = r(1, 1, PRED_WIDTH)
    for i in range(PRED_DEPTH):
        block(pred, f"predictor_blocks.{i}", PRED_WIDTH)
    pred["predictor_norm.weight"], pred["predictor_norm.bias"] = r(PRED_WIDTH), r(PRED_WIDTH)
    for head in ("predictor_proj", "predictor_proj_context"):
        pred[f"{head}.weight"] = r(levels * out, PRED_WIDTH) * 0.05
        pred[f"{head}.bias"] = r(levels * out)
    pred["video_mod_embed"] = r(1, 1, PRED_WIDTH) * 0.1
    pred["img_mod_embed"] = r(1, 1, PRED_WIDTH) * 0.1
    return {"encoder": enc, "predictor": pred}


def write_2_1_pt(path, encoder: dict, predictor: dict, teacher: dict, distilled: bool) -> None:
    """The files as released: DDP + wrapper prefixes; the distilled ViT-B / ViT-L hold their
    encoder as `ema_encoder` (all torch.hub reads of them), the others a training checkpoint."""
    prefix = lambda sd: {f"module.backbone.{k}": v.clone() for k, v in sd.items()}
    if distilled:
        state = {"ema_encoder": prefix(teacher), "predictor": prefix(predictor)}
    else:
        state = {
            "encoder": prefix(encoder),
            "predictor": prefix(predictor),
            "target_encoder": prefix(teacher),
            "opt": {},
        }
    atomic_save({**state, "epoch": 2}, path)


def our_2_1_models(cfg: ModelConfig):
    """A 2.1 model of this project with random (not initial) values everywhere, and its 8 mask
    tokens as the released predictor has them."""
    torch.manual_seed(0)
    encoder = build_encoder(cfg).eval()
    target = build_encoder(cfg).eval()
    predictor = build_predictor(cfg, encoder.grid_size, 2, None).eval()
    with torch.no_grad():
        for module in (encoder, target, predictor):
            for name, p in module.named_parameters():
                if "norm" in name or "mod_embed" in name or "mask_tokens" in name:
                    is_scale = "norm" in name and name.endswith("weight")
                    p.normal_(mean=1.0 if is_scale else 0.0, std=0.1)
    tokens = {f"mask_tokens.{i}": torch.randn(1, 1, PRED_WIDTH) for i in range(MASK_TOKENS)}
    pred_state = {**predictor.state_dict(), **tokens}
    pred_state["mask_tokens.0"] = predictor.mask_tokens[0].data.clone()
    pred_state["mask_tokens.1"] = predictor.mask_tokens[1].data.clone()
    return encoder, predictor, target, pred_state


@pytest.mark.parametrize("layout", ["full", "distilled"])
def test_our_2_1_model_has_the_released_names_and_shapes(layout):
    encoder, _, _, pred_state = our_2_1_models(LAYOUTS[layout])
    released = released_2_1_states(layout == "distilled")
    shapes = lambda sd: {k: tuple(v.shape) for k, v in sd.items()}
    assert shapes(encoder.state_dict()) == shapes(released["encoder"])
    assert shapes(pred_state) == shapes(released["predictor"])


@pytest.mark.parametrize("layout", ["full", "distilled"])
def test_released_2_1_files_import_strictly_and_land_by_name(tmp_path, layout):
    distilled = layout == "distilled"
    states = released_2_1_states(distilled)
    teacher = released_2_1_states(distilled, seed=1)["encoder"]
    write_2_1_pt(tmp_path / "v21.pt", states["encoder"], states["predictor"], teacher, distilled)
    imported, report = import_with_report(tmp_path / "v21.pt", GEOMETRY)
    m = imported.config.model
    assert (m.positions, m.rope_reference_grid, m.pred_rope_reference_grid) == (
        "rope_v21",
        16,
        None,
    )
    assert (m.hierarchical_levels, m.modality_embed, m.image_patch_embed) == (4, True, True)
    assert (m.pred_context_head, m.pred_modality_embed) == (True, True)
    assert (m.embed_dim, m.depth, m.num_heads, m.pred_num_heads) == (WIDTH, DEPTH, 6, 12)
    assert (m.pred_levels, m.pred_out_dim) == ((1, TEACHER_WIDTH) if distilled else (4, None))
    for key, value in teacher.items():
        assert torch.equal(imported.target_encoder.state_dict()[key], value), key
    encoder_source = teacher if distilled else states["encoder"]  # no `encoder`: the teacher
    for key, value in encoder_source.items():
        assert torch.equal(imported.encoder.state_dict()[key], value), key
    ours = imported.predictor.state_dict()
    for key, value in states["predictor"].items():
        if key.startswith("mask_tokens.") and key not in ours:
            assert key.replace("mask_tokens", "predictor.mask_tokens") in report.ignored
            continue
        assert torch.equal(ours[key], value), key
    text = report.text()
    assert "features: the encoder's last level, `norms_block.3` after block 3" in text
    assert ("1664-wide features of its distillation teacher" in text) is distilled
    assert ("encoder: a copy of `ema_encoder`" in text) is distilled
    assert "target encoder: `" + ("ema_encoder" if distilled else "target_encoder") in text


@pytest.mark.parametrize("layout", ["full", "distilled"])
def test_2_1_round_trip_reproduces_our_outputs(tmp_path, layout):
    cfg = LAYOUTS[layout]
    encoder, predictor, target, pred_state = our_2_1_models(cfg)
    write_2_1_pt(
        tmp_path / "v21.pt",
        encoder.state_dict(),
        pred_state,
        target.state_dict(),
        distilled=False,  # a training checkpoint: encoder and target differ
    )
    imported, _ = import_with_report(tmp_path / "v21.pt", GEOMETRY)
    imported.eval()
    image = CLIPS[:, :, :1]  # one frame: patch_embed_img and img_mod_embed
    levels = predictor.levels
    with torch.no_grad():
        assert torch.equal(imported.encoder(CLIPS), encoder(CLIPS))
        assert torch.equal(imported.encoder(CLIPS, KEEP), encoder(CLIPS, KEEP))
        assert torch.equal(imported.encoder(CLIPS, levels=4), encoder(CLIPS, levels=4))
        assert torch.equal(imported.encoder(image), encoder(image))
        assert torch.equal(imported.target_encoder(CLIPS), target(CLIPS))
        context = encoder(CLIPS, KEEP, levels=levels)
        for mask_set in (0, 1):
            for modality in ("video", "image"):
                kw = dict(mask_index=mask_set, modality=modality, with_context=True)
                ours = predictor(context, KEEP, TARGETS, **kw)
                theirs = imported.predictor(context, KEEP, TARGETS, **kw)
                assert all(torch.equal(a, b) for a, b in zip(theirs, ours))
    out = 4 * WIDTH if layout == "full" else TEACHER_WIDTH
    assert ours[0].shape == (2, 2, out) and ours[1].shape == (2, 3, out)


def test_cli_writes_a_2_1_run_that_opens_like_our_own(tmp_path, capsys):
    encoder, _, target, pred_state = our_2_1_models(LAYOUTS["full"])
    write_2_1_pt(tmp_path / "v21.pt", encoder.state_dict(), pred_state, target.state_dict(), False)
    args = [str(tmp_path / "v21.pt"), str(tmp_path / "run"), "--frames", "4", "--img-size", "32"]
    assert main(args) == 0
    assert "positions: rope_v21" in capsys.readouterr().out
    run = load_pretrained(tmp_path / "run")
    assert run.config.model.hierarchical_levels == 4
    with torch.no_grad():
        assert torch.equal(run.target_encoder(CLIPS), target(CLIPS))
    # V-JEPA 2's RoPE would compute something else: refused, as a message and status 1.
    assert main([*args, "--positions", "rope"]) == 1
    assert "trained with its own RoPE" in capsys.readouterr().err


def test_every_problem_of_a_2_1_file_is_listed_at_once(tmp_path):
    states = released_2_1_states(distilled=False)
    encoder = dict(states["encoder"])
    encoder.pop("norms_block.2.bias")
    encoder["blocks.0.mlp.fc3.weight"] = torch.zeros(4, 4)  # SwiGLU: not a 2.1 release option
    predictor = dict(states["predictor"])
    predictor["predictor_proj_context.bias"] = torch.zeros(5)
    write_2_1_pt(tmp_path / "bad.pt", encoder, predictor, states["encoder"], distilled=False)
    with pytest.raises(CheckpointError) as err:
        import_with_report(tmp_path / "bad.pt", GEOMETRY)
    message = str(err.value)
    assert "encoder: missing (1): norms_block.2.bias" in message
    assert "encoder: unexpected (1): blocks.0.mlp.fc3.weight" in message
    assert "predictor: shape mismatch (1): predictor_proj_context.bias" in message


def test_a_2_1_file_without_a_teacher_or_with_other_patches_is_refused(tmp_path):
    states = released_2_1_states(distilled=True)
    raw = {"encoder": states["encoder"], "predictor": states["predictor"]}
    atomic_save(raw, tmp_path / "no_teacher.pt")
    with pytest.raises(CheckpointError, match="without target_encoder"):
        import_with_report(tmp_path / "no_teacher.pt", GEOMETRY)
    patch8 = {k: v for k, v in states["encoder"].items() if not k.startswith("patch_embed")}
    patch8["patch_embed.proj.weight"] = torch.zeros(WIDTH, 3, 2, 8, 8)
    write_2_1_pt(tmp_path / "p8.pt", patch8, states["predictor"], patch8, distilled=True)
    with pytest.raises(CheckpointError, match="patch size 8 has no reference grid"):
        import_with_report(tmp_path / "p8.pt", GEOMETRY)


def test_a_vjepa2_file_still_imports_as_before(tmp_path):
    encoder, predictor, target = v2_models()
    write_vjepa2_pt(tmp_path / "v2.pt", encoder, predictor, target)
    imported, report = import_with_report(tmp_path / "v2.pt", GEOMETRY)
    assert imported.config.model == replace(imported.config.model, **V2_DEFAULTS)
    assert imported.config.model.positions == "rope"
    assert "V-JEPA 2.1" not in report.text()
    assert not hasattr(imported.encoder, "norms_block") and imported.encoder.patch_embed_img is None
    with torch.no_grad():
        assert torch.equal(imported.eval().encoder(CLIPS), encoder(CLIPS))
        assert imported.encoder.blocks[0].attn.rope_layout == "vjepa2"


V2_DEFAULTS = dict(
    rope_reference_grid=None,
    pred_rope_reference_grid=None,
    hierarchical_levels=0,
    modality_embed=False,
    image_patch_embed=False,
    pred_levels=1,
    pred_out_dim=None,
    pred_context_head=False,
    pred_modality_embed=False,
)


# ---------------------------------------------------------------------------------------------
# The model pieces against the public code's definitions.


def test_levels_are_the_norms_after_the_released_depths():
    assert [level_depths(d, 4) for d in (12, 24, 40, 48)] == [
        (2, 5, 8, 11),
        (5, 11, 17, 23),
        (9, 19, 29, 39),
        (11, 23, 37, 47),
    ]
    encoder, *_ = our_2_1_models(replace(V21, depth=8))
    assert encoder.level_depths == (1, 3, 5, 7)
    with torch.no_grad():
        x = encoder.embed(CLIPS)
        expected = []
        for index, block in enumerate(encoder.blocks):
            x = block(x, None, rescaled_positions(all_grid(2, 2, 2), (2, 2, 2), 16))
            if index in encoder.level_depths:
                expected.append(encoder.norms_block[len(expected)](x))
        assert torch.equal(encoder(CLIPS, levels=4), torch.cat(expected, dim=-1))
        assert torch.equal(encoder(CLIPS), expected[-1])  # the features: the last level
    targets = level_targets(torch.cat(expected, -1), 4)
    assert torch.allclose(targets[..., :WIDTH], F.layer_norm(expected[0], (WIDTH,)))


def all_grid(t: int, h: int, w: int) -> torch.Tensor:
    index = torch.arange(t * h * w)
    return torch.stack([index // (h * w), (index % (h * w)) // w, index % w], -1)[None]


def test_modality_vectors_and_image_embedding_reach_only_their_modality():
    encoder, *_ = our_2_1_models(V21)
    image, video = CLIPS[:, :, :1], CLIPS
    with torch.no_grad():
        before = encoder(video), encoder(image)
        encoder.img_mod_embed.add_(1.0)
        assert torch.equal(encoder(video), before[0])
        assert not torch.allclose(encoder(image), before[1])
        expected = encoder.patch_embed_img.proj(image).flatten(2).transpose(1, 2)
        assert torch.equal(encoder.embed(image), expected + encoder.img_mod_embed)
        assert encoder(image[:, :, 0]).shape == (2, 4, WIDTH)  # [B, C, H, W] images too


# ---------------------------------------------------------------------------------------------
# V-JEPA 2.1's RoPE against the formula, written out here.


def slow_rope_v21(x: list[float], position: tuple[float, float, float]) -> list[float]:
    """One head vector: axis slices of 2 * ((d // 3) // 2) channels (time, height, width); pair
    m of a slice turns by position * 10000 ** (-m / half); the rest is unchanged."""
    width = 2 * ((len(x) // 3) // 2)
    half = width // 2
    out = list(x)
    for axis in range(3):
        for m in range(half):
            i = axis * width + 2 * m
            angle = position[axis] * 10000 ** (-m / half)
            out[i] = x[i] * math.cos(angle) - x[i + 1] * math.sin(angle)
            out[i + 1] = x[i + 1] * math.cos(angle) + x[i] * math.sin(angle)
    return out


def slow_position(index: int, grid: tuple[int, int, int], reference: int) -> tuple:
    """Token index -> (t, h * (G - 1) / (H - 1), w * (G - 1) / (W - 1))."""
    _, rows, cols = grid
    t, rest = divmod(index, rows * cols)
    h, w = divmod(rest, cols)
    return (t, h * (reference - 1) / (rows - 1), w * (reference - 1) / (cols - 1))


def rotate_v21(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    cos, sin = rope_angles(positions[None], x.shape[-1], torch.float64, "pairs")
    return apply_rope(x[None, None], cos, sin)[0, 0]


@pytest.mark.parametrize("head_dim", [64, 32, 7])
def test_v21_rotation_matches_the_slow_formula_on_rescaled_positions(head_dim):
    grid = (3, 5, 7)
    index = torch.arange(3 * 5 * 7)
    positions = rescaled_positions(all_grid(*grid)[0], grid, 16).double()
    x = torch.randn(len(index), head_dim, dtype=torch.float64)
    fast = rotate_v21(x, positions)
    for i in index.tolist():
        assert positions[i].tolist() == pytest.approx(slow_position(i, grid, 16))
        slow = slow_rope_v21(x[i].tolist(), slow_position(i, grid, 16))
        assert fast[i].tolist() == pytest.approx(slow, abs=1e-12)


def test_v21_positions_are_rescaled_onto_the_reference_grid_in_float32():
    grid = (4, 24, 12)  # 384 x 192 px of 16 px patches: rows and columns rescaled apart
    positions = rescaled_positions(all_grid(*grid), grid, 16)
    assert positions.dtype == torch.float32
    t, h, w = positions[0].unbind(-1)
    assert torch.equal(t, all_grid(*grid)[0, :, 0].float())  # time is not rescaled
    assert (h.max().item(), w.max().item(), h.min().item()) == (15.0, 15.0, 0.0)
    # The released expression, in float32: (h * (G - 1)) / (H - 1).
    assert torch.equal(h, all_grid(*grid)[0, :, 1].float() * 15 / 23)
    with pytest.raises(ValueError, match="at least 2 rows"):
        rescaled_positions(all_grid(1, 1, 4), (1, 1, 4), 16)


def test_v21_rotation_is_the_identity_at_zero_and_depends_only_on_differences():
    x, y = torch.randn(2, 64, dtype=torch.float64)
    zero = torch.zeros(1, 3, dtype=torch.float64)
    assert torch.equal(rotate_v21(x[None], zero)[0], x)
    a = torch.tensor([[1.0, 2.5, 7.0]], dtype=torch.float64)
    b = torch.tensor([[3.0, 0.5, 1.0]], dtype=torch.float64)
    shift = torch.tensor([[5.0, 3.75, -2.0]], dtype=torch.float64)
    dot = lambda p, q: (rotate_v21(x[None], p) * rotate_v21(y[None], q)).sum()
    assert dot(a, b).item() == pytest.approx(dot(a + shift, b + shift).item(), abs=1e-10)
    assert dot(a, b).item() != pytest.approx(dot(a, b + shift).item(), abs=1e-3)


def test_v21_attention_turns_queries_and_keys_by_the_slow_formula():
    torch.manual_seed(3)
    attn = Attention(64, 2, rope_layout="pairs").double()
    grid = (2, 3, 3)
    x = torch.randn(1, 18, 64, dtype=torch.float64)
    positions = rescaled_positions(all_grid(*grid), grid, 16).double()
    with torch.no_grad():
        q, k, v = attn.qkv(x).view(1, 18, 3, 2, 32).permute(2, 0, 3, 1, 4)
        turn = lambda t: torch.tensor(
            [
                [slow_rope_v21(t[0, h, i].tolist(), slow_position(i, grid, 16)) for i in range(18)]
                for h in range(2)
            ],
            dtype=torch.float64,
        )[None]
        expected = F.scaled_dot_product_attention(turn(q), turn(k), v)
        expected = attn.proj(expected.transpose(1, 2).reshape(1, 18, 64))
        assert torch.allclose(attn(x, None, positions), expected, atol=1e-10)
    encoder = build_encoder(V21)
    assert {b.attn.rope_layout for b in encoder.blocks} == {"pairs"}


def test_the_predictor_rescales_its_positions_only_when_asked():
    cfg = replace(LAYOUTS["full"], pred_rope_reference_grid=16)
    encoder, predictor, _, _ = our_2_1_models(cfg)
    assert predictor.rope_reference_grid == 16
    context = encoder(CLIPS, KEEP, levels=4)
    with torch.no_grad():
        rescaled = predictor(context, KEEP, TARGETS)
        x = torch.cat(
            [
                predictor.predictor_embed(context),
                predictor.mask_tokens[0].expand(2, 2, -1),
            ],
            dim=1,
        )
        x = x + predictor.video_mod_embed
        index = torch.cat([KEEP, TARGETS], dim=1)
        t, rest = index // 4, index % 4
        positions = torch.stack([t, rest // 2, rest % 2], -1).float() * torch.tensor([1, 15, 15])
        for block in predictor.predictor_blocks:
            x = block(x, None, positions)
        expected = predictor.predictor_proj(predictor.predictor_norm(x[:, 3:]))
        assert torch.allclose(rescaled, expected, atol=1e-5)
        predictor.rope_reference_grid = None  # integer positions: another prediction
        assert not torch.allclose(predictor(context, KEEP, TARGETS), rescaled, atol=1e-3)


def test_released_2_1_size_table_builds_the_released_shapes():
    """ViT-B / L (distilled) and ViT-g / G, as the importer configures them, on the meta device."""
    from train.released import RELEASED_HEADS

    sizes = {  # width: depth, MLP hidden, predictor depth, levels in and out, out per level
        768: (12, 3072, 12, 1, TEACHER_WIDTH),
        1024: (24, 4096, 12, 1, TEACHER_WIDTH),
        1408: (40, 6144, 24, 4, 1408),
        1664: (48, 8192, 24, 4, 1664),
    }
    for width, (depth, hidden, pred_depth, levels, out) in sizes.items():
        assert width // RELEASED_HEADS[width] == 64
        cfg = replace(
            V21,
            embed_dim=width,
            depth=depth,
            num_heads=RELEASED_HEADS[width],
            mlp_ratio=hidden / width,
            pred_depth=pred_depth,
            pred_mlp_ratio=4.0,
            img_size=384,
            num_frames=64,
            pred_levels=levels,
            pred_out_dim=None if out == width else out,
        )
        with torch.device("meta"):
            encoder = build_encoder(cfg)
            predictor = build_predictor(cfg, encoder.grid_size, 2, None)
        assert encoder.blocks[0].mlp.fc1.out_features == hidden
        assert encoder.level_depths[-1] == depth - 1 and len(encoder.norms_block) == 4
        assert predictor.input_proj.in_features == levels * width
        assert predictor.predictor_proj.out_features == levels * out
        assert predictor.predictor_proj_context.out_features == levels * out


def test_surprise_on_a_2_1_model_compares_the_last_level_and_refuses_a_distilled_one(tmp_path):
    from train.eval.surprise import LatentForecaster

    encoder, _, target, pred_state = our_2_1_models(LAYOUTS["full"])
    write_2_1_pt(tmp_path / "g.pt", encoder.state_dict(), pred_state, target.state_dict(), False)
    imported, _ = import_with_report(tmp_path / "g.pt", GEOMETRY)
    imported.eval()
    window = (CLIPS * 40 + 128).clamp(0, 255).to(torch.uint8)
    predicted, actual = LatentForecaster(imported)(window, context_steps=1)
    assert predicted.shape == actual.shape == (2, 1, 2, 2, WIDTH)
    with torch.no_grad():  # the last of the 4 predicted levels, from all 4 context levels
        masks = torch.tensor([[0, 1, 2, 3]] * 2), torch.tensor([[4, 5, 6, 7]] * 2)
        clips = imported.encoder.as_clip(window.float() / 255)
        direct = imported.predictor(imported.encoder(clips, masks[0], levels=4), *masks)
        ours = imported.predict(clips, *masks)
    assert torch.equal(ours, direct[..., -WIDTH:])

    states = released_2_1_states(distilled=True)
    write_2_1_pt(tmp_path / "l.pt", states["encoder"], states["predictor"], states["encoder"], True)
    distilled, _ = import_with_report(tmp_path / "l.pt", GEOMETRY)
    with pytest.raises(ValueError, match="1664-wide features of the teacher.*Features and"):
        LatentForecaster(distilled.eval())(window, context_steps=1)
