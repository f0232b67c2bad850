"""2-D maps of clip features (PCA at once, UMAP when ready) and nearest neighbours.

UMAP's first fit in a fresh process compiles numba code (about half a minute on two cores);
`start_umap_warm_up` does that in a background thread when the app starts, with numba's cache
in the project cache folder so the next start is quick. PCA needs no warm-up: the app shows it
first and swaps UMAP in when it is done.

    coords = pca_2d(features)                 # [N, 2], milliseconds
    coords = umap_2d(features)                # [N, 2], seconds once warm
    neighbours = nearest_neighbours(features, [3, 17], k=8)
    distances = cosine_distances(features, [3, 17], neighbours)   # 0 = same direction, 2 = opposite
"""

from __future__ import annotations

import logging
import threading
import time

import numpy as np

from workbench.paths import use_numba_cache
from workbench.pca import principal_components

log = logging.getLogger("workbench")

UMAP_NEIGHBOURS = 15
# Half of umap's default for small data: the map looks the same, it takes half the time.
UMAP_EPOCHS = 200
WARM_UP_POINTS = 300


def pca_2d(features: np.ndarray) -> np.ndarray:
    """[N, D] -> [N, 2]: the first two principal components (signs fixed by the largest score)."""
    x = np.asarray(features)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"need features [N >= 2, D] for a map, got shape {x.shape}")
    coords = principal_components(x, 2).scores
    if coords.shape[1] < 2:  # one-dimensional features: put every clip on a line
        coords = np.pad(coords, ((0, 0), (0, 2 - coords.shape[1])))
    return coords.astype(np.float32)


def umap_2d(features: np.ndarray, seed: int = 0, epochs: int = UMAP_EPOCHS) -> np.ndarray:
    """[N, D] -> [N, 2] UMAP embedding (cosine metric), reproducible for a given seed."""
    use_numba_cache()
    import umap  # seconds to import: only when a map is asked for

    x = np.asarray(features, dtype=np.float32)
    if x.shape[0] < 4:
        raise ValueError(f"UMAP needs at least 4 clips, got {x.shape[0]}")
    reducer = umap.UMAP(
        n_components=2,
        n_neighbors=min(UMAP_NEIGHBOURS, x.shape[0] - 1),
        n_epochs=epochs,
        metric="cosine",
        random_state=seed,
        n_jobs=1,  # what a fixed random_state implies anyway; saying so silences the warning
    )
    return reducer.fit_transform(x).astype(np.float32)


def nearest_neighbours(features: np.ndarray, queries: list[int], k: int = 8) -> np.ndarray:
    """The `k` clips closest (cosine) to the mean of the `queries` clips, queries excluded."""
    x = np.asarray(features, dtype=np.float32)
    unit = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    centre = unit[queries].mean(0)
    similarity = unit @ centre
    similarity[queries] = -np.inf
    count = min(k, len(x) - len(set(queries)))
    if count <= 0:
        return np.zeros(0, dtype=np.int64)
    best = np.argpartition(-similarity, count - 1)[:count]
    return best[np.argsort(-similarity[best])]


def cosine_distances(features: np.ndarray, queries: list[int], rows: np.ndarray) -> np.ndarray:
    """Cosine distance (1 - cosine similarity, 0..2) of clips `rows` from the mean of the unit
    features of the `queries` clips: the measure `nearest_neighbours` ranks by."""
    x = np.asarray(features, dtype=np.float64)
    unit = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    centre = unit[queries].mean(0)
    centre /= max(np.linalg.norm(centre), 1e-12)
    return 1.0 - unit[np.asarray(rows, dtype=np.int64)] @ centre


class UmapWarmUp:
    """Compiles UMAP's numba code once, in a daemon thread, so the first real map is quick."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.seconds: float | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> UmapWarmUp:
        # Two threads importing the same package at once can deadlock on its module locks.
        # The app's requests and umap's import share one package: narwhals, which plotly
        # imports when it builds its first figure and scikit-learn imports under umap (a
        # benchmark run hung on exactly this). Importing it here, in the calling thread,
        # before the warm-up thread starts, leaves nothing for them to race on.
        import narwhals.stable  # noqa: F401

        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="umap-warm-up", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        started = time.perf_counter()
        points = np.random.default_rng(0).normal(size=(WARM_UP_POINTS, 16)).astype(np.float32)
        try:
            umap_2d(points, epochs=20)
        finally:
            self.seconds = time.perf_counter() - started
            self.done.set()
        log.info("UMAP warmed up in %.1f s", self.seconds)

    def wait(self, timeout: float | None = None) -> bool:
        return self.done.wait(timeout)


_warm_up = UmapWarmUp()


def start_umap_warm_up() -> UmapWarmUp:
    """Start (once per process) the background UMAP warm-up and return it."""
    return _warm_up.start()
