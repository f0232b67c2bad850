"""Possible and impossible twins from the physics world: the data of the intuitive-physics test.

One scene of the physics world is rendered twice. The twins are identical before the violation
frame k; from k on, the impossible twin breaks one law for the main object (`objects[0]`):

* `permanence`  the object vanishes and never comes back: in open view, or while it is mostly
                behind the occluder (its possible twin comes out on the other side);
* `continuity`  it jumps to another place and moves on from there with the same velocity;
* `constancy`   it changes shape, or colour, and keeps its path;
* `inertia`     it stops, or turns by 90-150 degrees at the same speed, away from every wall.

The possible twin is the world's own clip, so both twins share the background, the noise, the
occluder and the distractors.

Each pair is completed into a *matched set* of four clips, as in IntPhys (Riochet et al. 2018,
the benchmark Garrido et al. 2025 score on): beside the possible twin A and the impossible twin
C, a second possible clip B shows lawfully what C shows after k (the object that was never
there, the jumped object on a path that leads to where it landed, the new shape all along, the
object that was always still), and a second impossible clip D runs B before k and A from k on
(the violation in reverse: an object appearing from nothing, jumping back, changing back,
starting to move by itself). Every frame of C and D is a frame of A or B at the same time, so a
model's preference for some frames over others (an empty scene is easier to predict than a
moving object) cancels in S(C) + S(D) - S(A) - S(B); only the violation is left.

Everything is a function of (world seed, pair number, law): the same arguments give the same
pairs on any machine. The pairs come from one world for every run (`PAIR_WORLD`), whatever the
run's own seed, so two trainings (two seeds, two recipes) are scored on the same pairs.

Each law's violation is placed where it can be seen (an object that jumps lands in open view,
one that changes colour is not hidden at that moment); scenes in which a law cannot be broken
visibly (an object that never leaves the wall's neighbourhood, say) are skipped, and the next
scene is tried.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass, replace

import torch

from train.data.base import draw_generator
from train.data.synthetic import NUM_SHAPES, PhysicsWorld, Scene, SceneObject, _mix, _simulate

LAWS: tuple[str, ...] = ("permanence", "continuity", "constancy", "inertia")
# The yardstick's world seed, the same for every run, and disjoint from the worlds a run with
# a small seed trains, probes and decodes on (those are its seed plus small offsets).
PAIR_WORLD = 4_000_037
# Scenes tried per pair before giving up (a law that can almost never be broken visibly).
MAX_SCENES_PER_PAIR = 64
# Jumps move the object by at least this many of its radii (it clearly leaves its old place).
MIN_JUMP_RADII = 3.0
TURN_DEGREES = (90.0, 150.0)
# An object vanishes "behind the occluder" at a frame where at least this share of it is hidden
# (the bar is narrower than the objects, so it never hides one whole).
BEHIND_SHARE = 0.4


class PairError(ValueError):
    """No pair could be made with these settings; the message says which and why."""


@dataclass(frozen=True)
class PhysicsPair:
    """Two uint8 clips [3, T, H, W], identical before `violation_frame`."""

    law: str
    variant: str  # how the law is broken, e.g. "vanish in view", "jump", "colour", "stop"
    violation_frame: int
    possible: torch.Tensor
    impossible: torch.Tensor
    scene_index: int
    occluder: bool  # the scene has an occluding bar
    distractors: int  # objects other than the main one
    possible_scene: Scene  # what was rendered: the world's own scene ...
    impossible_scene: Scene  # ... and the same with the main object's law broken
    # The rest of the matched set (module docstring): B, lawful, equal to the impossible twin
    # from k on; D, equal to B before k and to the possible twin from k on.
    lawful_after: torch.Tensor
    reversed_violation: torch.Tensor
    lawful_after_scene: Scene
    reversed_violation_scene: Scene


def violation_frames(num_frames: int, context_frames: int) -> tuple[int, int]:
    """The range of k (inclusive): late enough that a context of `context_frames` frames ends
    before it, early enough that `context_frames` frames remain after it."""
    low, high = context_frames + 1, num_frames - context_frames
    if low > high:
        raise PairError(
            f"clips of {num_frames} frames leave no room for a violation with "
            f"{context_frames} context frames before it and as many after: make the pair clips "
            f"at least {2 * context_frames + 1} frames long"
        )
    return low, high


class PairWorld:
    """Makes `PhysicsPair`s from a physics world of `num_frames`-frame clips."""

    def __init__(self, world: PhysicsWorld, context_frames: int):
        self.world = world
        self.context_frames = context_frames
        self.frame_range = violation_frames(world.num_frames, context_frames)

    def pairs(self, per_law: int, laws: tuple[str, ...] = LAWS) -> list[PhysicsPair]:
        """`per_law` pairs of each law, laws interleaved (pair j of every law, then j + 1)."""
        unknown = sorted(set(laws) - set(LAWS))
        if unknown:
            raise PairError(f"unknown law {unknown[0]!r}; the laws are {', '.join(LAWS)}")
        return [self.pair(j, law) for j in range(per_law) for law in laws]

    def pair(self, number: int, law: str) -> PhysicsPair:
        """Pair `number` of `law`: the first of its candidate scenes in which the law can be
        broken visibly. Candidate scenes of different (number, law) never overlap."""
        law_index = LAWS.index(law)
        first = (number * len(LAWS) + law_index) * MAX_SCENES_PER_PAIR
        # Alternate pairs break the law in its two ways, so both are equally represented; a
        # world where one way is (almost) impossible, e.g. tiny clips whose objects rarely pass
        # the occluder, gets the other way instead.
        for way in (number % 2, 1 - number % 2):
            for scene_index in range(first, first + MAX_SCENES_PER_PAIR):
                scene = self.world.clip_params(scene_index % self.world.num_clips)
                gen = draw_generator(_mix(self.world.seed + 1, scene_index))
                made = BREAKERS[law](self, scene, gen, way)
                if made is not None:
                    return self._pair(law, scene, *made)
        raise PairError(
            f"no scene among {MAX_SCENES_PER_PAIR} let {law} be broken visibly for pair {number}"
            f" ({self.world.num_frames} frames of {self.world.img_size} px)"
        )

    def _pair(self, law: str, scene: Scene, impossible: Scene, variant: str, k: int) -> PhysicsPair:
        after = self._frames_from(k)
        lawful = self._lawful_explanation(impossible.objects[0], k)
        pieces = () if lawful is None else (lawful,)
        lawful_after = _with_main(scene, *pieces)
        main = scene.objects[0]
        shown_before = () if lawful is None else (replace(lawful, visible=~after),)
        reversed_violation = _with_main(scene, replace(main, visible=after), *shown_before)
        return PhysicsPair(
            law=law,
            variant=variant,
            violation_frame=k,
            possible=self.world.render(scene),
            impossible=self.world.render(impossible),
            scene_index=scene.index,
            occluder=scene.occluder is not None,
            distractors=len(scene.objects) - 1,
            possible_scene=scene,
            impossible_scene=impossible,
            lawful_after=self.world.render(lawful_after),
            reversed_violation=self.world.render(reversed_violation),
            lawful_after_scene=lawful_after,
            reversed_violation_scene=reversed_violation,
        )

    def _lawful_explanation(self, broken: SceneObject, k: int) -> SceneObject | None:
        """The object the impossible twin shows from frame k on, on a lawful path through the
        whole clip: its state at k run backwards in time (elastic walls are time-reversible), or
        None when nothing is shown from k on (a vanished object)."""
        if broken.visible is not None and not bool(broken.visible[k:].any()):
            return None
        if self.world.gravity != 0.0:
            raise PairError("matched sets need a world without gravity (time-reversible paths)")
        size = float(self.world.img_size)
        x, y = broken.positions[k].tolist()
        vx, vy = broken.velocities[k].tolist()
        back, back_velocities = _simulate(
            x, y, -vx, -vy, broken.radius, size - broken.radius, 0.0, k + 1
        )
        # back[j] is the position j frames before k, reached with back_velocities[j] (already
        # turned by any bounce on the way); run forwards, that velocity reversed is the one
        # that leaves frame k - j towards k - j + 1.
        before = torch.tensor(back[k:0:-1], dtype=broken.positions.dtype)
        velocities = -torch.tensor(back_velocities[k:0:-1], dtype=broken.velocities.dtype)
        return replace(
            broken,
            positions=torch.cat([before, broken.positions[k:]]),
            velocities=torch.cat([velocities, broken.velocities[k:]]),
            visible=None,
        )

    # ---------------------------------------------------------------- helpers

    def _draw_k(self, gen: torch.Generator) -> int:
        low, high = self.frame_range
        return int(torch.randint(low, high + 1, (), generator=gen))

    def _relaunch(
        self, obj: SceneObject, frame: int, x: float, y: float, vx: float, vy: float
    ) -> SceneObject:
        """The object as it is up to `frame` - 1, then launched from (x, y) with (vx, vy) at
        `frame` and simulated by the world's own physics."""
        size = float(self.world.img_size)
        positions, velocities = _simulate(
            x,
            y,
            vx,
            vy,
            obj.radius,
            size - obj.radius,
            self.world.gravity * size,
            self.world.num_frames - frame,
        )
        return replace(
            obj,
            positions=torch.cat([obj.positions[:frame], torch.tensor(positions)]),
            velocities=torch.cat([obj.velocities[:frame], torch.tensor(velocities)]),
        )

    def _frames_from(self, frame: int) -> torch.Tensor:
        return torch.arange(self.world.num_frames) >= frame


