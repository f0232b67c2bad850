"""Interactive notebook pieces: a live training chart and an embedding explorer.

Both are plotly `FigureWidget`s (which need `anywidget` in JupyterLab 4) with ipywidgets
around them. They also work where nobody looks at them (a notebook run by a test): they are
built and updated, and every method can be called from code, e.g. `explorer.select([3, 17])`
does what a lasso over clips 3 and 17 does.

    chart = TrainingChart()
    display(chart.widget)
    result = train_with_chart(cfg, chart)        # the chart follows metrics.jsonl

    explorer = EmbeddingExplorer(data)
    display(explorer.widget)
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from train.config import Config
from train.loop import RunResult, train
from train.monitor import read_metrics
from workbench.frames import enlarge, write_gif
from workbench.lab.layer_features import EmbeddingData
from workbench.lab.notebook import paint_mask
from workbench.maps import nearest_neighbours, pca_2d, umap_2d
from workbench.paths import new_output_path
from workbench.plots import embedding_figure, metric_series

POLL_SECONDS = 1.0
PROBE_LABELS = ("shape", "direction", "speed")
THUMB_PX = 96
MAX_SHOWN = 8
NEIGHBOURS = 8

# ---------------------------------------------------------------------------------------------
# Live training chart.


class TrainingChart:
    """Loss, collapse monitors (per-dimension std of predictions and targets, RankMe) and the
    online probe's accuracy, side by side, redrawn from metrics.jsonl records."""

    # (metrics key, legend name, subplot column, on the RankMe axis)
    TRACES = (
        ("loss", "loss", 1, False),
        ("pred_std", "prediction std", 2, False),
        ("target_std", "target std", 2, False),
        ("rankme", "RankMe (right axis)", 2, True),
        *((f"probe_{label}", f"probe: {label}", 3, False) for label in PROBE_LABELS),
    )

    def __init__(self, title: str = "Training") -> None:
        fig = make_subplots(
            rows=1,
            cols=3,
            subplot_titles=("L1 loss", "collapse monitors", "online probe accuracy"),
            specs=[[{}, {"secondary_y": True}, {}]],
            horizontal_spacing=0.08,
        )
        for key, name, col, secondary in self.TRACES:
            mode = "lines" if key in ("loss", "pred_std", "target_std") else "lines+markers"
            trace = go.Scatter(x=[], y=[], mode=mode, name=name, meta=key)
            fig.add_trace(trace, row=1, col=col, secondary_y=secondary if col == 2 else None)
        fig.update_xaxes(title_text="step")
        fig.update_yaxes(title_text="per-dim std", rangemode="tozero", row=1, col=2)
        fig.update_yaxes(title_text="RankMe", rangemode="tozero", row=1, col=2, secondary_y=True)
        fig.update_yaxes(range=[0, 1], tickformat=".0%", row=1, col=3)
        fig.update_layout(
            title=title, height=360, template="plotly_white", margin={"t": 80, "b": 40}
        )
        self.widget = go.FigureWidget(fig)
        self.records: list[dict[str, Any]] = []

    def update(self, records: Sequence[dict[str, Any]]) -> None:
        """Redraw every trace from all records so far."""
        self.records = list(records)
        with self.widget.batch_update():
            for trace in self.widget.data:
                trace.x, trace.y = metric_series(self.records, trace.meta)


class MetricsFollower:
    """Reads a metrics.jsonl every `interval` seconds in a daemon thread and hands the records
    to `on_records` whenever the file grew. Stopping reads it one last time."""

    def __init__(
        self,
        path: Path,
        on_records: Callable[[list[dict[str, Any]]], None],
        interval: float = POLL_SECONDS,
    ) -> None:
        self.path = path
        self.on_records = on_records
        self.interval = interval
        self._stop = threading.Event()
        self._size = -1
        self._thread = threading.Thread(target=self._run, name="metrics-follower", daemon=True)

    def start(self) -> MetricsFollower:
        self._thread.start()
        return self

    def poll(self) -> None:
        size = self.path.stat().st_size if self.path.is_file() else -1
        if size != self._size:
            self._size = size
            self.on_records(read_metrics(self.path) if size >= 0 else [])

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.poll()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.poll()


def train_with_chart(cfg: Config, chart: TrainingChart) -> RunResult:
    """`train.loop.train(cfg)` in this thread (its tqdm.auto bar shows in the notebook, and
    interrupting the kernel stops it cleanly after a checkpoint), while a follower thread
    feeds the run's metrics.jsonl to `chart`."""
    follower = MetricsFollower(Path(cfg.out) / "metrics.jsonl", chart.update).start()
    try:
        return train(cfg)
    finally:
        follower.stop()


# ---------------------------------------------------------------------------------------------
# Embedding explorer.


def gif_widget(frames: np.ndarray, caption: str, size: int = THUMB_PX) -> widgets.Widget:
    """A looping GIF of uint8 frames [T, S, S, 3] with a caption under it."""
    path = write_gif(enlarge(frames, size), new_output_path("clip", ".gif"))
    image = widgets.Image(value=path.read_bytes(), format="gif", width=size, height=size)
    return widgets.VBox([image, widgets.HTML(f"<small>{caption}</small>")])


