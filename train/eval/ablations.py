"""The paper's pretraining ablations at toy scale, as named training variants.

Each variant is the teaching preset (`tiny_cpu`) with one setting changed:

* what to predict (paper Table 1): features (V-JEPA) or normalised pixels (VideoMAE-style);
* which masks (paper Table 4): multi-block, random tubes (90%) or causal (the first half of
  the clip predicts the second half).

The untrained encoder (`encoder=random_init` of the V-JEPA run) is the no-pretraining row.
`benchmarks/replicate_paper.py` trains and probes them; the ablations notebook reads its
results or re-runs them smaller.
"""

from __future__ import annotations

from dataclasses import dataclass

PRESET = "tiny_cpu"
LABELS = ("shape", "direction", "speed")
UNTRAINED = "random_init"


@dataclass(frozen=True)
class Variant:
    name: str
    title: str
    overrides: tuple[str, ...]


VARIANTS = {
    v.name: v
    for v in (
        Variant("vjepa", "V-JEPA: features, multi-block masks", ()),
        Variant("pixels", "pixels (VideoMAE-style), multi-block masks", ("target=pixels",)),
        Variant("random_tube", "features, random-tube masks (90%)", ("mask.strategy=random_tube",)),
        Variant(
            "causal",
            "features, causal masks (4 frames predict the next 4)",
            ("mask.strategy=causal", "mask.causal_context_frames=4"),
        ),
    )
}
TITLES = {**{v.name: v.title for v in VARIANTS.values()}, UNTRAINED: "no pretraining (step 0)"}