def _box(obj: SceneObject, frame: int) -> tuple[float, float, float, float]:
    x, y = obj.positions[frame].tolist()
    return x - obj.radius, y - obj.radius, x + obj.radius, y + obj.radius


def _overlaps(box, occluder) -> bool:
    if occluder is None:
        return False
    x0, y0, x1, y1 = box
    return x0 < occluder[2] and occluder[0] < x1 and y0 < occluder[3] and occluder[1] < y1


def _hidden_share(box, occluder) -> float:
    """The share of the box's area behind the occluder."""
    if occluder is None:
        return 0.0
    x0, y0, x1, y1 = box
    width = max(0.0, min(x1, occluder[2]) - max(x0, occluder[0]))
    height = max(0.0, min(y1, occluder[3]) - max(y0, occluder[1]))
    return width * height / ((x1 - x0) * (y1 - y0))


def _in_view(scene: Scene, obj: SceneObject, frames) -> bool:
    """Clear of the occluder in each of `frames` that the clip has."""
    frames = [t for t in frames if t < len(obj.positions)]
    return not any(_overlaps(_box(obj, t), scene.occluder) for t in frames)


def _uniform(gen: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=gen, dtype=torch.float64))


def _with_main(scene: Scene, *main: SceneObject) -> Scene:
    """The scene with its main object replaced by `main` (drawn above the distractors; the first
    of them topmost)."""
    return replace(scene, objects=(*main, *scene.objects[1:]))