class EmbeddingExplorer:
    """A 2-D map of clip or patch features with controls for which points, which layer, which
    method (PCA; UMAP when `umap` is on) and which label colours them. A lasso (or box)
    selection shows the selected clips and, for clips, their nearest neighbours in the
    layer's feature space; for patches, the clips they come from with the patches tinted."""

    LEVELS = ("clips", "patches")

    def __init__(self, data: EmbeddingData, umap: bool = True) -> None:
        self.data = data
        self._coords: dict[tuple[str, str, str], np.ndarray] = {}
        methods = ["PCA", "UMAP"] if umap else ["PCA"]
        self.level = widgets.Dropdown(options=self.LEVELS, value="clips", description="points")
        self.layer = widgets.Dropdown(
            options=data.layers, value=data.layers[-1], description="layer"
        )
        self.method = widgets.Dropdown(options=methods, value="PCA", description="method")
        self.colour = widgets.Dropdown(options=self._label_options(), description="colour by")
        self.figure = go.FigureWidget()
        self.selection = widgets.Output()
        self.selected: list[int] = []
        self.neighbours: list[int] = []
        for control in (self.level, self.layer, self.method, self.colour):
            control.observe(self._on_change, names="value")
        self.widget = widgets.VBox(
            [
                widgets.HBox([self.level, self.layer]),
                widgets.HBox([self.method, self.colour]),
                self.figure,
                self.selection,
            ]
        )
        self.redraw()

    # ------------------------------------------------------------------ the map

    def _labels(self) -> tuple[dict[str, np.ndarray], dict[str, list[str]]]:
        if self.level.value == "clips":
            return self.data.clip_labels, self.data.clip_label_names
        return self.data.patch_labels, self.data.patch_label_names

    def _label_options(self) -> list[str]:
        return list(self._labels()[0])

    def features(self) -> np.ndarray:
        """The current level's features at the current layer, [points, D]."""
        source = (
            self.data.clip_features if self.level.value == "clips" else self.data.patch_features
        )
        return source[self.layer.value]

    def coords(self) -> np.ndarray:
        key = (self.level.value, self.layer.value, self.method.value)
        if key not in self._coords:
            method = pca_2d if self.method.value == "PCA" else umap_2d
            self._coords[key] = method(self.features())
        return self._coords[key]

    def _on_change(self, change: dict[str, Any]) -> None:
        if change["owner"] is self.level:
            # Clips and patches have different labels: offer the new level's.
            self.colour.unobserve(self._on_change, names="value")
            self.colour.options = self._label_options()
            self.colour.observe(self._on_change, names="value")
        self.redraw()

    def redraw(self) -> None:
        """Rebuild the map for the current controls; the lasso stays wired to every trace."""
        labels, names = self._labels()
        colour = self.colour.value
        hover = self.data.clip_hover if self.level.value == "clips" else self.data.patch_hover
        title = f"{self.method.value} of {self.level.value}, {self.layer.value}, by {colour}"
        fig = embedding_figure(self.coords(), labels[colour], names[colour], title, hover)
        with self.figure.batch_update():
            self.figure.data = ()
            self.figure.add_traces(list(fig.data))
            self.figure.layout = fig.layout
        for trace in self.figure.data:
            trace.on_selection(self._on_selection)

    # ------------------------------------------------------------------ selection

    def _on_selection(self, trace: Any, points: Any, _selector: Any) -> None:
        if points.point_inds:
            # customdata holds each point's index in the whole set (see embedding_figure).
            self.select([int(trace.customdata[i]) for i in points.point_inds])

    def select(self, points: Sequence[int]) -> list[int]:
        """Show the selected points (indices into the current level) and return the clips
        shown after them: nearest neighbours for clips, the patches' clips for patches."""
        self.selected = sorted({int(p) for p in points})
        if self.level.value == "clips":
            self.neighbours = nearest_neighbours(
                self.features(), self.selected, NEIGHBOURS
            ).tolist()
            rows = {
                f"{len(self.selected)} selected clips": self.selected[:MAX_SHOWN],
                f"their {len(self.neighbours)} nearest neighbours": self.neighbours,
            }
            self._show(
                {title: [self._clip_card(c) for c in clips] for title, clips in rows.items()}
            )
            return self.neighbours
        clips = sorted({int(self.data.patch_clip[p]) for p in self.selected})
        self.neighbours = []
        cards = [self._patch_card(c) for c in clips[:MAX_SHOWN]]
        self._show({f"{len(self.selected)} patches from {len(clips)} clips": cards})
        return clips

    def _clip_card(self, clip: int) -> widgets.Widget:
        return gif_widget(self.data.clip_of(clip), self.data.clip_hover[clip])

    def _patch_card(self, clip: int) -> widgets.Widget:
        chosen = [p for p in self.selected if self.data.patch_clip[p] == clip]
        geometry = self.data.geometry
        mask = np.zeros(geometry.num_tokens, dtype=bool)
        mask[self.data.patch_token[chosen]] = True
        painted = paint_mask(self.data.clip_of(clip), mask.reshape(geometry.grid), geometry)
        return gif_widget(painted, f"clip {clip}: {len(chosen)} patches")

    def _show(self, rows: dict[str, list[widgets.Widget]]) -> None:
        self.selection.clear_output()
        with self.selection:
            from IPython.display import display

            for title, cards in rows.items():
                display(widgets.HTML(f"<b>{title}</b>"), widgets.HBox(cards))
