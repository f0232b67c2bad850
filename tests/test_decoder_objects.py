"""Object-aware scores (decoder/objects.py) on physics-world clips with known answers."""

from __future__ import annotations

import math

import pytest
import torch

from decoder.batches import DecoderBatch
from decoder.evaluation import Method, baseline_methods, score_methods
from decoder.objects import (
    OBJECT_MIN_CHANGE,
    ObjectLayers,
    centre_errors,
    object_layers,
    object_scores,
)
from decoder.quality import psnr_in_region
from train.data.synthetic import PhysicsWorld
from train.tokens import TokenGeometry

SIZE, FRAMES = 32, 4
GEOMETRY = TokenGeometry(num_frames=FRAMES, img_size=SIZE, tubelet_size=2, patch_size=8)


def one_object_world(noise: float = 0.0) -> PhysicsWorld:
    return PhysicsWorld(
        num_clips=8, num_frames=FRAMES, img_size=SIZE, seed=3, max_objects=1, occluders=False,
        noise=noise,
    )  # fmt: skip


def whole_clip() -> torch.Tensor:
    return torch.ones(FRAMES, SIZE, SIZE, dtype=torch.bool)


def test_object_pixels_are_where_the_object_is_and_nothing_else_differs():
    world = one_object_world(noise=0.02)
    layers = object_layers(world, [0, 1])
    for i in range(2):
        clip = world[i]["clip"]
        change = (clip.short() - layers.empty_scene[i].short()).abs().amax(0)
        covered = layers.covered[i]
        assert covered.any(dim=(1, 2)).all()  # the object is drawn in every frame
        assert int(change[~covered].max()) < OBJECT_MIN_CHANGE  # only the anti-aliased rim
        # The covered pixels sit around the object's centre in every frame.
        centre = world.clip_params(i).objects[0].positions  # [T, 2] (x, y)
        for t in range(FRAMES):
            ys, xs = torch.nonzero(covered[t], as_tuple=True)
            found = torch.stack([xs.double().mean() + 0.5, ys.double().mean() + 0.5])
            assert torch.dist(found, centre[t].double()) < 1.5


def test_the_true_clip_scores_perfectly_and_the_empty_scene_pays_the_whole_object():
    world = one_object_world()
    layers = object_layers(world, [0])
    clip, empty, covered = world[0]["clip"], layers.empty_scene[0], layers.covered[0]
    mask = whole_clip()
    perfect = object_scores(clip, clip, mask, covered, empty)
    assert perfect["object_psnr"] == pytest.approx(100.0)
    assert perfect["centre_px"] < 0.5
    assert perfect["frames"] == FRAMES

    nothing = object_scores(empty, clip, mask, covered, empty)
    assert nothing["object_psnr"] == pytest.approx(psnr_in_region(empty, clip, covered))
    assert nothing["object_psnr"] < 20.0
    # No object drawn: the centre falls at the middle of the region (the frame's centre).
    expected = []
    for t in range(FRAMES):
        ys, xs = torch.nonzero(covered[t], as_tuple=True)
        truth = (xs.double().mean().item() + 0.5, ys.double().mean().item() + 0.5)
        expected.append(math.dist(truth, (SIZE / 2, SIZE / 2)))
    assert nothing["centre_px"] == pytest.approx(sum(expected) / FRAMES)


def test_an_object_drawn_d_pixels_away_is_d_pixels_off():
    world = one_object_world()
    layers = object_layers(world, [0])
    clip, empty, covered = world[0]["clip"], layers.empty_scene[0], layers.covered[0]
    # Draw the object 5 px to the right: the departure from the empty scene, moved.
    shifted = empty.clone()
    moved = covered.roll(5, dims=2)
    shifted[:, moved] = clip.roll(5, dims=3)[:, moved]
    errors = centre_errors(shifted, whole_clip(), covered, empty)
    assert errors == pytest.approx([5.0] * FRAMES, abs=0.3)


def test_nothing_to_place_when_the_mask_hides_no_object_pixel():
    world = one_object_world()
    layers = object_layers(world, [0])
    clip, covered = world[0]["clip"], layers.covered[0]
    mask = ~covered
    assert object_scores(clip, clip, mask, covered, layers.empty_scene[0]) is None


def test_score_methods_adds_the_object_scores_per_method():
    world = one_object_world()
    count = 4
    layers = object_layers(world, range(count))
    clips = torch.stack([world[i]["clip"] for i in range(count)])
    token_masks = torch.ones(count, *GEOMETRY.grid, dtype=torch.bool)
    token_masks[:, 0] = False  # the first time step visible, the rest hidden
    batch = DecoderBatch(clips, token_masks, torch.zeros(count, dtype=torch.long))
    methods = [Method("truth", lambda b: b.clips), *baseline_methods(GEOMETRY)[:1]]
    scores = score_methods({"future": batch}, methods, GEOMETRY, chunk=3, objects=layers)
    truth, flat = scores["future"]["truth"], scores["future"]["mean colour"]
    assert truth["object_psnr"] == pytest.approx(100.0)
    assert truth["centre_px"] < 0.5 < flat["centre_px"]
    assert flat["object_psnr"] < 20.0
    assert truth["object_clips"] == flat["object_clips"] == count
    assert truth["centre_frames"] == count * 2  # two hidden frames per clip
    # Chunks of 3 and 1 clips combine into the average over the four clips, each scored with
    # its own object layers.
    by_clip = []
    for i in range(count):
        one = DecoderBatch(clips[i : i + 1], token_masks[i : i + 1], batch.mask_index[:1])
        layer = ObjectLayers(layers.covered[i : i + 1], layers.empty_scene[i : i + 1])
        by_clip.append(score_methods({"f": one}, methods[1:], GEOMETRY, objects=layer)["f"])
    expected = sum(s["mean colour"]["centre_px"] for s in by_clip) / count  # 2 frames each
    assert flat["centre_px"] == pytest.approx(expected)
