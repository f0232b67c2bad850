"""The procedural physics world: contract, determinism, labels, physics and rendering."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from train.data.base import Draw
from train.data.synthetic import (
    DIRECTIONS,
    LABEL_NAMES,
    MAX_OBJECTS,
    NUM_SHAPES,
    SHAPES,
    SPEEDS,
    PhysicsWorld,
    Scene,
)

LABELS = ("shape", "direction", "speed", "count")


@pytest.fixture(scope="module")
def world() -> PhysicsWorld:
    return PhysicsWorld(num_clips=5000, num_frames=8, img_size=64, seed=3)


@pytest.fixture(scope="module")
def scenes(world: PhysicsWorld) -> list[Scene]:
    return [world.clip_params(i) for i in range(2000)]


def _label_matrix(scenes: list[Scene]) -> torch.Tensor:
    return torch.tensor([[s.labels[name] for name in LABELS] for s in scenes])


def _direction_bin(dx: float, dy: float) -> int:
    """8 bins of 45 degrees, 0 = right, counter-clockwise on screen (image y points down)."""
    angle = math.degrees(math.atan2(-dy, dx))
    return round(angle / 45.0) % 8


def test_constants_name_every_class() -> None:
    assert len(SHAPES) == NUM_SHAPES >= 6
    assert LABEL_NAMES["shape"] == list(SHAPES)
    assert LABEL_NAMES["direction"][:3] == ["right", "up-right", "up"] == list(DIRECTIONS[:3])
    assert LABEL_NAMES["speed"] == list(SPEEDS) == ["slow", "medium", "fast"]
    assert LABEL_NAMES["count"][:2] == ["1 object", "2 objects"]
    assert PhysicsWorld(max_objects=3).label_names["count"] == [
        "1 object",
        "2 objects",
        "3 objects",
    ]


@pytest.mark.parametrize(("frames", "size"), [(8, 64), (1, 32), (3, 16), (2, 256)])
def test_sample_contract(frames: int, size: int) -> None:
    w = PhysicsWorld(num_clips=10, num_frames=frames, img_size=size, seed=0)
    assert len(w) == 10
    sample = w[4]
    clip = sample["clip"]
    assert clip.shape == (3, frames, size, size)
    assert clip.dtype == torch.uint8
    assert clip.float().std() > 5  # not a blank frame
    assert set(sample["labels"]) == set(LABELS)
    assert all(isinstance(v, int) for v in sample["labels"].values())
    with pytest.raises(IndexError):
        w[10]
    assert torch.equal(w[-1]["clip"], w[9]["clip"])


def test_deterministic_per_seed_and_index(world: PhysicsWorld) -> None:
    again = PhysicsWorld(num_clips=5000, num_frames=8, img_size=64, seed=3)
    other_seed = PhysicsWorld(num_clips=5000, num_frames=8, img_size=64, seed=4)
    for index in (0, 7, 4999):
        clip = world[index]["clip"]
        assert torch.equal(clip, world[index]["clip"])
        assert torch.equal(clip, again[index]["clip"])
        assert world[index]["labels"] == again[index]["labels"]
        assert not torch.equal(clip, other_seed[index]["clip"])
        # No augmentation: a Draw's seed changes nothing.
        for seed in (0, 12345, 2**62):
            assert torch.equal(clip, world[Draw(index, seed)]["clip"])
    assert not torch.equal(world[0]["clip"], world[1]["clip"])


def test_labels_balanced_and_independent(world: PhysicsWorld, scenes: list[Scene]) -> None:
    labels = _label_matrix(scenes[:600])
    for column, name in enumerate(LABELS):
        classes = len(world.label_names[name])
        freq = torch.bincount(labels[:, column], minlength=classes).float() / len(labels)
        assert freq.shape == (classes,)
        assert ((freq - 1 / classes).abs() < 0.4 / classes).all(), (name, freq)

    # Pairwise chi-square on 2000 clips: every pair of labels is independent.
    labels = _label_matrix(scenes)
    for a in range(len(LABELS)):
        for b in range(a + 1, len(LABELS)):
            ka, kb = int(labels[:, a].max()) + 1, int(labels[:, b].max()) + 1
            joint = torch.zeros(ka, kb)
            joint.index_put_((labels[:, a], labels[:, b]), torch.ones(len(labels)), accumulate=True)
            expected = joint.sum(1, keepdim=True) * joint.sum(0, keepdim=True) / len(labels)
            chi2 = float(((joint - expected) ** 2 / expected).sum())
            dof = (ka - 1) * (kb - 1)
            assert chi2 < dof + 5 * math.sqrt(2 * dof), (LABELS[a], LABELS[b], chi2)


def test_colour_does_not_give_the_shape_away(scenes: list[Scene]) -> None:
    """Nearest class-mean colour classifies the main object's shape at chance level."""
    colours = torch.tensor([s.objects[0].colour for s in scenes], dtype=torch.float32)
    shapes = torch.tensor([s.labels["shape"] for s in scenes])
    train, test = slice(0, 1000), slice(1000, 2000)
    centroids = torch.stack([colours[train][shapes[train] == k].mean(0) for k in range(NUM_SHAPES)])
    predicted = torch.cdist(colours[test], centroids).argmin(1)
    accuracy = float((predicted == shapes[test]).float().mean())
    assert accuracy < 1 / NUM_SHAPES + 0.08


