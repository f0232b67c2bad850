"""Principal components of feature rows, for the 2-D maps (maps.py) and the patch colours
(features.py).

An exact SVD of the centred rows: what scikit-learn's `PCA(svd_solver="full")` computes, as
fast (a test checks that the two agree). scikit-learn is not imported for it: importing
sklearn.decomposition took 3-5 s on a busy 2-core machine, a sixth of the app's start, and done
lazily on a request it would race the UMAP warm-up thread's import of the same package (two
threads importing one package is how the app's imports once deadlocked, see maps.py).
SVD signs are arbitrary; each component is turned so that its
largest score (in absolute value) is positive, a rule of the data alone, so a map or a colouring
does not flip between two runs on the same features.

    pcs = principal_components(features, 3)   # features [N, D]
    pcs.scores                                 # [N, count], count = min(3, N, D)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Below this total variance the features are constant: no direction explains anything.
MIN_VARIANCE = 1e-12


@dataclass
class PrincipalComponents:
    mean: np.ndarray  # [D]
    components: np.ndarray  # [count, D], signs fixed (see the module docstring)
    scores: np.ndarray  # [N, count]: the fitted rows' coordinates on the components
    explained: np.ndarray  # [count]: share of the total variance of each component

    def project(self, features: np.ndarray) -> np.ndarray:
        """[M, D] -> [M, count] coordinates on the fitted components."""
        return (np.asarray(features, dtype=np.float64) - self.mean) @ self.components.T


def principal_components(features: np.ndarray, count: int) -> PrincipalComponents:
    """The first `count` principal components of [N, D] rows (fewer when N or D is smaller)."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"PCA needs features [N >= 2, D], got shape {x.shape}")
    count = min(count, *x.shape)
    mean = x.mean(0)
    centred = x - mean
    _, singular, directions = np.linalg.svd(centred, full_matrices=False)
    components = directions[:count]
    scores = centred @ components.T
    signs = np.sign(scores[np.abs(scores).argmax(0), np.arange(count)])
    signs = np.where(signs == 0, 1.0, signs)
    variance = singular**2
    total = variance.sum()
    explained = variance[:count] / total if total > MIN_VARIANCE else np.zeros(count)
    return PrincipalComponents(mean, components * signs[:, None], scores * signs, explained)
