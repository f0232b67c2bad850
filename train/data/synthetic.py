"""The procedural physics world: the teaching dataset, generated on the fly, no files.

Each clip is a small 2-D scene: a smooth low-contrast background with per-pixel noise, one to
`max_objects` moving shapes that bounce elastically off the walls (optionally under gravity), and
in about half the clips a static bar that the objects pass behind. Object 0 is the *main* object;
the labels describe it:

* `shape`     which of `SHAPES` it is,
* `direction` its initial velocity in 8 bins of 45 degrees, bin 0 centred on "right", counting
              counter-clockwise as seen on screen (bin 2 = "up", i.e. negative image y),
* `speed`     slow / medium / fast (px per frame, scaled with `img_size`),
* `count`     the number of objects minus one.

Every label is drawn uniformly and independently of the others and of the nuisances (colour,
size, position, background), so a probe can only recover a label from what it names.

A clip depends only on (dataset seed, index): `clip_params` draws a `Scene` from a generator
seeded by that pair, and `render` turns the scene into pixels, so the two can never disagree.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass

import torch

from train.data.base import Draw, Sample, draw_generator

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond", "cross", "ring")
NUM_SHAPES = len(SHAPES)
DIRECTIONS: tuple[str, ...] = (
    "right",
    "up-right",
    "up",
    "up-left",
    "left",
    "down-left",
    "down",
    "down-right",
)
SPEEDS: tuple[str, ...] = ("slow", "medium", "fast")
MAX_OBJECTS = 8
LABEL_NAMES: dict[str, list[str]] = {
    "shape": list(SHAPES),
    "direction": list(DIRECTIONS),
    "speed": list(SPEEDS),
    "count": ["1 object"] + [f"{n} objects" for n in range(2, MAX_OBJECTS + 1)],
}

# Speeds in px/frame as a fraction of img_size. The gaps between bins keep the label unambiguous;
# at 64 px the bins are 1.5-2.3, 2.9-3.7 and 4.4-5.2 px/frame, so even "slow" clearly moves.
SPEED_RANGES: tuple[tuple[float, float], ...] = ((0.024, 0.036), (0.045, 0.058), (0.068, 0.082))
# Object half-extent (the distance from its centre to its bounding box) as a fraction of img_size.
RADIUS_RANGE = (0.085, 0.135)
MIN_RADIUS_PX = 2.0
# The main object's angle stays within this fraction of half a bin (22.5 degrees) of the bin
# centre, so a one-step displacement always falls inside its own bin.
DIRECTION_JITTER = 0.8
# The main object starts at least this far (fraction of img_size) from every wall: it is not
# clipped by a bounce in its first frames, where its direction label is defined.
START_MARGIN = 0.15
OCCLUDER_THICKNESS = (0.08, 0.14)
OCCLUDER_MAX_GAP = 0.25
# Uniform numbers drawn per clip in one generator call: enough for MAX_OBJECTS objects.
_DRAWS_PER_CLIP = 40 + 10 * MAX_OBJECTS
_SQRT3_2 = math.sqrt(3.0) / 2.0


@dataclass(frozen=True)
class SceneObject:
    """One moving shape. Coordinates are pixels, x right, y down, pixel centres at i + 0.5."""

    shape: int  # index into SHAPES
    colour: tuple[int, int, int]  # RGB, 0..255
    radius: float  # half-extent of the bounding box, px; walls bounce the centre at this distance
    positions: torch.Tensor  # float32 [T, 2]: (x, y) of the centre at each frame
    # float32 [T, 2]: positions[t + 1] = positions[t] + velocities[t] unless a wall is hit
    # in between, which reflects both.
    velocities: torch.Tensor
    # bool [T]: the frames it is drawn in; None: every frame. The physics yardstick
    # (train/data/violations.py) uses it to make objects vanish or change mid-clip.
    visible: torch.Tensor | None = None


@dataclass(frozen=True)
class Scene:
    """Everything `render` needs for one clip; drawn by `PhysicsWorld.clip_params`."""

    index: int
    labels: dict[str, int]
    background: tuple[float, float, float]  # RGB 0..255 at the image centre
    gradient: tuple[float, float, float]  # RGB change across the image along gradient_angle
    gradient_angle: float  # radians
    objects: tuple[SceneObject, ...]  # objects[0] is the main one, drawn above the others
    occluder: tuple[int, int, int, int] | None  # (x0, y0, x1, y1) half-open px box, or none
    occluder_colour: tuple[int, int, int]
    noise_offset: int  # where this clip's noise starts in the world's noise bank


class _Uniforms:
    """A pre-drawn stream of U(0, 1) numbers: one generator call per clip instead of dozens."""

    def __init__(self, generator: torch.Generator, count: int) -> None:
        draws = torch.rand(count, generator=generator, dtype=torch.float64)
        self._values: list[float] = draws.tolist()
        self._next = 0

    def __call__(self, low: float = 0.0, high: float = 1.0) -> float:
        value = self._values[self._next]
        self._next += 1
        return low + (high - low) * value

    def choice(self, n: int) -> int:
        return min(int(self() * n), n - 1)


def _mix(seed: int, index: int) -> int:
    """A splitmix64 hash of (seed, index): nearby seeds and indices give unrelated generators."""
    z = (seed * 0x9E3779B97F4A7C15 + index + 1) & 0xFFFF_FFFF_FFFF_FFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFF_FFFF_FFFF_FFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFF_FFFF_FFFF_FFFF
    return z ^ (z >> 31)


def _reflect(p: float, v: float, low: float, high: float) -> tuple[float, float]:
    """Fold a position back into [low, high] as elastic walls would, flipping v per bounce."""
    span = high - low
    q = (p - low) % (2.0 * span)
    if q > span:
        return low + 2.0 * span - q, -v
    return low + q, v


def _simulate(
    x: float, y: float, vx: float, vy: float, low: float, high: float, gravity: float, frames: int
) -> tuple[list[list[float]], list[list[float]]]:
    """Explicit Euler in continuous coordinates: move, then accelerate, then bounce.

    Moving before accelerating makes the first displacement exactly the initial velocity, which
    is what the direction and speed labels describe.
    """
    positions, velocities = [], []
    for _ in range(frames):
        positions.append([x, y])
        velocities.append([vx, vy])
        x, y, vy = x + vx, y + vy, vy + gravity
        x, vx = _reflect(x, vx, low, high)
        y, vy = _reflect(y, vy, low, high)
    return positions, velocities


def _signed_distance(shape: int, dx: torch.Tensor, dy: torch.Tensor, r: float) -> torch.Tensor:
    """Approximate signed distance (px, negative inside) of a shape centred at the origin.

    `dx` [T, 1, W] and `dy` [T, H, 1] broadcast to [T, H, W]. Every shape stays inside the
    box [-r, r]^2 and spans most of it, so walls and window sizes treat all shapes alike.
    """
    name = SHAPES[shape]
    if name == "circle":
        return (dx.square() + dy.square()).sqrt_() - r
    if name == "square":
        return torch.maximum(dx.abs(), dy.abs()) - 0.8 * r
    if name == "diamond":
        return (dx.abs() + dy.abs() - r) * (1.0 / math.sqrt(2.0))
    if name == "triangle":
        # Equilateral, apex up, circumradius R wide enough to span [-r, r] in x; shifted so its
        # bounding box (R * 3/2 tall) is centred on the object's centre.
        big_r = r / _SQRT3_2
        y = dy - big_r / 4.0
        return torch.maximum(dx.abs() * _SQRT3_2 - y * 0.5, y) - big_r / 2.0
    if name == "cross":
        ax, ay, arm = dx.abs(), dy.abs(), 0.32 * r
        return torch.minimum(torch.maximum(ax - r, ay - arm), torch.maximum(ax - arm, ay - r))
    if name == "ring":
        return ((dx.square() + dy.square()).sqrt_() - 0.66 * r).abs_() - 0.34 * r
    raise ValueError(f"unknown shape {shape}")


def _object_colour(u: _Uniforms, dark_background: bool) -> tuple[int, int, int]:
    """A random hue, bright on dark backgrounds and dark on light ones, so it always stands out.

    Drawn independently of the shape: colour must not give the shape away.
    """
    hue, saturation = u(), u(0.35, 0.9)
    value = u(0.8, 1.0) if dark_background else u(0.2, 0.5)
    rgb = colorsys.hsv_to_rgb(hue, saturation, value)
    return (round(rgb[0] * 255), round(rgb[1] * 255), round(rgb[2] * 255))


class PhysicsWorld:
    """Map-style dataset of procedurally rendered clips: uint8 [3, T, H, W] plus four labels.

    There is no augmentation: `world[Draw(i, s)]` equals `world[i]` for every `s`. A flip or a
    rotation would silently change what the direction label means, and every index is already
    a fresh scene. `label_names` is `LABEL_NAMES` with `count` cut to `max_objects` classes.
    """

    def __init__(
        self,
        num_clips: int = 100_000,
        num_frames: int = 16,
        img_size: int = 64,
        seed: int = 0,
        max_objects: int = 3,
        gravity: float = 0.0,
        occluders: bool = True,
        noise: float = 0.02,
    ) -> None:
        if num_clips < 1 or num_frames < 1:
            raise ValueError(
                f"need num_clips >= 1 and num_frames >= 1, got {num_clips}, {num_frames}"
            )
        if img_size < 16:
            raise ValueError(f"img_size must be at least 16, got {img_size}")
        if not 1 <= max_objects <= MAX_OBJECTS:
            raise ValueError(f"max_objects must be in 1..{MAX_OBJECTS}, got {max_objects}")
        if noise < 0:
            raise ValueError(f"noise is a standard deviation, got {noise}")
        self.num_clips = num_clips
        self.num_frames = num_frames
        self.img_size = img_size
        self.seed = seed
        self.max_objects = max_objects
        self.gravity = gravity
        self.occluders = occluders
        self.noise = noise
        self.label_names: dict[str, list[str]] = {
            **LABEL_NAMES,
            "count": LABEL_NAMES["count"][:max_objects],
        }
        # Pixel-centre coordinates in [-0.5, 0.5] for the background gradient, and the start
        # of each frame in a flattened [T * H * W] plane for scattering object windows.
        centres = (torch.arange(img_size, dtype=torch.float32) + 0.5) / img_size - 0.5
        self._grid_x = centres.view(1, img_size)
        self._grid_y = centres.view(img_size, 1)
        self._frame_starts = torch.arange(num_frames).view(-1, 1, 1) * img_size * img_size
        self._steps = torch.arange(img_size, dtype=torch.float32)
        self._noise_bank: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.num_clips

    def __getitem__(self, key: int | Draw) -> Sample:
        # A Draw's seed is ignored on purpose (see the class docstring): content is per index.
        index = key.index if isinstance(key, Draw) else int(key)
        scene = self.clip_params(index)
        return {"clip": self.render(scene), "labels": dict(scene.labels)}

    # ---------------------------------------------------------------- scene drawing

    def clip_params(self, index: int) -> Scene:
        """The scene of clip `index`: every random choice of the clip, nothing rendered yet."""
        if index < 0:
            index += self.num_clips
        if not 0 <= index < self.num_clips:
            raise IndexError(f"index {index} out of range for {self.num_clips} clips")
        u = _Uniforms(draw_generator(_mix(self.seed, index)), _DRAWS_PER_CLIP)
        size = float(self.img_size)

        # Labels first, each from its own uniform: balanced and mutually independent.
        labels = {
            "shape": u.choice(NUM_SHAPES),
            "direction": u.choice(len(DIRECTIONS)),
            "speed": u.choice(len(SPEEDS)),
            "count": u.choice(self.max_objects),
        }

        dark = u() < 0.5
        lightness = u(0.08, 0.28) if dark else u(0.7, 0.9)
        red, green, blue = (255.0 * (lightness + u(-0.05, 0.05)) for _ in range(3))
        d_red, d_green, d_blue = (255.0 * u(-0.15, 0.15) for _ in range(3))
        gradient_angle = u(0.0, 2.0 * math.pi)

        # The main object: direction within its bin, speed within its bin, away from the walls.
        half_bin = math.pi / 8.0
        angle = labels["direction"] * 2.0 * half_bin + u(-1.0, 1.0) * DIRECTION_JITTER * half_bin
        speed = size * u(*SPEED_RANGES[labels["speed"]])
        radius = max(MIN_RADIUS_PX, size * u(*RADIUS_RANGE))
        margin = radius + START_MARGIN * size
        main_x, main_y = u(margin, size - margin), u(margin, size - margin)
        colour = _object_colour(u, dark)
        objects = [
            self._moving_object(labels["shape"], colour, radius, main_x, main_y, angle, speed)
        ]
        # The bar is drawn whether or not it is used, so the switch changes nothing else.
        has_occluder = u() < 0.5 and self.occluders
        vertical = u() < 0.5
        occluder = self._occluder_box(u, main_x if vertical else main_y, radius, vertical)
        grey = round(u(0.42, 0.58) * 255.0)
        noise_offset = u.choice(self.img_size * self.img_size)

        # Distractors last: their number of draws varies with the count label.
        # Anything goes for them, including the main object's shape or colour.
        for _ in range(labels["count"]):
            shape = u.choice(NUM_SHAPES)
            r = max(MIN_RADIUS_PX, size * u(*RADIUS_RANGE))
            x, y = u(r, size - r), u(r, size - r)
            theta = u(0.0, 2.0 * math.pi)
            s = size * u(SPEED_RANGES[0][0], SPEED_RANGES[-1][1])
            colour = _object_colour(u, dark)
            objects.append(self._moving_object(shape, colour, r, x, y, theta, s))

        return Scene(
            index=index,
            labels=labels,
            background=(red, green, blue),
            gradient=(d_red, d_green, d_blue),
            gradient_angle=gradient_angle,
            objects=tuple(objects),
            occluder=occluder if has_occluder else None,
            occluder_colour=(grey, grey, grey),
            noise_offset=noise_offset,
        )

    def _moving_object(
        self,
        shape: int,
        colour: tuple[int, int, int],
        radius: float,
        x: float,
        y: float,
        angle: float,
        speed: float,
    ) -> SceneObject:
        """Simulate one object launched at `angle` (radians, counter-clockwise on screen)."""
        # Image y points down, so moving "up" on screen (positive angle) is negative vy.
        vx, vy = speed * math.cos(angle), -speed * math.sin(angle)
        size = float(self.img_size)
        positions, velocities = _simulate(
            x, y, vx, vy, radius, size - radius, self.gravity * size, self.num_frames
        )
        return SceneObject(
            shape=shape,
            colour=colour,
            radius=radius,
            positions=torch.tensor(positions, dtype=torch.float32),
            velocities=torch.tensor(velocities, dtype=torch.float32),
        )

    def _occluder_box(
        self, u: _Uniforms, main_start: float, radius: float, vertical: bool
    ) -> tuple[int, int, int, int]:
        """A full-span bar beside the main object's start, never covering it at frame 0.

        Starting uncovered keeps the direction visible from the first frames on; the bar then
        sits on the main object's path in about half the clips.
        """
        size = self.img_size
        thickness = max(1, round(size * u(*OCCLUDER_THICKNESS)))
        # Room for the bar on each side of the main object's extent; the gap to the object is
        # capped so that the bar is usually in the object's way rather than against a wall.
        room_before = math.floor(main_start - radius) - thickness
        room_after = size - math.ceil(main_start + radius) - thickness
        before, gap = u() < 0.5, u() * OCCLUDER_MAX_GAP * size
        if room_before < 0 or (room_after >= 0 and not before):
            low = math.ceil(main_start + radius) + round(min(gap, room_after))
        else:
            low = math.floor(main_start - radius) - thickness - round(min(gap, room_before))
        if vertical:
            return (low, 0, low + thickness, size)
        return (0, low, size, low + thickness)

    # ---------------------------------------------------------------- rendering

    def _noise(self) -> torch.Tensor:
        """Flat Gaussian noise, one frame longer than a clip, built once per process.

        A clip reads a contiguous slice at its own offset (a view, no copy): redrawing millions
        of normals per clip would dominate the render time.
        """
        if self._noise_bank is None:
            plane = self.img_size * self.img_size
            length = (3 * self.num_frames + 1) * plane
            generator = draw_generator(_mix(self.seed, -1))
            self._noise_bank = torch.randn(length, generator=generator) * (255.0 * self.noise)
        return self._noise_bank

    def render(self, scene: Scene) -> torch.Tensor:
        """Pixels of `scene`: uint8 [3, T, H, W].

        Work happens in float 0..255 with +0.5 added to every colour, so the final truncating
        cast to uint8 rounds to nearest.
        """
        frames, size = self.num_frames, self.img_size
        cos, sin = math.cos(scene.gradient_angle), math.sin(scene.gradient_angle)
        ramp = self._grid_x * cos + self._grid_y * sin  # [H, W], about -0.7..0.7
        base = torch.tensor(scene.background).view(3, 1, 1) + 0.5
        slope = torch.tensor(scene.gradient).view(3, 1, 1)
        background = (base + slope * ramp).unsqueeze(1)  # [3, 1, H, W]
        if self.noise > 0:
            count = 3 * frames * size * size
            noise = self._noise()[scene.noise_offset : scene.noise_offset + count]
            canvas = background + noise.view(3, frames, size, size)
        else:
            canvas = background.expand(3, frames, size, size).contiguous()

        # Distractors first, the main object last so it is on top.
        for obj in reversed(scene.objects):
            self._draw_object(canvas, obj)
        if scene.occluder is not None:
            x0, y0, x1, y1 = scene.occluder
            colour = torch.tensor(scene.occluder_colour, dtype=torch.float32) + 0.5
            canvas[:, :, y0:y1, x0:x1] = colour.view(3, 1, 1, 1)
        return canvas.clamp_(0.0, 255.0).to(torch.uint8)

    def _draw_object(self, canvas: torch.Tensor, obj: SceneObject) -> None:
        """Alpha-blend one object into `canvas` [3, T, H, W] in place.

        Only a square window around the object is touched in each frame (one gather, one blend,
        one scatter for all frames at once), which is what keeps 224 px clips cheap. Coverage is
        clamp(0.5 - signed distance): a one-pixel ramp across the edge, so sub-pixel motion
        changes the edge pixels smoothly.
        """
        size = self.img_size
        window = min(size, math.ceil(2.0 * obj.radius + 3.0))
        centre = obj.positions.unsqueeze(2)  # [T, 2, 1]: (x, y) per frame
        low = (centre - (obj.radius + 1.0)).floor_().clamp_(0, size - window)
        pixels = low + self._steps[:window]  # [T, 2, window]: the window's columns and rows
        offsets = pixels - (centre - 0.5)  # from the object's centre to each pixel centre
        dx, dy = offsets[:, 0].unsqueeze(1), offsets[:, 1].unsqueeze(2)
        alpha = (0.5 - _signed_distance(obj.shape, dx, dy, obj.radius)).clamp_(0.0, 1.0)
        if obj.visible is not None:
            alpha.mul_(obj.visible.to(alpha.dtype).view(-1, 1, 1))

        cols, rows = pixels.long().unbind(1)  # [T, window] each
        flat_index = (self._frame_starts + rows.unsqueeze(2) * size + cols.unsqueeze(1)).view(-1)
        flat = canvas.view(3, -1)
        patch = flat.index_select(1, flat_index)
        colour = torch.tensor(obj.colour, dtype=torch.float32).view(3, 1) + 0.5
        patch.lerp_(colour, alpha.view(1, -1))
        flat.index_copy_(1, flat_index, patch)
