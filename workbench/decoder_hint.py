"""The note Predict shows for a model without a pixel decoder: the command that fits one, and
about how long it takes, from one measured fit scaled to this model.

The measurement: `python -m decoder RUN steps=40 optim.warmup_steps=5 eval_every=0
eval_clips=4` on the teaching model (the committed starter's tiny_cpu run: encoder 842,624 and
predictor 472,544 parameters, 4 x 8 x 8 = 256 tokens a clip), batch 32, one torch thread, on the
project's 2-core CPU machine while other work shared it (load average about 5; 2026-12-01,
torch 2.13 CPU): steps 5 to 35 took 53.7 s, 1.79 s a step. The starter's own build recorded
1,961 s for its 1,200 decoder steps (1.63 s a step, evaluations included) on the same kind of
machine.
"""

from __future__ import annotations

import math
from pathlib import Path

from decoder.bundle import Bundle
from decoder.config import DecoderConfig
from workbench.paths import shown

MEASURED_S_PER_STEP = 1.79
MEASURED_STEPS = 40
TEACHING_PARAMETERS = 842_624 + 472_544  # encoder + predictor: they run at every step
TEACHING_TOKENS = 256
DEFAULT_STEPS = DecoderConfig().steps


def _parameters(bundle: Bundle) -> int:
    return sum(p.numel() for part in (bundle.encoder, bundle.predictor) for p in part.parameters())


def size_ratio(bundle: Bundle) -> float:
    """This model's parameters x tokens per clip over the teaching model's."""
    own = _parameters(bundle) * math.prod(bundle.grid)
    return own / (TEACHING_PARAMETERS * TEACHING_TOKENS)


def fit_seconds(bundle: Bundle, steps: int = DEFAULT_STEPS) -> float:
    """Estimated seconds for a decoder fit of `steps` on a 2-core CPU: the measured teaching-
    model step, scaled up by `size_ratio` (a rough, linear rule: attention grows faster). Never
    scaled down: the decoder and the batches cost the same for a smaller model."""
    return MEASURED_S_PER_STEP * steps * max(size_ratio(bundle), 1.0)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} minutes"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.0f} hours"
    return f"{seconds / 86400:.0f} days"


def decoder_hint(bundle: Bundle) -> str:
    """Markdown: how to fit a decoder for this model, and an honest time estimate."""
    run_dir = _run_dir(bundle)
    seconds = fit_seconds(bundle)
    ratio = size_ratio(bundle)
    measured = (
        f"an estimate from one measurement: a {MEASURED_STEPS}-step decoder fit of the teaching "
        f"model ran {MEASURED_S_PER_STEP} s a step on a shared 2-core CPU"
    )
    if ratio > 1.25:
        times = f"{ratio:,.0f}" if ratio >= 10 else f"{ratio:.2g}"
        measured += (
            f", scaled to this model by parameters x tokens per clip ({times}x): a rough "
            "linear rule (attention grows faster), not a measurement of this model; a GPU is "
            "far faster"
        )
    elif ratio < 0.8:
        measured += "; this model is smaller, but the decoder and the batches cost the same"
    return (
        f"To see the prediction as pixels, fit a decoder: `python -m decoder {run_dir}`, then "
        f"pick its `bundle.safetensors` in the Model tab. Time for its {DEFAULT_STEPS} steps on "
        f"a 2-core CPU: about {_duration(seconds)} ({measured})."
    )


def _run_dir(bundle: Bundle) -> str:
    """The run directory the model came from, as the decoder command takes it."""
    checkpoint = (bundle.provenance.get("pretrain") or {}).get("checkpoint")
    if not checkpoint:
        return "RUN_DIR"
    path = Path(checkpoint)
    return shown(path.parent.parent if path.parent.name == "checkpoints" else path)
