"""Encoder and predictor: shapes, names, positions, context selection and padding."""

from __future__ import annotations

import pytest
import torch

from train.config import ModelConfig
from train.models import build_encoder, build_predictor, gather_tokens
from train.models.positions import sincos_3d
from train.models.vit import positions_for


def micro_config(**kw) -> ModelConfig:
    base = dict(
        size="tiny",
        embed_dim=32,
        depth=2,
        num_heads=2,
        pred_embed_dim=16,
        pred_depth=2,
        pred_num_heads=2,
        num_frames=4,
        img_size=32,
        patch_size=8,
        tubelet_size=2,
    )
    return ModelConfig(**{**base, **kw})


@pytest.fixture
def encoder():
    torch.manual_seed(0)
    return build_encoder(micro_config()).eval()


def test_token_grid_and_output_shape(encoder):
    clips = torch.randn(3, 3, 4, 32, 32)
    assert encoder.grid_size == (2, 4, 4)
    assert encoder(clips).shape == (3, 32, 32)


def test_parameter_names_follow_the_released_weights(encoder):
    names = set(encoder.state_dict())
    for name in [
        "patch_embed.proj.weight",
        "pos_embed",
        "blocks.0.norm1.weight",
        "blocks.0.attn.qkv.weight",
        "blocks.0.attn.qkv.bias",
        "blocks.1.attn.proj.weight",
        "blocks.1.mlp.fc1.weight",
        "blocks.1.mlp.fc2.bias",
        "norm.weight",
    ]:
        assert name in names
    assert encoder.patch_embed.proj.weight.shape == (32, 3, 2, 8, 8)
    predictor = build_predictor(micro_config(), encoder.grid_size, 2, None)
    names = set(predictor.state_dict())
    for name in [
        "predictor_embed.weight",
        "mask_tokens.0",
        "mask_tokens.1",
        "predictor_pos_embed",
        "predictor_blocks.1.attn.qkv.weight",
        "predictor_norm.weight",
        "predictor_proj.weight",
    ]:
        assert name in names


def test_vit_l_matches_the_paper_size():
    cfg = ModelConfig(size="vit_l")
    with torch.device("meta"):
        encoder = build_encoder(cfg)
        predictor = build_predictor(cfg, encoder.grid_size, 2, None)
    count = lambda m: sum(p.numel() for p in m.parameters())
    assert encoder.num_tokens == 8 * 14 * 14 == 1568
    assert 300e6 < count(encoder) < 306e6  # ViT-L/16 with a tubelet embedding: ~304M
    assert (predictor.predictor_embed.out_features, len(predictor.predictor_blocks)) == (384, 12)
    assert predictor.predictor_proj.out_features == 1024


def test_sincos_positions_are_exact_for_other_grids():
    table = sincos_3d(32, (2, 4, 4))
    assert table.shape == (32, 32)
    bigger = positions_for(table[None], (2, 4, 4), (4, 6, 6))[0]
    # The same (t, h, w) gets the same vector in both tables.
    t, h, w = 1, 3, 2
    assert torch.equal(bigger[t * 36 + h * 6 + w], table[t * 16 + h * 4 + w])
    assert len({tuple(r.tolist()) for r in table}) == 32  # every position distinct


def test_encoder_runs_on_other_clip_sizes(encoder):
    assert encoder(torch.randn(1, 3, 8, 48, 48)).shape == (1, 4 * 6 * 6, 32)
    with pytest.raises(ValueError, match="does not split into tubelets"):
        encoder(torch.randn(1, 3, 5, 32, 32))


def test_image_mode_is_a_one_frame_clip():
    enc = build_encoder(micro_config(num_frames=1, tubelet_size=1)).eval()
    image = torch.randn(2, 3, 32, 32)
    assert enc(image).shape == (2, 16, 32)
    assert torch.equal(enc(image), enc(image.unsqueeze(2)))


