"""Features of labelled physics-world clips at every layer of an encoder, per clip and per
patch, for the embeddings notebook.

Clip features are the mean over a clip's tokens; patch features are single tokens of a few
clips, labelled by what covers the token (an occluder, the main object, another object or the
background, read from the scene description, not from the pixels) and by where it is.

    data = embedding_data(bundle, num_clips=600, patch_clips=12)
    data.clip_features["block 2"]      # float32 [600, D]
    neighbour_agreement(data.clip_features["output"], data.clip_labels["shape"])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from decoder.bundle import Bundle
from train.data import normalize_clip
from train.data.synthetic import Scene
from train.tokens import TokenGeometry
from workbench.clip_table import physics_world_for

OUTPUT = "output"
BACKGROUND_NAMES = ["dark", "middle", "light"]
CONTENT_NAMES = ["background", "other object", "main object", "occluder"]
BATCH = 32


def layer_names(encoder: nn.Module) -> list[str]:
    """ "block 1" ... "block N" (the residual stream after each block), then "output" (after
    the final LayerNorm: what the probes and the predictor read)."""
    return [f"block {i + 1}" for i in range(len(encoder.blocks))] + [OUTPUT]


@torch.no_grad()
def layer_tokens(encoder: nn.Module, clips_uint8: torch.Tensor) -> dict[str, torch.Tensor]:
    """Token features [B, N, D] of uint8 clips [B, 3, T, H, W] at every layer."""
    captured: list[torch.Tensor] = []
    hooks = [
        block.register_forward_hook(lambda _m, _i, out: captured.append(out.float()))
        for block in encoder.blocks
    ]
    try:
        output = encoder(normalize_clip(clips_uint8)).float()
    finally:
        for hook in hooks:
            hook.remove()
    names = layer_names(encoder)
    return dict(zip(names, [*captured, output]))


def token_content(scene: Scene, grid: tuple[int, int, int], tubelet: int, patch: int) -> np.ndarray:
    """int [T', H', W']: index into CONTENT_NAMES of what covers each token's tubelet.

    An object covers a token when its bounding box overlaps the token's pixels in any of the
    tubelet's frames; the occluder is drawn above the objects, so it wins, then the main object.
    """
    steps, side = grid[0], grid[1]
    content = np.zeros(grid, dtype=np.int64)
    edges = np.arange(side + 1) * patch  # token pixel edges, same for rows and columns (square)
    for rank, obj in sorted(enumerate(scene.objects), key=lambda item: -item[0]):
        label = CONTENT_NAMES.index("main object" if rank == 0 else "other object")
        positions = obj.positions.numpy()
        for t in range(steps):
            for x, y in positions[t * tubelet : (t + 1) * tubelet]:
                hit_cols = (edges[1:] > x - obj.radius) & (edges[:-1] < x + obj.radius)
                hit_rows = (edges[1:] > y - obj.radius) & (edges[:-1] < y + obj.radius)
                region = content[t][np.ix_(hit_rows, hit_cols)]
                content[t][np.ix_(hit_rows, hit_cols)] = np.maximum(region, label)
    if scene.occluder is not None:
        x0, y0, x1, y1 = scene.occluder
        hit_cols = (edges[1:] > x0) & (edges[:-1] < x1)
        hit_rows = (edges[1:] > y0) & (edges[:-1] < y1)
        content[:, hit_rows[:, None] & hit_cols[None, :]] = CONTENT_NAMES.index("occluder")
    return content


def background_brightness(scenes: list[Scene]) -> np.ndarray:
    """int [N]: each scene's background luminance in thirds of this set (dark, middle, light).

    Not a label the world was built to teach, but a nuisance every clip has; features that
    group clips by it are describing the background, not the objects."""
    luminance = np.array([np.dot(s.background, (0.299, 0.587, 0.114)) for s in scenes])
    edges = np.quantile(luminance, [1 / 3, 2 / 3])
    return np.searchsorted(edges, luminance, side="right")


@dataclass
class EmbeddingData:
    layers: list[str]
    clip_features: dict[str, np.ndarray]  # layer -> float32 [N, D]
    clip_labels: dict[str, np.ndarray]  # label -> int [N]
    clip_label_names: dict[str, list[str]]
    clip_hover: list[str]
    patch_features: dict[str, np.ndarray]  # layer -> float32 [M, D]
    patch_labels: dict[str, np.ndarray]  # label -> int [M]
    patch_label_names: dict[str, list[str]]
    patch_hover: list[str]
    patch_clip: np.ndarray  # int [M]: the clip each patch belongs to
    patch_token: np.ndarray  # int [M]: its token index in that clip
    clip_of: Callable[[int], np.ndarray]  # clip index -> uint8 [T, S, S, 3]
    geometry: TokenGeometry


def embedding_data(
    bundle: Bundle, num_clips: int, patch_clips: int, encoder: str = "target_encoder"
) -> EmbeddingData:
    """Every layer's clip features of `num_clips` clips and patch features of the first
    `patch_clips` of them (all their tokens), with labels and hover texts."""
    if not 2 <= patch_clips <= num_clips:
        raise ValueError(f"need 2 <= patch_clips <= num_clips, got {patch_clips}, {num_clips}")
    world = physics_world_for(bundle, num_clips)
    model = getattr(bundle, encoder)
    geometry = bundle.geometry
    layers = layer_names(model)
    clip_features: dict[str, list[np.ndarray]] = {name: [] for name in layers}
    patch_features: dict[str, list[np.ndarray]] = {name: [] for name in layers}
    labels: dict[str, list[int]] = {name: [] for name in world.label_names}
    for start in range(0, num_clips, BATCH):
        samples = [world[i] for i in range(start, min(start + BATCH, num_clips))]
        clips = torch.stack([s["clip"] for s in samples]).to(bundle.device)
        for name, tokens in layer_tokens(model, clips).items():
            clip_features[name].append(tokens.mean(1).cpu().numpy())
            keep = max(0, min(len(samples), patch_clips - start))
            if keep:
                patch_features[name].append(
                    tokens[:keep].reshape(-1, tokens.shape[-1]).cpu().numpy()
                )
        for sample in samples:
            for name, value in sample["labels"].items():
                labels[name].append(int(value))

    steps, rows, cols = geometry.grid
    per_clip = steps * rows * cols
    content = [
        token_content(
            world.clip_params(i), geometry.grid, geometry.tubelet_size, geometry.patch_size
        ).reshape(-1)
        for i in range(patch_clips)
    ]
    token = np.tile(np.arange(per_clip), patch_clips)
    patch_labels = {
        "content": np.concatenate(content),
        "time step": token // (rows * cols),
        "row": token // cols % rows,
        "column": token % cols,
    }
    patch_label_names = {
        "content": CONTENT_NAMES,
        "time step": [f"t{t}" for t in range(steps)],
        "row": [f"row {r}" for r in range(rows)],
        "column": [f"column {c}" for c in range(cols)],
    }
    patch_clip = np.repeat(np.arange(patch_clips), per_clip)
    clip_labels = {name: np.array(values) for name, values in labels.items()}
    clip_labels["background"] = background_brightness(
        [world.clip_params(i) for i in range(num_clips)]
    )
    names = {**world.label_names, "background": BACKGROUND_NAMES}

    def describe(index: int) -> str:
        parts = [f"{key}: {names[key][clip_labels[key][index]]}" for key in clip_labels]
        return f"clip {index}<br>" + "<br>".join(parts)

    def clip_of(index: int) -> np.ndarray:
        return world[int(index)]["clip"].permute(1, 2, 3, 0).numpy()

    patch_hover = [
        f"clip {c}, token {t}: {CONTENT_NAMES[k]}"
        for c, t, k in zip(patch_clip, token, patch_labels["content"])
    ]
    return EmbeddingData(
        layers=layers,
        clip_features={k: np.concatenate(v).astype(np.float32) for k, v in clip_features.items()},
        clip_labels=clip_labels,
        clip_label_names=names,
        clip_hover=[describe(i) for i in range(num_clips)],
        patch_features={k: np.concatenate(v).astype(np.float32) for k, v in patch_features.items()},
        patch_labels=patch_labels,
        patch_label_names=patch_label_names,
        patch_hover=patch_hover,
        patch_clip=patch_clip,
        patch_token=token,
        clip_of=clip_of,
        geometry=geometry,
    )


def neighbour_agreement(features: np.ndarray, labels: np.ndarray, k: int = 10) -> float:
    """Share of each point's `k` nearest neighbours (cosine) that carry its label, averaged:
    how strongly the features group points by this label. Compare with `chance_agreement`."""
    x = np.asarray(features, dtype=np.float32)
    unit = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    k = min(k, len(x) - 1)
    nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
    return float((labels[nearest] == labels[:, None]).mean())


def chance_agreement(labels: np.ndarray) -> float:
    """What `neighbour_agreement` gives for neighbours picked at random: sum of squared shares."""
    shares = np.bincount(labels) / len(labels)
    return float((shares**2).sum())
