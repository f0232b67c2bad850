"""Plotly figures of the workbench: surprise curves, embedding maps, training curves.

Plain functions returning `go.Figure`, usable in notebooks as they are in the app.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative

from workbench.model_context import uniform_chance

HEIGHT = 320
MARGIN = {"l": 50, "r": 20, "t": 40, "b": 40}
PALETTE = qualitative.Plotly + qualitative.D3


def _layout(fig: go.Figure, title: str, height: int = HEIGHT) -> go.Figure:
    fig.update_layout(title=title, height=height, margin=MARGIN, template="plotly_white")
    if not any(trace.x is not None and len(trace.x) for trace in fig.data):  # not bare axes
        fig.add_annotation(text="no data yet", showarrow=False, font={"size": 16})
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)
    return fig


def surprise_figure(
    surprise: np.ndarray,
    frame_numbers: Sequence[int] | None = None,
    untrained: np.ndarray | None = None,
) -> go.Figure:
    """Per-frame latent prediction error; frames with nothing masked are gaps (NaN).

    `untrained`: the same architecture's step-0 surprise on the same clip and mask, drawn
    dashed as the reference (see workbench/step0.py)."""
    values = np.asarray(surprise, dtype=np.float64)
    x = list(frame_numbers) if frame_numbers is not None else list(range(len(values)))
    fig = go.Figure(
        go.Scatter(
            x=x,
            y=values,
            mode="lines+markers",
            connectgaps=False,
            name="surprise",
            hovertemplate="frame %{x}<br>surprise %{y:.3f}<extra></extra>",
        )
    )
    if untrained is not None:
        fig.add_trace(
            go.Scatter(
                x=x,
                y=np.asarray(untrained, dtype=np.float64),
                mode="lines",
                line={"dash": "dash", "color": "grey"},
                connectgaps=False,
                name="untrained (step 0)",
                hovertemplate="frame %{x}<br>step-0 surprise %{y:.3f}<extra></extra>",
            )
        )
    fig.update_xaxes(title="frame", dtick=1 if len(x) <= 32 else None)
    fig.update_yaxes(title=SURPRISE_UNITS, rangemode="tozero")
    return _layout(fig, "Surprise per frame (masked tokens only)")


# What one surprise value is: the mean over the masked tokens of a frame of the mean absolute
# difference per latent dimension.
SURPRISE_UNITS = "mean L1 per masked token (predicted vs target latents)"
SURPRISE_AXIS = "surprise: L1(predicted, target latents), mean per token"


def twin_surprise_figure(
    per_frame: np.ndarray,
    violation_frame: int,
    names: Sequence[str] = ("possible", "impossible"),
) -> go.Figure:
    """Surprise per frame of clips that come in twins, each possible clip followed by its
    impossible one (a pair, or the matched set A, C, B, D); `names` names them in that order.
    The possible curves are dotted, the impossible ones solid, with the violation marked."""
    fig = go.Figure()
    for index, (values, name) in enumerate(zip(per_frame, names, strict=True)):
        impossible = index % 2 == 1
        fig.add_trace(
            go.Scatter(
                x=list(range(len(values))),
                y=np.asarray(values, dtype=np.float64),
                mode="lines+markers",
                name=name,
                line={"dash": None if impossible else "dot"},
                connectgaps=False,
                hovertemplate=f"{name}<br>frame %{{x}}<br>surprise %{{y:.4f}}<extra></extra>",
            )
        )
    fig.add_vline(
        x=violation_frame - 0.5,
        line={"color": "crimson", "dash": "dash"},
        annotation_text="law broken",
        annotation_position="top left",
    )
    fig.update_xaxes(title="frame", dtick=1 if len(per_frame[0]) <= 32 else None)
    fig.update_yaxes(title=SURPRISE_AXIS, rangemode="tozero")
    return _layout(fig, "Surprise per frame (frames before the first prediction: no value)")


def video_surprise_figure(per_frame: np.ndarray, frame_step: int) -> go.Figure:
    """Surprise per frame over a whole clip; x in frames of the original video."""
    values = np.asarray(per_frame, dtype=np.float64)
    x = [i * frame_step for i in range(len(values))]
    fig = go.Figure(
        go.Scatter(
            x=x,
            y=values,
            mode="lines",
            name="surprise",
            connectgaps=False,
            hovertemplate="frame %{x}<br>surprise %{y:.4f}<extra></extra>",
        )
    )
    mean = float(np.nanmean(values))
    fig.add_hline(y=mean, line={"color": "grey", "dash": "dot"}, annotation_text="clip mean")
    fig.update_xaxes(title="frame of the video")
    fig.update_yaxes(title=SURPRISE_AXIS, rangemode="tozero")
    return _layout(fig, "Surprise over the clip (windows sliding over its whole length)")


def embedding_figure(
    coords: np.ndarray,
    labels: np.ndarray | None,
    label_names: Sequence[str] | None,
    title: str,
    hover_text: Sequence[str] | None = None,
) -> go.Figure:
    """A 2-D map of clips [N, 2], one trace per label value so the legend names the colours.

    Every point carries its clip index as `customdata`, which the selection bridge reads.
    """
    coords = np.asarray(coords, dtype=np.float32)
    index = np.arange(len(coords))
    hover = np.asarray(hover_text if hover_text is not None else [f"clip {i}" for i in index])
    fig = go.Figure()
    groups = [(None, index)] if labels is None else _groups(np.asarray(labels))
    for value, members in groups:
        name = "clips" if value is None else _label_name(value, label_names)
        fig.add_trace(
            go.Scattergl(
                x=coords[members, 0],
                y=coords[members, 1],
                mode="markers",
                name=name,
                customdata=members.tolist(),  # plain numbers for the selection bridge
                text=hover[members],
                hovertemplate="%{text}<extra></extra>",
                marker={"size": 6, "opacity": 0.8, "color": _colour(value)},
            )
        )
    fig.update_layout(dragmode="lasso", legend={"itemsizing": "constant"})
    fig.update_xaxes(showticklabels=False, zeroline=False)
    fig.update_yaxes(showticklabels=False, zeroline=False, scaleanchor="x")
    return _layout(fig, title, height=520)


def _groups(labels: np.ndarray) -> list[tuple[int, np.ndarray]]:
    return [(int(v), np.flatnonzero(labels == v)) for v in np.unique(labels)]


def _label_name(value: int, names: Sequence[str] | None) -> str:
    return names[value] if names is not None and 0 <= value < len(names) else str(value)


def _colour(value: int | None) -> str:
    return PALETTE[0] if value is None else PALETTE[value % len(PALETTE)]


# ---------------------------------------------------------------------------------------------
# Training curves, from metrics.jsonl records.


def metric_series(records: Sequence[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of the records that carry a finite number under `key`."""
    steps, values = [], []
    for record in records:
        value = record.get(key)
        if isinstance(value, (int, float)) and math.isfinite(value):
            steps.append(int(record["step"]))
            values.append(float(value))
    return steps, values


