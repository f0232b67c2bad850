"""SIGReg (Balestriero & LeCun 2025, "LeJEPA", arXiv 2511.08544): a collapse guard that pushes
embeddings towards an isotropic Gaussian, with one weight and no teacher heuristics.

The embeddings [N, D] are projected onto random unit directions, redrawn every step (a
generator seeded by the step, so a resumed run draws the same ones). For each 1-D projection,
the Epps-Pulley statistic compares its empirical characteristic function with the standard
Gaussian's, exp(-t^2 / 2), weighted by that same Gaussian and integrated over t by the
trapezoid rule:

    EP = N * integral |mean_i exp(i t x_i) - exp(-t^2 / 2)|^2 exp(-t^2 / 2) dt

A collapsed (constant) or low-rank set of embeddings projects to a spike, far from N(0, 1) in
most directions; an isotropic Gaussian cloud scores about zero. The cost is linear in N and D.
The real and imaginary parts are written out with cos and sin, so the term runs under autocast.
"""

from __future__ import annotations

import torch

# Integration points for t: the Gaussian weight makes |t| > 5 negligible.
T_MAX = 5.0
T_POINTS = 17


def sigreg(
    embeddings: torch.Tensor, num_slices: int, seed: int, max_samples: int | None = None
) -> torch.Tensor:
    """Mean Epps-Pulley statistic of `embeddings` [N, D] over `num_slices` random directions.

    With `max_samples`, a random subset of that many rows is tested: the statistic grows with
    N for a non-Gaussian cloud, so a fixed N keeps the regulariser's weight meaningful across
    batch sizes and token counts (and its cost bounded).
    """
    x = embeddings.float()
    gen = torch.Generator(device=x.device).manual_seed(seed)
    if max_samples is not None and x.shape[0] > max_samples:
        x = x[torch.randperm(x.shape[0], generator=gen, device=x.device)[:max_samples]]
    directions = torch.randn(x.shape[1], num_slices, generator=gen, device=x.device)
    directions = directions / directions.norm(dim=0, keepdim=True)
    t = torch.linspace(-T_MAX, T_MAX, T_POINTS, device=x.device)
    gaussian = torch.exp(-0.5 * t.square())
    angles = (x @ directions).unsqueeze(-1) * t  # [N, slices, points]
    real = angles.cos().mean(0) - gaussian
    imag = angles.sin().mean(0)
    distance = (real.square() + imag.square()) * gaussian  # [slices, points]
    return torch.trapezoid(distance, t, dim=-1).mean() * x.shape[0]
