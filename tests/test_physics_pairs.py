"""Possible / impossible twins: identical before k, the law really broken from k on."""

from __future__ import annotations

import dataclasses
import math
from collections import Counter

import pytest
import torch

from train.data.synthetic import PhysicsWorld, _reflect
from train.data.violations import LAWS, PairError, PairWorld, violation_frames


@pytest.fixture(scope="module")
def pairs():
    world = PhysicsWorld(num_clips=10**6, num_frames=16, img_size=64, seed=123, max_objects=3)
    return PairWorld(world, context_frames=4).pairs(12)


def test_twins_are_identical_before_the_violation_and_differ_after(pairs):
    for p in pairs:
        k = p.violation_frame
        assert 5 <= k <= 12, (p.law, k)
        assert torch.equal(p.possible[:, :k], p.impossible[:, :k]), (p.law, p.variant)
        assert not torch.equal(p.possible[:, k:], p.impossible[:, k:]), (p.law, p.variant)
        # The possible twin is the world's own clip, untouched.
        world = PhysicsWorld(num_clips=10**6, num_frames=16, img_size=64, seed=123, max_objects=3)
        assert torch.equal(p.possible, world[p.scene_index]["clip"])


def test_matched_sets_show_every_frame_of_the_impossible_clips_in_a_possible_one(pairs):
    # A = possible, C = impossible, B = lawful from k on like C, D = B then A: every frame of C
    # and D is the frame of A or B at the same time, so frame-level preferences cancel.
    for p in pairs:
        k, label = p.violation_frame, (p.law, p.variant)
        a, b, c, d = p.possible, p.lawful_after, p.impossible, p.reversed_violation
        assert torch.equal(c[:, k:], b[:, k:]), label
        assert torch.equal(d[:, :k], b[:, :k]), label
        assert torch.equal(d[:, k:], a[:, k:]), label
        # B is a different clip from A before k: the set is not two copies of the pair.
        assert not torch.equal(b[:, :k], a[:, :k]), label


def test_the_lawful_clip_of_a_matched_set_obeys_the_worlds_physics(pairs):
    # Speed per axis is kept, and every step is the world's move-then-bounce; only the walls turn
    # the object. (A vanished object's lawful clip has no main object: it was never there.)
    for p in pairs:
        objects = p.lawful_after_scene.objects
        if p.law == "permanence":
            assert len(objects) == len(p.possible_scene.objects) - 1
            continue
        main, label = objects[0], (p.law, p.variant)
        assert main.visible is None, label
        low, high = main.radius, 64 - main.radius
        speeds = main.velocities.abs()
        assert torch.allclose(speeds, speeds[:1].expand_as(speeds), atol=1e-4), label
        for t in range(len(main.positions) - 1):
            (x, y), (vx, vy) = main.positions[t].tolist(), main.velocities[t].tolist()
            moved = (_reflect(x + vx, vx, low, high)[0], _reflect(y + vy, vy, low, high)[0])
            assert torch.allclose(main.positions[t + 1], torch.tensor(moved), atol=1e-3), label


def test_every_law_and_both_ways_are_represented(pairs):
    counts = Counter((p.law, p.variant) for p in pairs)
    assert {law for law, _ in counts} == set(LAWS)
    assert (
        counts["permanence", "vanish in view"] == counts["permanence", "vanish behind the occluder"]
    )
    assert counts["constancy", "shape"] == counts["constancy", "colour"] == 6
    assert counts["inertia", "stop"] == counts["inertia", "turn"] == 6
    assert any(p.occluder for p in pairs) and any(not p.occluder for p in pairs)
    assert {p.distractors for p in pairs} >= {0, 1, 2}


def _main(scene):
    return scene.objects[0]


def test_permanence_removes_the_object_for_good(pairs):
    for p in (p for p in pairs if p.law == "permanence"):
        world = PhysicsWorld(num_clips=10**6, num_frames=16, img_size=64, seed=123, max_objects=3)
        without = world.render(
            dataclasses.replace(p.possible_scene, objects=p.possible_scene.objects[1:])
        )
        k = p.violation_frame
        assert torch.equal(p.impossible[:, k:], without[:, k:])
        # ... while in the possible twin it is still (or again) there.
        assert not torch.equal(p.possible[:, k:], without[:, k:])


def test_continuity_jumps_at_least_three_radii(pairs):
    for p in (p for p in pairs if p.law == "continuity"):
        k = p.violation_frame
        before, after = _main(p.possible_scene), _main(p.impossible_scene)
        jump = (after.positions[k] - before.positions[k]).norm().item()
        assert jump >= 3 * before.radius - 1e-4
        assert torch.equal(after.positions[:k], before.positions[:k])
        assert torch.equal(after.velocities[k], before.velocities[k])  # moves on as it did


def test_constancy_changes_shape_or_colour_and_keeps_the_path(pairs):
    for p in (p for p in pairs if p.law == "constancy"):
        k = p.violation_frame
        original = _main(p.possible_scene)
        changed, kept = p.impossible_scene.objects[:2]
        assert torch.equal(changed.positions, original.positions)
        assert changed.visible[k:].all() and not changed.visible[:k].any()
        assert kept.visible[:k].all() and not kept.visible[k:].any()
        if p.variant == "shape":
            assert changed.shape != original.shape and changed.colour == original.colour
        else:
            assert changed.colour != original.colour and changed.shape == original.shape


def test_inertia_changes_the_motion_away_from_walls(pairs):
    for p in (p for p in pairs if p.law == "inertia"):
        k = p.violation_frame
        original, broken = _main(p.possible_scene), _main(p.impossible_scene)
        assert torch.equal(broken.positions[:k], original.positions[:k])
        v_before, v_after = original.velocities[k - 1], broken.velocities[k - 1]
        if p.variant == "stop":
            assert v_after.norm() == 0 and torch.equal(broken.positions[k], broken.positions[k - 1])
        else:
            cos = torch.dot(v_before, v_after) / (v_before.norm() * v_after.norm())
            angle = math.degrees(math.acos(float(cos.clamp(-1, 1))))
            assert 89.9 <= angle <= 150.1
            assert v_after.norm().item() == pytest.approx(v_before.norm().item(), rel=1e-5)
        # The possible twin does not bounce there: the change has no lawful cause.
        assert torch.equal(original.velocities[k - 2], original.velocities[k])


def test_pairs_are_deterministic():
    def make():
        world = PhysicsWorld(num_clips=10**6, num_frames=12, img_size=32, seed=5, max_objects=2)
        return PairWorld(world, context_frames=2).pairs(3)

    first, second = make(), make()
    for a, b in zip(first, second):
        assert (a.law, a.variant, a.violation_frame, a.scene_index) == (
            b.law,
            b.variant,
            b.violation_frame,
            b.scene_index,
        )
        assert torch.equal(a.impossible, b.impossible)


def test_bad_settings_are_refused_with_a_reason():
    with pytest.raises(PairError, match="at least 9 frames"):
        violation_frames(8, 4)
    world = PhysicsWorld(num_clips=100, num_frames=16, img_size=32, seed=0)
    with pytest.raises(PairError, match="unknown law 'gravity'"):
        PairWorld(world, 4).pairs(1, laws=("gravity",))