def test_context_forward_only_sees_kept_tokens(encoder):
    clips = torch.randn(2, 3, 4, 32, 32)
    keep = torch.tensor([[0, 5, 9, 30], [1, 2, 3, 4]])
    out = encoder(clips, keep)
    assert out.shape == (2, 4, 32)
    # Changing pixels of a token not kept (token 31 = last tubelet) leaves the output unchanged.
    changed = clips.clone()
    changed[..., 2:4, 24:32, 24:32] += 5.0
    assert torch.allclose(encoder(changed, keep), out, atol=1e-6)
    # ... while changing a kept token's pixels changes it.
    changed[..., 0:2, 0:8, 0:8] += 5.0
    assert not torch.allclose(encoder(changed, keep), out, atol=1e-3)


def test_padding_is_ignored_by_attention(encoder):
    clips = torch.randn(1, 3, 4, 32, 32)
    keep = torch.tensor([[3, 7, 11, 20]])
    exact = encoder(clips, keep)
    padded = torch.tensor([[3, 7, 11, 20, 0, 0]])
    valid = torch.tensor([[True, True, True, True, False, False]])
    assert torch.allclose(encoder(clips, padded, valid)[:, :4], exact, atol=1e-5)


def test_predictor_padding_and_mask_tokens():
    torch.manual_seed(0)
    cfg = micro_config()
    predictor = build_predictor(cfg, (2, 4, 4), 2, None).eval()
    with torch.no_grad():
        for token in predictor.mask_tokens:
            token.normal_()
    context = torch.randn(1, 3, 32)
    ctx_idx = torch.tensor([[0, 1, 2]])
    tgt_idx = torch.tensor([[10, 11]])
    out = predictor(context, ctx_idx, tgt_idx, mask_index=0)
    assert out.shape == (1, 2, 32)
    padded = predictor(
        torch.cat([context, torch.randn(1, 2, 32)], 1),
        torch.tensor([[0, 1, 2, 0, 0]]),
        torch.tensor([[10, 11, 0]]),
        context_valid=torch.tensor([[True, True, True, False, False]]),
        target_valid=torch.tensor([[True, True, False]]),
        mask_index=0,
    )
    assert torch.allclose(padded[:, :2], out, atol=1e-5)
    other_set = predictor(context, ctx_idx, tgt_idx, mask_index=1)
    assert not torch.allclose(other_set, out)
    with pytest.raises(ValueError, match="mask_index 2 out of range"):
        predictor(context, ctx_idx, tgt_idx, mask_index=2)


def test_activation_checkpointing_gives_the_same_gradients():
    clips = torch.randn(2, 3, 4, 32, 32)
    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        enc = build_encoder(micro_config(checkpoint_activations=checkpointing)).train()
        enc(clips).square().mean().backward()
        grads.append(enc.blocks[0].attn.qkv.weight.grad.clone())
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


def test_gather_tokens():
    tokens = torch.arange(24.0).view(2, 4, 3)
    out = gather_tokens(tokens, torch.tensor([[3, 0], [1, 1]]))
    assert out.tolist() == [[[9, 10, 11], [0, 1, 2]], [[15, 16, 17], [15, 16, 17]]]


def test_bf16_attention_on_a_cpu_runs_in_float32_and_casts_back():
    """PyTorch's CPU attention is slower in bf16 than in float32 (docs/performance.md): bf16
    queries, keys and values attend in float32, and the result is bf16 again."""
    import torch.nn.functional as F

    from train.models.vit import attend

    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 17, 24, generator=gen).bfloat16() for _ in range(3))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = attend(q, k, v, None)
    expected = F.scaled_dot_product_attention(q.float(), k.float(), v.float()).bfloat16()
    assert out.dtype == torch.bfloat16
    assert torch.equal(out, expected)
    assert not torch.equal(F.scaled_dot_product_attention(q, k, v), expected)  # not a no-op
