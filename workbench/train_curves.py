"""Did the run learn? The intuitive-physics yardstick during training (`physics_matched` in
metrics.jsonl, train/eval/physics.py), drawn against its first measurement and chance.

The loss falls in every run, learning or not; the share of matched sets in which the model is
more surprised by the two impossible clips than by the two possible ones is what rises only when
the model has learned to expect objects to persist and keep moving. Its first point is step 1
(the monitor runs after the first optimiser step), as good as the untrained model; chance is 50%.

A plotly figure for the app and the notebooks' live views, and a static matplotlib figure of the
final curves for executed notebooks (which GitHub shows; plotly output it does not).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import plotly.graph_objects as go
from matplotlib.figure import Figure

from workbench.plots import metric_series

PHYSICS_KEY = "physics_matched"
CHANCE = 0.5
START_COLOUR = "#d62728"
CHANCE_COLOUR = "#7f7f7f"


def physics_points(records: Sequence[dict[str, Any]]) -> tuple[list[int], list[float]]:
    """(steps, matched-set accuracy) of the records that carry the yardstick."""
    return metric_series(records, PHYSICS_KEY)


def physics_summary(records: Sequence[dict[str, Any]]) -> str:
    """One line: the yardstick at its first and last measurement; empty before any."""
    steps, values = physics_points(records)
    if not steps:
        return ""
    text = f"intuitive physics (matched sets, chance 50%): {values[0]:.0%} at step {steps[0]}"
    if len(steps) > 1:
        change = 100 * (values[-1] - values[0])
        text += f" -> {values[-1]:.0%} at step {steps[-1]} ({change:+.0f} points)"
    return text


def physics_figure(records: Sequence[dict[str, Any]]) -> go.Figure:
    """The matched-set accuracy per measured step, with the first measurement and chance drawn
    across as lines, so a rise reads at a glance."""
    steps, values = physics_points(records)
    fig = go.Figure(
        go.Scatter(x=steps, y=values, mode="lines+markers", name="matched sets", meta=PHYSICS_KEY)
    )
    fig.update_xaxes(title="step")
    fig.update_yaxes(title="impossible more surprising", range=[0, 1], tickformat=".0%")
    if steps:
        fig.add_hline(
            y=CHANCE,
            line={"dash": "dash", "color": CHANCE_COLOUR},
            annotation_text="chance 50%",
            annotation_position="bottom right",
        )
        fig.add_hline(
            y=values[0],
            line={"dash": "dot", "color": START_COLOUR},
            annotation_text=f"step {steps[0]}: {values[0]:.0%}",
            annotation_position="top left",
        )
        title = "Intuitive physics (matched sets)"
    else:
        title = "Intuitive physics (not measured yet)"
    fig.update_layout(
        title=title,
        height=320,
        margin={"l": 50, "r": 20, "t": 40, "b": 40},
        showlegend=False,
        template="plotly_white",
    )
    if not steps:
        fig.add_annotation(text="no data yet", showarrow=False, font={"size": 16})
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)
    return fig


def curves_image(
    records: Sequence[dict[str, Any]], title: str = "", path: str | Path | None = None
) -> Figure:
    """Static picture of a finished run: the loss, and the yardstick against its first value
    and chance. Saved to `path` (PNG) when given."""
    fig, (loss_ax, physics_ax) = plt.subplots(1, 2, figsize=(10, 3.4))
    steps, values = metric_series(records, "loss")
    loss_ax.plot(steps, values, color="#1f77b4")
    loss_ax.set(xlabel="step", ylabel="L1 loss", title="Loss")
    steps, values = physics_points(records)
    physics_ax.axhline(CHANCE, linestyle="--", color=CHANCE_COLOUR, label="chance 50%")
    if steps:
        physics_ax.axhline(
            values[0], linestyle=":", color=START_COLOUR, label=f"step {steps[0]}: {values[0]:.0%}"
        )
        physics_ax.plot(steps, values, marker="o", color="#2ca02c", label="matched sets")
    physics_ax.set(
        xlabel="step",
        ylabel="impossible more surprising",
        ylim=(0, 1),
        title="Intuitive physics" if steps else "Intuitive physics (not measured)",
    )
    physics_ax.yaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
    physics_ax.legend(loc="lower right", fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=100)
    # Closed from pyplot's list: a notebook shows the returned figure once, not twice.
    plt.close(fig)
    return fig