def test_main_object_moves_in_its_labelled_direction_and_speed(scenes: list[Scene]) -> None:
    for scene in scenes[:500]:
        main = scene.objects[0]
        step = main.positions[1] - main.positions[0]
        # Even "slow" moves at least ~1.5 px/frame at 64 px, and the label bin matches.
        assert float(step.norm()) >= 1.5
        assert _direction_bin(float(step[0]), float(step[1])) == scene.labels["direction"]
        assert torch.allclose(step, main.velocities[0], atol=1e-4)
    speeds = torch.tensor([float(s.objects[0].velocities[0].norm()) for s in scenes])
    bins = torch.tensor([s.labels["speed"] for s in scenes])
    # Bins are ordered and do not overlap.
    for k in range(len(SPEEDS) - 1):
        assert speeds[bins == k].max() < speeds[bins == k + 1].min()


def test_rendered_motion_matches_the_direction_label() -> None:
    """End to end through the pixels: the main object's centroid moves as its label says."""
    w = PhysicsWorld(
        num_clips=100, num_frames=4, img_size=64, max_objects=1, occluders=False, noise=0.0
    )
    for index in range(40):
        scene = w.clip_params(index)
        clip = w.render(scene).float()
        empty = w.render(dataclasses.replace(scene, objects=())).float()
        weight = (clip - empty).abs().sum(0)  # [T, H, W], non-zero only on the object
        ys, xs = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
        mass = weight.sum((1, 2))
        cx, cy = (weight * xs).sum((1, 2)) / mass, (weight * ys).sum((1, 2)) / mass
        dx, dy = float(cx[1] - cx[0]), float(cy[1] - cy[0])
        assert math.hypot(dx, dy) > 1.0
        assert _direction_bin(dx, dy) == scene.labels["direction"], (index, dx, dy)
        assert float((clip[:, 0] - clip[:, -1]).abs().amax()) > 50  # visible motion


def test_walls_keep_objects_inside() -> None:
    w = PhysicsWorld(num_clips=300, num_frames=48, img_size=32, gravity=0.01, max_objects=4)
    bounced = 0
    for index in range(300):
        for obj in w.clip_params(index).objects:
            assert (obj.positions >= obj.radius - 1e-4).all()
            assert (obj.positions <= 32 - obj.radius + 1e-4).all()
            signs = torch.sign(obj.velocities[:, 0])
            bounced += int((signs[1:] != signs[:-1]).any())
    assert bounced > 100  # the walls were actually hit


def test_gravity_accelerates_downwards() -> None:
    gravity, size = 0.004, 64
    w = PhysicsWorld(num_clips=50, num_frames=12, img_size=size, gravity=gravity)
    flat = PhysicsWorld(num_clips=50, num_frames=12, img_size=size)
    checked = 0
    for index in range(50):
        vy = w.clip_params(index).objects[0].velocities[:, 1]
        change = vy[1:] - vy[:-1]
        no_bounce = torch.sign(vy[1:]) == torch.sign(vy[:-1])
        checked += int(no_bounce.sum())
        assert torch.allclose(change[no_bounce], torch.tensor(gravity * size), atol=1e-4)
        flat_vy = flat.clip_params(index).objects[0].velocities[:, 1]
        assert (flat_vy.abs() == flat_vy[0].abs()).all()  # no gravity: |vy| is constant
    assert checked > 300


