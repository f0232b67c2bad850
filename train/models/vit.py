"""Video Vision Transformer: tubelet embedding, 3-D positions, pre-norm blocks.

Positions (`positions=`): a fixed sin-cos table added to the tokens (`sincos`, `sincos_uniform`;
see positions.py), or V-JEPA 2's 3-D RoPE on queries and keys in every block (`rope`; see
rope.py), which needs no table and takes each token's position from its index on the grid, or
V-JEPA 2.1's (`rope_v21`: one frequency per channel pair, positions optionally rescaled onto a
reference grid; rope_v21.py).

V-JEPA 2.1's other options, all off by default: `hierarchical_levels` LayerNorms
`norms_block.i` at spread depths instead of one `norm` (hierarchical.py; the features are the
last level), `modality_embed` (learned `video_mod_embed` / `img_mod_embed` added to the tokens)
and `image_patch_embed` (`patch_embed_img`, 1-frame tubelets for one-frame clips).

Parameter names follow timm and the released V-JEPA weights (`patch_embed.proj`, `pos_embed`,
`blocks.N.norm1`, `blocks.N.attn.qkv`, `blocks.N.attn.proj`, `blocks.N.mlp.fc1/fc2`, `norm`) so
those weights map onto this module by name. A clip of one frame with tubelet size 1 is an image:
I-JEPA runs through the same code.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from train.models.hierarchical import level_depths
from train.models.positions import sincos_3d
from train.models.rope import (
    Layout,
    all_positions,
    apply_rope,
    check_head_dim,
    grid_positions,
    rope_angles,
)
from train.models.rope_v21 import rescaled_positions

LAYER_NORM_EPS = 1e-6
POSITION_SCHEMES = ("sincos", "sincos_uniform", "rope", "rope_v21")
# The RoPE schemes and the frequency layout of each (rope.py).
ROPE_LAYOUTS: dict[str, Layout] = {"rope": "vjepa2", "rope_v21": "pairs"}


def gather_tokens(tokens: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """tokens [B, N, D], index [B, K] -> [B, K, D]."""
    return torch.gather(tokens, 1, index.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))


def key_padding_mask(valid: torch.Tensor | None) -> torch.Tensor | None:
    """[B, N] validity -> the boolean attention mask SDPA broadcasts over heads and queries.

    Callers that know nothing is padded pass None (no mask, so SDPA may pick its fastest kernel;
    see MaskSet.attention_validity). The values are not inspected here: reading them would stop
    the host until the device catches up, on every forward.
    """
    if valid is None:
        return None
    return valid[:, None, None, :]


class PatchEmbed(nn.Module):
    """Cuts [B, C, T, H, W] into tubelets of tubelet_size x patch_size^2 and embeds each."""

    def __init__(self, patch_size: int, tubelet_size: int, in_chans: int, embed_dim: int):
        super().__init__()
        self.patch_size = patch_size
        self.tubelet_size = tubelet_size
        kernel = (tubelet_size, patch_size, patch_size)
        self.proj = nn.Conv3d(in_chans, embed_dim, kernel_size=kernel, stride=kernel)

    def grid(self, clip_shape: torch.Size) -> tuple[int, int, int]:
        *_, t, h, w = clip_shape
        p, tt = self.patch_size, self.tubelet_size
        if t % tt or h % p or w % p:
            raise ValueError(
                f"clip of {t} frames x {h}x{w} px does not split into tubelets of {tt} frames x "
                f"{p}x{p} px; resize or crop it to multiples"
            )
        return t // tt, h // p, w // p

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        return self.proj(clip).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int, rope_layout: Layout = "vjepa2"):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"width {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.rope_layout = rope_layout
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(
        self,
        x: torch.Tensor,
        attn_mask: torch.Tensor | None = None,
        rope_positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """`rope_positions` [B or 1, N, 3]: turn queries and keys by 3-D RoPE (rope.py)."""
        b, n, d = x.shape
        qkv = self.qkv(x).view(b, n, 3, self.num_heads, d // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        if rope_positions is not None:
            cos, sin = rope_angles(rope_positions, q.shape[-1], q.dtype, self.rope_layout)
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        x = attend(q, k, v, attn_mask)
        return self.proj(x.transpose(1, 2).reshape(b, n, d))


# PyTorch's fused attention on a CPU is slower in bf16 than in float32, its backward above all
# (1.2-3.9x at the teaching preset's head widths of 24-32; docs/performance.md): on a CPU,
# bf16 queries, keys and values attend in float32 and the result is cast back. CUDA keeps bf16.
CPU_BF16_ATTENTION_IN_FP32 = True


def attend(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: torch.Tensor | None
) -> torch.Tensor:
    if CPU_BF16_ATTENTION_IN_FP32 and q.device.type == "cpu" and q.dtype == torch.bfloat16:
        with torch.autocast("cpu", enabled=False):
            out = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask)
        return out.to(q.dtype)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)


class MLP(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, rope_layout: Layout = "vjepa2"):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.attn = Attention(dim, num_heads, rope_layout)
        self.norm2 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.mlp = MLP(dim, int(dim * mlp_ratio))

    def forward(
        self,
        x: torch.Tensor,
        attn_mask: torch.Tensor | None = None,
        rope_positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), attn_mask, rope_positions)
        return x + self.mlp(self.norm2(x))


def run_blocks(
    blocks: nn.ModuleList,
    x: torch.Tensor,
    valid: torch.Tensor | None,
    checkpointing: bool,
    rope_positions: torch.Tensor | None = None,
) -> torch.Tensor:
    """Blocks in order; with `checkpointing`, activations are recomputed in backward to save
    memory (about one extra forward of compute). `rope_positions` [B or 1, N, 3] are the
    tokens' grid positions when the blocks use 3-D RoPE."""
    last = (len(blocks) - 1,)
    kept = run_blocks_keeping(blocks, x, valid, checkpointing, rope_positions, last)
    return kept[-1] if kept else x