# ------------------------------------------------------------------------- the four laws
# Each takes the scene, a generator for its random choices and which of the law's two ways to
# break it (0 or 1); it returns (impossible scene, variant, violation frame), or None when this
# scene cannot show that violation.

Broken = tuple[Scene, str, int] | None


def _permanence(pairs: PairWorld, scene: Scene, gen: torch.Generator, way: int) -> Broken:
    main = scene.objects[0]
    low, high = pairs.frame_range
    # The bar is narrower than the objects: "behind" it means mostly hidden by it.
    behind = [
        t
        for t in range(low, high + 1)
        if _hidden_share(_box(main, t), scene.occluder) >= BEHIND_SHARE
    ]
    if way == 1:
        # The possible twin must come out again while the clip lasts, or the twins are equal.
        if not behind or not any(
            _in_view(scene, main, [t]) for t in range(behind[0] + 1, pairs.world.num_frames)
        ):
            return None
        gone = replace(main, visible=~pairs._frames_from(behind[0]))
        return _with_main(scene, gone), "vanish behind the occluder", behind[0]
    k = pairs._draw_k(gen)
    if not _in_view(scene, main, [k - 1, k]):
        return None
    gone = replace(main, visible=~pairs._frames_from(k))
    return _with_main(scene, gone), "vanish in view", k


