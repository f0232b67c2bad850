"""3-D RoPE: the rotation against a slow per-channel formula, its algebra, and its wiring into the
encoder and predictor (every token rotated by its own place on the grid)."""

from __future__ import annotations

import math

import pytest
import torch

from test_models import micro_config
from train.config import ModelConfig, load_config
from train.loop import train
from train.models import build_encoder, build_predictor
from train.models.rope import apply_rope, axis_width, grid_positions, rope_angles
from train.monitor import read_metrics
from train.pretrained import load_pretrained


def slow_rope(x: list[float], position: tuple[int, int, int], layout: str) -> list[float]:
    """One head vector, channel by channel, straight from the formula in train/models/rope.py."""
    head_dim = len(x)
    width = 2 * ((head_dim // 3) // 2)
    half = width // 2
    out = list(x)
    for axis in range(3):
        start = axis * width
        for pair in range(half):
            first, second = 2 * pair, 2 * pair + 1
            if layout == "vjepa2":  # channel j uses frequency j mod (width / 2)
                f_first, f_second = first % half, second % half
            else:  # one frequency per pair
                f_first = f_second = pair
            a = position[axis] * 10000 ** (-f_first / half)
            b = position[axis] * 10000 ** (-f_second / half)
            x0, x1 = x[start + first], x[start + second]
            out[start + first] = x0 * math.cos(a) - x1 * math.sin(a)
            out[start + second] = x1 * math.cos(b) + x0 * math.sin(b)
    return out


def rotate(x: torch.Tensor, positions: torch.Tensor, layout: str = "vjepa2") -> torch.Tensor:
    """x [N, head_dim] at positions [N, 3] through the module's code (float64)."""
    cos, sin = rope_angles(positions[None], x.shape[-1], torch.float64, layout)
    return apply_rope(x[None, None], cos, sin)[0, 0]


@pytest.mark.parametrize("layout", ["vjepa2", "pairs"])
@pytest.mark.parametrize("head_dim", [64, 32, 16, 7])
def test_rotation_matches_the_slow_formula(layout, head_dim):
    torch.manual_seed(head_dim)
    x = torch.randn(5, head_dim, dtype=torch.float64)
    positions = torch.tensor([[0, 0, 0], [1, 2, 3], [7, 0, 15], [3, 13, 1], [31, 23, 23]])
    fast = rotate(x, positions, layout)
    for row in range(len(x)):
        expected = slow_rope(x[row].tolist(), tuple(positions[row].tolist()), layout)
        assert fast[row].tolist() == pytest.approx(expected, abs=1e-12)


def test_head_split_of_the_released_sizes():
    assert axis_width(64) == 20  # ViT-L / H / g: 60 of 64 channels rotated, 4 pass through
    assert axis_width(32) == 10  # the 384-wide, 12-head predictor: 30 of 32, 2 pass through
    cos, _ = rope_angles(torch.zeros(1, 1, 3, dtype=torch.long), 64, torch.float32)
    assert cos.shape == (1, 1, 1, 60)
    x = torch.randn(1, 1, 1, 64)
    cos, sin = rope_angles(torch.tensor([[[5, 6, 7]]]), 64, torch.float32)
    assert torch.equal(apply_rope(x, cos, sin)[..., 60:], x[..., 60:])


@pytest.mark.parametrize("layout", ["vjepa2", "pairs"])
def test_position_zero_is_the_identity(layout):
    x = torch.randn(2, 3, 4, 64)
    cos, sin = rope_angles(torch.zeros(1, 4, 3, dtype=torch.long), 64, torch.float32, layout)
    assert torch.equal(apply_rope(x, cos, sin), x)


def test_textbook_pairs_depend_only_on_the_position_difference():
    torch.manual_seed(0)
    q, k = torch.randn(2, 64, dtype=torch.float64).unbind(0)
    p, r = torch.tensor([[2, 5, 1]]), torch.tensor([[7, 3, 9]])
    base = rotate(q[None], p, "pairs") @ rotate(k[None], r, "pairs").T
    for shift in ([1, 0, 0], [0, 4, 0], [3, 2, 11], [-2, -3, -1]):
        d = torch.tensor([shift])
        moved = rotate(q[None], p + d, "pairs") @ rotate(k[None], r + d, "pairs").T
        assert moved.item() == pytest.approx(base.item(), abs=1e-10)
    # ... and the pair rotation keeps lengths.
    assert rotate(q[None], p, "pairs").norm().item() == pytest.approx(q.norm().item())


def test_vjepa2_layout_is_not_exactly_relative():
    """The released layout turns a pair's two channels by different angles (the tiled frequency
    vector); V-JEPA 2 keeps it for its weights, and so the score moves when both tokens shift."""
    torch.manual_seed(0)
    q, k = torch.randn(2, 64, dtype=torch.float64).unbind(0)
    p, r, d = torch.tensor([[2, 5, 1]]), torch.tensor([[7, 3, 9]]), torch.tensor([[3, 2, 1]])
    base = rotate(q[None], p) @ rotate(k[None], r).T
    moved = rotate(q[None], p + d) @ rotate(k[None], r + d).T
    assert abs(moved.item() - base.item()) > 1e-3
    # Even a query and key at the same place score differently at different places.
    at = lambda t: torch.tensor([[t, 0, 0]])
    same = [(rotate(q[None], at(t)) @ rotate(k[None], at(t)).T).item() for t in (0, 4)]
    assert abs(same[0] - same[1]) > 1e-3


def test_grid_positions_follow_the_token_order():
    grid = (3, 4, 5)
    index = torch.arange(60)
    t, h, w = torch.meshgrid(torch.arange(3), torch.arange(4), torch.arange(5), indexing="ij")
    expected = torch.stack([t.flatten(), h.flatten(), w.flatten()], dim=-1)
    assert torch.equal(grid_positions(index, grid), expected)
    assert grid_positions(torch.tensor([[23]]), grid).tolist() == [[[1, 0, 3]]]


def rope_config(**kw) -> ModelConfig:
    return micro_config(**{"embed_dim": 48, "pred_embed_dim": 24, "positions": "rope", **kw})


def test_rope_models_have_no_position_table_and_take_any_grid():
    torch.manual_seed(0)
    encoder = build_encoder(rope_config()).eval()
    predictor = build_predictor(rope_config(), encoder.grid_size, 2, None).eval()
    assert "pos_embed" not in encoder.state_dict()
    assert "predictor_pos_embed" not in predictor.state_dict()
    assert encoder(torch.randn(1, 3, 6, 40, 24)).shape == (1, 3 * 5 * 3, 48)


def test_gathered_tokens_keep_their_own_positions():
    """Feeding the tokens in another order permutes the outputs and changes nothing else: each
    token is rotated by its own (t, h, w), wherever it sits in the sequence."""
    torch.manual_seed(0)
    encoder = build_encoder(rope_config()).eval()
    clips = torch.randn(2, 3, 4, 32, 32)
    full = encoder(clips)
    order = torch.stack([torch.randperm(32) for _ in range(2)])
    shuffled = encoder(clips, order)
    assert torch.allclose(
        shuffled, torch.gather(full, 1, order[..., None].expand(-1, -1, 48)), atol=1e-5
    )
    # Context tokens see only each other, at their real places: a kept subset differs from the
    # same tokens of the full clip, and the same subset in another order gives the same rows.
    keep = torch.tensor([[1, 5, 9, 30], [30, 9, 5, 1]])
    out = encoder(clips[:1].expand(2, -1, -1, -1, -1), keep)
    assert torch.allclose(out[0], out[1].flip(0), atol=1e-5)
    with torch.no_grad():
        predictor = build_predictor(rope_config(), encoder.grid_size, 2, None).eval()
        for token in predictor.mask_tokens:
            token.normal_()
        targets = torch.tensor([[2, 17, 25]])
        a = predictor(out[:1], keep[:1], targets)
        b = predictor(out[:1].flip(1), keep[:1].flip(1), targets.flip(1))
        assert torch.allclose(a, b.flip(1), atol=1e-5)
        # Two targets with the same mask token differ only through their positions (slightly
        # at initialisation, where attention is nearly uniform).
        assert (a[:, 0] - a[:, 1]).abs().max() > 1e-6


def test_too_many_heads_for_rope_is_refused():
    with pytest.raises(ValueError, match="at least 6 channels per head"):
        build_encoder(rope_config(embed_dim=16, num_heads=4))


def test_rope_under_checkpointing_gives_the_same_gradients():
    clips = torch.randn(2, 3, 4, 32, 32)
    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        enc = build_encoder(rope_config(checkpoint_activations=checkpointing)).train()
        enc(clips, torch.tensor([[0, 3, 7, 12]] * 2)).square().mean().backward()
        grads.append(enc.blocks[0].attn.qkv.weight.grad.clone())
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


def test_a_rope_run_trains_with_the_v2_schedule_and_reloads(micro_overrides):
    """The whole path: masks gathered per set, RoPE in encoder and predictor, bf16 autocast,
    activation checkpointing, warmup-constant-cooldown, and a run that reloads as RoPE."""
    overrides = micro_overrides(
        "steps=6",
        "model.positions=rope",
        "model.checkpoint_activations=true",
        "precision=bf16",
        "optim.lr_schedule=warmup_constant_cooldown",
        "optim.cooldown_steps=2",
        "checkpoint_every=6",
    )
    cfg = load_config("tiny_cpu", overrides)
    records = read_metrics(train(cfg).run_dir / "metrics.jsonl")
    assert all(math.isfinite(r["loss"]) for r in records)
    assert [r["lr"] for r in records][2:5] == pytest.approx([1e-3, 1e-3, 1e-3])
    assert records[-1]["lr"] == pytest.approx(1e-6)
    reloaded = load_pretrained(cfg.out)
    assert reloaded.config.model.positions == "rope"
    assert "pos_embed" not in reloaded.encoder.state_dict()