def run_blocks_keeping(
    blocks: nn.ModuleList,
    x: torch.Tensor,
    valid: torch.Tensor | None,
    checkpointing: bool,
    rope_positions: torch.Tensor | None,
    keep_after: tuple[int, ...],
) -> list[torch.Tensor]:
    """`run_blocks`, returning the outputs after the blocks at the indices `keep_after` (V-JEPA
    2.1's levels)."""
    attn_mask = key_padding_mask(valid)
    kept = []
    for index, block in enumerate(blocks):
        if checkpointing and torch.is_grad_enabled():
            x = checkpoint(block, x, attn_mask, rope_positions, use_reentrant=False)
        else:
            x = block(x, attn_mask, rope_positions)
        if index in keep_after:
            kept.append(x)
    return kept


def positions_for(
    table: torch.Tensor, base_grid: tuple, grid: tuple, uniform: bool = False
) -> torch.Tensor:
    """The stored [1, N, D] table, or the exact sin-cos table of another grid (with the uniform
    split of V-JEPA 1 when `uniform`)."""
    if tuple(grid) == tuple(base_grid):
        return table
    return sincos_3d(table.shape[-1], tuple(grid), uniform).to(table)[None]


def rope_positions_for(
    index: torch.Tensor | None,
    grid: tuple[int, int, int],
    device: torch.device,
    reference_grid: int | None = None,
) -> torch.Tensor:
    """Grid positions [B or 1, N, 3] of the tokens at `index` [B, N] (None: every token), with
    height and width rescaled onto `reference_grid` when given (V-JEPA 2.1, rope_v21.py)."""
    positions = all_positions(grid, device) if index is None else grid_positions(index, grid)
    if reference_grid is None:
        return positions
    return rescaled_positions(positions, grid, reference_grid)