def _continuity(pairs: PairWorld, scene: Scene, gen: torch.Generator, way: int) -> Broken:
    main = scene.objects[0]
    k = pairs._draw_k(gen)
    if not _in_view(scene, main, [k - 1, k]):
        return None
    size, r = float(pairs.world.img_size), main.radius
    x, y = main.positions[k].tolist()
    vx, vy = main.velocities[k].tolist()
    for _ in range(8):
        angle = _uniform(gen, 0.0, 2.0 * math.pi)
        distance = _uniform(gen, MIN_JUMP_RADII * r, 0.5 * size)
        nx, ny = x + distance * math.cos(angle), y + distance * math.sin(angle)
        if not (r <= nx <= size - r and r <= ny <= size - r):
            continue
        jumped = pairs._relaunch(main, k, nx, ny, vx, vy)
        if _in_view(scene, jumped, [k, k + 1]):
            return _with_main(scene, jumped), "jump", k
    return None


def _constancy(pairs: PairWorld, scene: Scene, gen: torch.Generator, way: int) -> Broken:
    main = scene.objects[0]
    k = pairs._draw_k(gen)
    if not _in_view(scene, main, [k, k + 1, k + 2]):
        return None
    after = pairs._frames_from(k)
    if way == 0:
        shift = 1 + int(torch.randint(0, NUM_SHAPES - 1, (), generator=gen))
        changed = replace(main, shape=(main.shape + shift) % NUM_SHAPES, visible=after)
        variant = "shape"
    else:
        hue, saturation, value = colorsys.rgb_to_hsv(*(c / 255.0 for c in main.colour))
        hue = (hue + _uniform(gen, 1.0 / 3.0, 2.0 / 3.0)) % 1.0
        rgb = colorsys.hsv_to_rgb(hue, max(saturation, 0.6), value)
        changed = replace(main, colour=tuple(round(c * 255) for c in rgb), visible=after)
        variant = "colour"
    before = replace(main, visible=~after)
    return _with_main(scene, changed, before), variant, k


def _inertia(pairs: PairWorld, scene: Scene, gen: torch.Generator, way: int) -> Broken:
    main = scene.objects[0]
    k = pairs._draw_k(gen)
    vx, vy = main.velocities[k - 1].tolist()
    speed = math.hypot(vx, vy)
    # Away from every wall, and no bounce of the possible twin around k: nothing lawful
    # changes the motion there.
    size, r = float(pairs.world.img_size), main.radius
    x, y = main.positions[k - 1].tolist()
    margin = r + 2.0 * speed
    if not (margin <= x <= size - margin and margin <= y <= size - margin):
        return None
    around = main.velocities[max(0, k - 2) : k + 3]
    if not torch.equal(around, main.velocities[k - 1].expand_as(around)):
        return None
    if not _in_view(scene, main, range(k - 1, k + 3)):
        return None
    if way == 0:
        return _with_main(scene, pairs._relaunch(main, k - 1, x, y, 0.0, 0.0)), "stop", k
    turn = math.radians(_uniform(gen, *TURN_DEGREES)) * (1 if _uniform(gen, 0, 1) < 0.5 else -1)
    cos, sin = math.cos(turn), math.sin(turn)
    turned = pairs._relaunch(main, k - 1, x, y, cos * vx - sin * vy, sin * vx + cos * vy)
    return _with_main(scene, turned), "turn", k


BREAKERS = {
    "permanence": _permanence,
    "continuity": _continuity,
    "constancy": _constancy,
    "inertia": _inertia,
}
