"""Object-aware scores: does a fill put the hidden object where it is?

PSNR and SSIM over a whole masked region are ruled by the background, which covers most of it:
a flat fill of the right colour scores well while showing no object. On the physics world the
evaluator knows the scene, so it can score the objects alone:

* **object PSNR**: PSNR over the masked pixels that an object covers (any object, main or
  distractor). A fill that leaves the object out pays its whole contrast there.
* **centre error**: in each frame where an object covers at least `MIN_OBJECT_PIXELS` masked
  pixels, the distance (px) between the centroid of those pixels and the centre of what the
  fill draws there, i.e. the centroid of the masked pixels weighted by the fill's squared
  departure from the empty scene (the same clip rendered without its objects, same background,
  occluder and noise). A fill that draws nothing object-like has its weight spread over the
  region and its centre at the region's middle; averaged over such frames.

Which pixels an object covers: rendering the scene with and without its objects gives identical
pixels everywhere else (the noise is drawn per clip, not per render), so the object pixels are
those where the two renders differ by at least `OBJECT_MIN_CHANGE` levels in some channel (the
anti-aliased rim, where an object covers a sliver of a pixel, is left out).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch

from decoder.quality import psnr_in_region
from train.data.synthetic import PhysicsWorld

OBJECT_MIN_CHANGE = 16  # uint8 levels
MIN_OBJECT_PIXELS = 4  # masked object pixels a frame needs to count for the centre error


@dataclass
class ObjectLayers:
    """What the evaluator knows about held-out clips [N, ...] of the physics world."""

    covered: torch.Tensor  # bool [N, T, H, W]: pixels an object covers
    empty_scene: torch.Tensor  # uint8 [N, 3, T, H, W]: each clip rendered without its objects


def object_layers(world: PhysicsWorld, indices: list[int] | range) -> ObjectLayers:
    covered, empty = [], []
    for index in indices:
        scene = world.clip_params(index)
        with_objects = world.render(scene)
        without = world.render(dataclasses.replace(scene, objects=()))
        change = (with_objects.short() - without.short()).abs().amax(0)
        covered.append(change >= OBJECT_MIN_CHANGE)
        empty.append(without)
    return ObjectLayers(torch.stack(covered), torch.stack(empty))


def _centroid(weights: torch.Tensor) -> torch.Tensor:
    """(x, y) of pixel centres weighted by `weights` [H, W] (sum > 0)."""
    h, w = weights.shape
    ys = torch.arange(h, dtype=torch.float64) + 0.5
    xs = torch.arange(w, dtype=torch.float64) + 0.5
    total = weights.sum()
    return torch.stack([(weights.sum(0) * xs).sum() / total, (weights.sum(1) * ys).sum() / total])


def centre_errors(
    filled: torch.Tensor, pixel_mask: torch.Tensor, covered: torch.Tensor, empty: torch.Tensor
) -> list[float]:
    """Per frame with enough masked object pixels, the centre error (px) described above.
    filled, empty: [3, T, H, W]; pixel_mask, covered: bool [T, H, W]."""
    departure = (filled.double() - empty.double()).square().sum(0)  # [T, H, W]
    errors = []
    for t in range(pixel_mask.shape[0]):
        hidden_object = pixel_mask[t] & covered[t]
        if int(hidden_object.sum()) < MIN_OBJECT_PIXELS:
            continue
        truth = _centroid(hidden_object.double())
        weights = departure[t] * pixel_mask[t]
        if float(weights.sum()) == 0.0:  # the fill is the empty scene: no object anywhere
            weights = pixel_mask[t].double()
        drawn = _centroid(weights)
        errors.append(math.dist(truth.tolist(), drawn.tolist()))
    return errors


def object_scores(
    filled: torch.Tensor,
    original: torch.Tensor,
    pixel_mask: torch.Tensor,
    covered: torch.Tensor,
    empty: torch.Tensor,
) -> dict[str, float] | None:
    """{"object_psnr", "centre_px", "frames"} for one clip, or None when no object pixel is
    masked (nothing to place)."""
    hidden_object = pixel_mask & covered
    if not bool(hidden_object.any()):
        return None
    errors = centre_errors(filled, pixel_mask, covered, empty)
    return {
        "object_psnr": psnr_in_region(filled, original, hidden_object),
        "centre_px": sum(errors) / len(errors) if errors else math.nan,
        "frames": float(len(errors)),
    }