def in_weight_dtype(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """`x` in the dtype of `weight` when the weights were cast below float32 for inference
    (train.pretrained.cast_weights): the model then computes in bf16 throughout. With float32
    weights `x` passes unchanged, so training under autocast computes exactly as before."""
    if weight.dtype == torch.float32:
        return x
    return x.to(weight.dtype)


def init_transformer_weights(module: nn.Module, blocks: nn.ModuleList) -> None:
    """Truncated-normal linears, unit norms, and residual projections scaled down by depth so
    the residual stream starts with comparable variance at every layer."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv3d)):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    for layer, block in enumerate(blocks, start=1):
        block.attn.proj.weight.data.div_(math.sqrt(2.0 * layer))
        block.mlp.fc2.weight.data.div_(math.sqrt(2.0 * layer))


class VisionTransformer(nn.Module):
    def __init__(
        self,
        *,
        img_size: int = 224,
        num_frames: int = 16,
        patch_size: int = 16,
        tubelet_size: int = 2,
        in_chans: int = 3,
        embed_dim: int = 1024,
        depth: int = 24,
        num_heads: int = 16,
        mlp_ratio: float = 4.0,
        checkpoint_activations: bool = False,
        positions: str = "sincos",
        rope_reference_grid: int | None = None,
        hierarchical_levels: int = 0,
        modality_embed: bool = False,
        image_patch_embed: bool = False,
    ):
        super().__init__()
        if positions not in POSITION_SCHEMES:
            raise ValueError(f"unknown positions {positions!r}; use one of {POSITION_SCHEMES}")
        if rope_reference_grid is not None and positions not in ROPE_LAYOUTS:
            raise ValueError(
                f"rope_reference_grid={rope_reference_grid} rescales RoPE positions, and "
                f"positions={positions!r} has none: use positions=rope_v21 or unset it"
            )
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.checkpoint_activations = checkpoint_activations
        self.positions = positions
        self.rope_reference_grid = rope_reference_grid
        self.patch_embed = PatchEmbed(patch_size, tubelet_size, in_chans, embed_dim)
        self.grid_size = self.patch_embed.grid((num_frames, img_size, img_size))
        if positions in ROPE_LAYOUTS:
            check_head_dim(embed_dim, num_heads)
            self.pos_embed = None
        else:
            table = sincos_3d(embed_dim, self.grid_size, uniform=positions == "sincos_uniform")
            self.register_buffer("pos_embed", table[None])
        layout = ROPE_LAYOUTS.get(positions, "vjepa2")
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio, layout) for _ in range(depth)
        )
        # One final norm, or V-JEPA 2.1's norms after spread blocks (hierarchical.py).
        self.level_depths = level_depths(depth, hierarchical_levels) if hierarchical_levels else ()
        if self.level_depths:
            self.norms_block = nn.ModuleList(
                nn.LayerNorm(embed_dim, eps=LAYER_NORM_EPS) for _ in self.level_depths
            )
        else:
            self.norm = nn.LayerNorm(embed_dim, eps=LAYER_NORM_EPS)
        self.patch_embed_img = None
        if image_patch_embed:
            self.patch_embed_img = PatchEmbed(patch_size, 1, in_chans, embed_dim)
        init_transformer_weights(self, self.blocks)
        self.modality_embed = modality_embed
        if modality_embed:  # V-JEPA 2.1 starts them near zero (std 1e-6)
            self.video_mod_embed = nn.Parameter(torch.randn(1, 1, embed_dim) * 1e-6)
            self.img_mod_embed = nn.Parameter(torch.randn(1, 1, embed_dim) * 1e-6)

    @property
    def num_levels(self) -> int:
        """Levels `encode_tokens` can return concatenated (1 without hierarchical norms)."""
        return max(1, len(self.level_depths))

    @property
    def num_tokens(self) -> int:
        return math.prod(self.grid_size)

    def as_clip(self, x: torch.Tensor) -> torch.Tensor:
        """Images [B, C, H, W] become one-frame clips when the tubelet is one frame deep, or when
        the model has an image patch embedding."""
        if x.dim() == 4 and (
            self.patch_embed.tubelet_size == 1 or self.patch_embed_img is not None
        ):
            return x.unsqueeze(2)
        if x.dim() != 5:
            raise ValueError(f"expected a clip batch [B, C, T, H, W], got shape {tuple(x.shape)}")
        return x

    def is_image(self, clip: torch.Tensor) -> bool:
        """A one-frame clip goes through `patch_embed_img` when the model has one (V-JEPA 2.1)."""
        return self.patch_embed_img is not None and clip.shape[2] == 1

    def token_grid(self, clip: torch.Tensor) -> tuple[int, int, int]:
        """The (T, H, W) token grid of a clip [B, C, T, H, W]."""
        embedder = self.patch_embed_img if self.is_image(clip) else self.patch_embed
        return embedder.grid(clip.shape)

    def embed(self, clip: torch.Tensor) -> torch.Tensor:
        """Tubelet tokens plus positions, [B, N, D], for the whole clip (with RoPE the tokens
        alone: positions enter in the blocks), plus the modality vector if the model has one."""
        clip = self.as_clip(clip)
        grid = self.token_grid(clip)
        image = self.is_image(clip)
        embedder = self.patch_embed_img if image else self.patch_embed
        weight = embedder.proj.weight
        tokens = embedder(in_weight_dtype(clip, weight))
        if self.modality_embed:
            tokens = tokens + (self.img_mod_embed if image else self.video_mod_embed)
        if self.pos_embed is None:
            return tokens
        uniform = self.positions == "sincos_uniform"
        # The table is float32 (also under bf16 weights); the sum goes back to the weights' dtype.
        return in_weight_dtype(
            tokens + positions_for(self.pos_embed, self.grid_size, grid, uniform), weight
        )

    def encode_tokens(
        self,
        tokens: torch.Tensor,
        valid: torch.Tensor | None = None,
        token_idx: torch.Tensor | None = None,
        grid: tuple[int, int, int] | None = None,
        levels: int = 1,
    ) -> torch.Tensor:
        """Blocks and final norm over already embedded (and possibly gathered) tokens.

        With RoPE the blocks need each token's place: `token_idx` [B, N], the tokens' indices on
        `grid` (default: the configured grid); None means all tokens of the grid, in order.
        `levels` > 1 (hierarchical models): the last `levels` levels, concatenated [B, N,
        levels x D], as V-JEPA 2.1's predictor reads them.
        """
        if not 1 <= levels <= self.num_levels:
            raise ValueError(f"levels={levels}: this encoder has {self.num_levels} level(s)")
        checkpointing = self.checkpoint_activations and self.training
        rope_positions = None
        if self.positions in ROPE_LAYOUTS:
            rope_positions = rope_positions_for(
                token_idx, grid or self.grid_size, tokens.device, self.rope_reference_grid
            )
        if not self.level_depths:
            return self.norm(run_blocks(self.blocks, tokens, valid, checkpointing, rope_positions))
        outputs = run_blocks_keeping(
            self.blocks, tokens, valid, checkpointing, rope_positions, self.level_depths
        )
        normed = [norm(x) for norm, x in zip(self.norms_block, outputs)]
        return torch.cat(normed[-levels:], dim=-1) if levels > 1 else normed[-1]

    def forward(
        self,
        clip: torch.Tensor,
        keep: torch.Tensor | None = None,
        keep_valid: torch.Tensor | None = None,
        levels: int = 1,
    ) -> torch.Tensor:
        """Features of every token, or only of the `keep` [B, K] tokens (the context).

        `keep_valid` [B, K] marks padding in `keep`: padded entries are not attended to.
        `levels`: see `encode_tokens` (1: the features).
        """
        clip = self.as_clip(clip)
        tokens = self.embed(clip)
        if keep is not None:
            tokens = gather_tokens(tokens, keep)
        return self.encode_tokens(tokens, keep_valid, keep, self.token_grid(clip), levels)