def loss_figure(records: Sequence[dict[str, Any]], title: str = "Loss") -> go.Figure:
    steps, values = metric_series(records, "loss")
    fig = go.Figure(go.Scatter(x=steps, y=values, mode="lines", name="loss"))
    fig.update_xaxes(title="step")
    fig.update_yaxes(title="L1 loss")
    return _layout(fig, title)


def collapse_figure(records: Sequence[dict[str, Any]]) -> go.Figure:
    """Per-dimension std of predictions and targets (left axis) and RankMe (right axis).

    A collapsing run shows target std and RankMe falling towards zero / one while the loss
    looks fine.
    """
    fig = go.Figure()
    for key, name in (("pred_std", "prediction std"), ("target_std", "target std")):
        steps, values = metric_series(records, key)
        fig.add_trace(go.Scatter(x=steps, y=values, mode="lines", name=name))
    steps, values = metric_series(records, "rankme")
    fig.add_trace(go.Scatter(x=steps, y=values, mode="lines+markers", name="RankMe", yaxis="y2"))
    fig.update_layout(
        yaxis={"title": "per-dim std", "rangemode": "tozero"},
        yaxis2={"title": "RankMe", "overlaying": "y", "side": "right", "rangemode": "tozero"},
    )
    fig.update_xaxes(title="step")
    _layout(fig, "Collapse monitors")
    # Above the plot: at the right it would cover the RankMe axis, below the step axis title.
    fig.update_layout(
        legend={"orientation": "h", "x": 0, "y": 1.0, "yanchor": "bottom"},
        margin={**MARGIN, "t": 80},
    )
    return fig


def probe_figure(
    records: Sequence[dict[str, Any]], chance: Mapping[str, float] | None = None
) -> go.Figure:
    """Online probe accuracy per label (`probe_<label>` keys), each beside its chance level
    (dashed) and its first measurement (dotted) when that comes before any real training.

    `chance`: per label, the accuracy of guessing; by default 1 / number of classes of the
    physics world's labels (`model_context.uniform_chance`: the online probe's clips are drawn
    from it, every class equally likely). A label it does not name (a video list's `label`)
    gets no chance line. The reference line is the step-0 measurement when the metrics hold
    one, else a step-1 measurement, one optimiser step in, so about the untrained model; a
    first probe any later has already learned and is not drawn as the reference."""
    levels = uniform_chance() if chance is None else dict(chance)
    keys = sorted({k for record in records for k in record if k.startswith("probe_")})
    fig = go.Figure()
    for index, key in enumerate(keys):
        label, colour = key[6:], PALETTE[index % len(PALETTE)]
        steps, values = metric_series(records, key)
        fig.add_trace(
            go.Scatter(x=steps, y=values, mode="lines+markers", name=label, line={"color": colour})
        )
        if not steps:
            continue
        span = [min(steps), max(steps)]
        if label in levels:
            fig.add_trace(
                go.Scatter(
                    x=span,
                    y=[levels[label]] * 2,
                    mode="lines",
                    name=f"{label}: chance {levels[label]:.0%}",
                    line={"color": colour, "dash": "dash", "width": 1},
                    hovertemplate=f"{label}: chance %{{y:.1%}}<extra></extra>",
                )
            )
        if steps[0] <= 1:
            when = "step 0 (untrained)" if steps[0] == 0 else "step 1 (≈ untrained)"
            fig.add_trace(
                go.Scatter(
                    x=span,
                    y=[values[0]] * 2,
                    mode="lines",
                    name=f"{label}: {when}",
                    line={"color": colour, "dash": "dot", "width": 1},
                    hovertemplate=f"{label} at {when}: %{{y:.1%}}<extra></extra>",
                )
            )
    fig.update_xaxes(title="step")
    fig.update_yaxes(title="accuracy", range=[0, 1], tickformat=".0%")
    first = min((s for key in keys for s in metric_series(records, key)[0]), default=None)
    if first is None:
        title = "Online probe accuracy (not measured yet)"
    elif first > 1:
        title = f"Online probe accuracy (first probe at step {first}: no untrained reference)"
    else:
        title = "Online probe accuracy (dashed: chance; dotted: before training)"
    return _layout(fig, title)