def test_occluders_hide_objects() -> None:
    w = PhysicsWorld(num_clips=400, num_frames=16, img_size=64, seed=1)
    boxes = [w.clip_params(i).occluder for i in range(400)]
    assert 0.4 < sum(b is not None for b in boxes) / len(boxes) < 0.6
    off = PhysicsWorld(num_clips=100, occluders=False)
    assert all(off.clip_params(i).occluder is None for i in range(100))

    hidden = 0
    for index, box in enumerate(boxes):
        if box is None:
            continue
        scene = w.clip_params(index)
        x0, y0, x1, y1 = box
        main = scene.objects[0]
        # The bar never covers the main object's starting position...
        cx, cy = main.positions[0].tolist()
        assert not (x0 <= cx < x1 and y0 <= cy < y1)
        inside = (
            (main.positions[:, 0] >= x0)
            & (main.positions[:, 0] < x1)
            & (main.positions[:, 1] >= y0)
            & (main.positions[:, 1] < y1)
        )
        if not inside.any():
            continue
        # ...but when the object passes behind it, the box shows only the occluder's colour.
        hidden += 1
        clip = w[index]["clip"]
        colour = torch.tensor(scene.occluder_colour, dtype=torch.uint8).view(3, 1, 1, 1)
        assert (clip[:, :, y0:y1, x0:x1] == colour).all()
    assert hidden >= 10


def test_noise_has_the_requested_std() -> None:
    clean = PhysicsWorld(num_clips=5, max_objects=1, occluders=False, noise=0.0)
    noisy = PhysicsWorld(num_clips=5, max_objects=1, occluders=False, noise=0.05)
    diff = noisy[2]["clip"].float() - clean[2]["clip"].float()
    background = diff != 0  # objects are drawn over the noise, so exclude exact zeros
    assert 0.9 * 0.05 * 255 < float(diff[background].std()) < 1.1 * 0.05 * 255
    assert not torch.equal(noisy[2]["clip"][:, 0], noisy[2]["clip"][:, 1])  # per-frame noise


def test_direction_is_learnable_from_frame_differences() -> None:
    """Logistic regression on the motion of the frame-difference centroid beats chance by far."""
    w = PhysicsWorld(num_clips=500, num_frames=6, img_size=32, max_objects=1, seed=7)
    ys, xs = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    features, targets = [], []
    for index in range(len(w)):
        sample = w[index]
        frames = sample["clip"].float()
        change = (frames[:, 1:] - frames[:, :-1]).abs().sum(0)  # [T-1, H, W]
        change = change * (change > 40)  # drop the sensor noise
        mass = change.sum((1, 2)) + 1e-6
        cx, cy = (change * xs).sum((1, 2)) / mass, (change * ys).sum((1, 2)) / mass
        motion = torch.stack([cx[2] - cx[0], cy[2] - cy[0]])
        features.append(torch.cat([motion / (motion.norm() + 1e-6), motion / 8]))
        targets.append(sample["labels"]["direction"])
    x, y = torch.stack(features), torch.tensor(targets)
    linear = torch.nn.Linear(4, 8)
    torch.nn.init.zeros_(linear.weight)  # no global RNG: the test is deterministic
    torch.nn.init.zeros_(linear.bias)
    optimiser = torch.optim.Adam(linear.parameters(), lr=0.1)
    for _ in range(300):
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(linear(x[:350]), y[:350]).backward()
        optimiser.step()
    accuracy = float((linear(x[350:]).argmax(1) == y[350:]).float().mean())
    assert accuracy > 0.7  # chance is 0.125


@settings(max_examples=25, deadline=None)
@given(
    size=st.integers(16, 256),
    frames=st.integers(1, 4),
    seed=st.integers(0, 2**40),
    max_objects=st.integers(1, MAX_OBJECTS),
    gravity=st.sampled_from([0.0, 0.01]),
)
def test_any_geometry_renders_inside_the_frame(
    size: int, frames: int, seed: int, max_objects: int, gravity: float
) -> None:
    w = PhysicsWorld(
        num_clips=3,
        num_frames=frames,
        img_size=size,
        seed=seed,
        max_objects=max_objects,
        gravity=gravity,
    )
    for index in range(3):
        scene = w.clip_params(index)
        clip = w.render(scene)
        assert clip.shape == (3, frames, size, size) and clip.dtype == torch.uint8
        assert 1 <= len(scene.objects) <= max_objects
        for obj in scene.objects:
            assert (obj.positions >= obj.radius - 1e-3).all()
            assert (obj.positions <= size - obj.radius + 1e-3).all()
