"""Embeddings: a 2-D map of the clip features of a dataset, coloured by a label. PCA appears at
once, UMAP replaces it when ready. Hovering a point shows its clip; a lasso (or a click) selects
clips and shows them with their nearest neighbours in feature space.

Plotly's selection events live in the browser; a small script (`BRIDGE_JS`) copies the selected
clip numbers into the "Selected clips" box and presses "Show selection", and the hovered clip's
number into a hidden box. Typing clip numbers into the box works the same way.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import gradio as gr
import numpy as np

from train.data.synthetic import LABEL_NAMES
from workbench.clip_table import (
    DEFAULT_CLIPS,
    FOLDER,
    SOURCES,
    SYNTHETIC,
    ClipTable,
    DataChoice,
    cached_table,
    clip_table,
)
from workbench.context import AppContext
from workbench.embed import nearest_neighbours, pca_2d, umap_2d
from workbench.frames import enlarge, write_gif
from workbench.guard import user_errors
from workbench.paths import new_output_path
from workbench.plots import embedding_figure

METHODS = ("PCA", "UMAP")
NO_LABEL = "(none)"
THUMB_PX = 96  # gallery thumbnails
HOVER_PX = 192  # the hovered clip, shown alone
MAX_SHOWN = 24
NEIGHBOURS = 8
# Maps and thumbnails already computed, so switching back and forth or hovering again is
# instant. Bounded: the oldest entries go first.
MAX_CACHED = 2000
_umap_cache: dict[str, np.ndarray] = {}
_gif_cache: dict[tuple[str, int, int], str] = {}


def _remember(cache: dict, key: Any, value: Any) -> Any:
    if len(cache) >= MAX_CACHED:
        cache.pop(next(iter(cache)))
    cache[key] = value
    return value


BRIDGE_JS = """
() => {
  const setBox = (id, text) => {
    const box = document.querySelector(`#${id} textarea, #${id} input`);
    if (!box) return false;
    box.value = text;
    box.dispatchEvent(new Event("input", { bubbles: true }));
    return true;
  };
  const press = (id) => {
    const button = document.querySelector(`#${id}`);
    if (button) setTimeout(() => button.click(), 50);
  };
  const clipsOf = (event) => {
    const points = (event && event.points) || [];
    return [...new Set(points.map((p) => p.customdata).filter((c) => c !== undefined))];
  };
  let lastHover = null;
  const onSelected = (event) => {
    const clips = clipsOf(event);
    if (clips.length && setBox("embedding-selection", clips.join(", "))) press("embedding-show");
  };
  const onHover = (event) => {
    const clips = clipsOf(event);
    if (!clips.length || clips[0] === lastHover) return;
    lastHover = clips[0];
    if (setBox("embedding-hover", String(clips[0]))) press("embedding-hover-button");
  };
  const attach = () => {
    const plot = document.querySelector("#embedding-map .js-plotly-plot");
    if (!plot || !plot.on) return;
    // Re-attached every tick: a redrawn plot loses its listeners; removing first keeps one.
    for (const [name, handler] of [["plotly_selected", onSelected], ["plotly_click", onSelected],
                                   ["plotly_hover", onHover]]) {
      plot.removeListener(name, handler);
      plot.on(name, handler);
    }
  };
  setInterval(attach, 1000);
}
"""


def _coords(table: ClipTable, method: str) -> np.ndarray:
    if method == "PCA":
        return pca_2d(table.features)
    if method == "UMAP":
        if table.key not in _umap_cache:
            _remember(_umap_cache, table.key, umap_2d(table.features))
        return _umap_cache[table.key]
    raise ValueError(f"map method {method!r}: choose one of {', '.join(METHODS)}")


def map_figure(table: ClipTable, method: str, colour_by: str) -> Any:
    labels = names = None
    if colour_by and colour_by != NO_LABEL:
        if colour_by not in table.labels:
            raise ValueError(f"these clips have no label {colour_by!r}")
        labels, names = table.labels[colour_by], table.label_names[colour_by]
    title = f"{method} of {table.title}" + (
        f", coloured by {colour_by}" if labels is not None else ""
    )
    return embedding_figure(_coords(table, method), labels, names, title, table.hover)


def parse_clip_numbers(text: str, count: int) -> list[int]:
    numbers = [int(n) for n in re.findall(r"\d+", text or "")]
    if not numbers:
        raise ValueError("select clips with the lasso, click one, or type clip numbers (3, 17)")
    bad = [n for n in numbers if n >= count]
    if bad:
        raise ValueError(
            f"clip numbers {bad} do not exist: the map has {count} clips (0..{count - 1})"
        )
    return list(dict.fromkeys(numbers))


def thumbnail(table: ClipTable, row: int, size: int = THUMB_PX) -> str:
    """An animated GIF of clip `row`, about `size` px wide (cached per table)."""
    key = (table.key, row, size)
    if key not in _gif_cache:
        frames = enlarge(table.clip_of(row), size)
        _remember(_gif_cache, key, str(write_gif(frames, new_output_path(f"clip{row}", ".gif"))))
    return _gif_cache[key]


def _caption(table: ClipTable, row: int) -> str:
    """'clip 12 · circle · up · fast · 2 objects': the hover text without the label names."""
    parts = table.hover[row].split("<br>")
    return " · ".join([parts[0], *(part.split(": ", 1)[-1] for part in parts[1:])])


class EmbeddingHandlers:
    def __init__(self, ctx: AppContext):
        self.ctx = ctx

    @user_errors
    def map_clips(
        self,
        bundle_key: str | None,
        source: str = SYNTHETIC,
        count: int = DEFAULT_CLIPS,
        folder: str = "",
        colour_by: str = "shape",
        progress: gr.Progress = gr.Progress(),  # noqa: B008 (Gradio's injection idiom)
    ) -> Iterator[tuple[Any, ...]]:
        """Yields (figure, table key, colour choices, method, status): PCA, then UMAP."""
        bundle = self.ctx.registry.load(bundle_key)
        if source == FOLDER:  # a server path from the page: only under the --data-dir folders
            folder = str(self.ctx.data_dirs.video_source(folder))
        choice = DataChoice(source, int(count or DEFAULT_CLIPS), folder or "")
        table = clip_table(
            bundle,
            self.ctx.registry.identity(bundle_key),
            choice,
            lambda share, text: progress(share, desc=text),
        )
        labels = [NO_LABEL, *table.labels]
        colour = colour_by if colour_by in table.labels else labels[min(1, len(labels) - 1)]
        colours = gr.update(choices=labels, value=colour)
        skipped = f" Skipped {len(table.skipped)} unreadable files." if table.skipped else ""
        yield (
            map_figure(table, "PCA", colour),
            table.key,
            colours,
            "PCA",
            f"PCA of {table.title} shown; computing UMAP...{skipped}",
        )
        yield (
            map_figure(table, "UMAP", colour),
            table.key,
            colours,
            "UMAP",
            f"UMAP of {table.title} (cosine, 15 neighbours).{skipped}",
        )

    @user_errors
    def redraw(self, table_key: str | None, method: str, colour_by: str) -> Any:
        if table_key is None:
            return gr.skip()
        return map_figure(cached_table(table_key), method, colour_by)

    @user_errors
    def show_selection(self, table_key: str | None, selection: str) -> tuple[Any, Any, str]:
        """(gallery of the selected clips, gallery of their nearest neighbours, a note)."""
        if table_key is None:
            raise ValueError("press 'Map clips' first")
        table = cached_table(table_key)
        rows = parse_clip_numbers(selection, len(table))
        neighbours = nearest_neighbours(table.features, rows, NEIGHBOURS)
        shown = rows[:MAX_SHOWN]
        selected = [(thumbnail(table, r), _caption(table, r)) for r in shown]
        near = [(thumbnail(table, int(r)), _caption(table, int(r))) for r in neighbours]
        more = f" (showing the first {MAX_SHOWN})" if len(rows) > MAX_SHOWN else ""
        note = (
            f"{len(rows)} clips selected{more}; below, the {len(near)} clips nearest to their "
            "mean feature (cosine similarity in feature space, not on the map)."
        )
        return selected, near, note

    @user_errors
    def show_hover(self, table_key: str | None, hovered: str) -> Any:
        if table_key is None or not (hovered or "").strip():
            return gr.skip()
        table = cached_table(table_key)
        row = parse_clip_numbers(hovered, len(table))[0]
        return gr.update(value=thumbnail(table, row, HOVER_PX), label=_caption(table, row))


def build(ctx: AppContext, bundle: gr.Dropdown) -> None:
    handlers = EmbeddingHandlers(ctx)
    table_key = gr.State(None)
    gr.Markdown(
        "A map of many clips: each point is one clip's mean feature. **Hover** a point to see "
        "the clip; **lasso** or **click** points to see them and their nearest neighbours."
    )
    with gr.Row():
        source = gr.Radio(list(SOURCES), value=SYNTHETIC, label="Clips")
        count = gr.Number(
            DEFAULT_CLIPS,
            precision=0,
            label="Number of physics clips",
            minimum=2,
            elem_id="embedding-count",
        )
        folder = gr.Textbox(
            label="Video folder (or list file) under the app's data folders",
            placeholder=(
                f"a path under {ctx.data_dirs.describe()}"
                if ctx.data_dirs.roots
                else "none: start the app with --data-dir FOLDER"
            ),
        )
    with gr.Row():
        colour_by = gr.Dropdown([NO_LABEL, *LABEL_NAMES], value="shape", label="Colour by")
        method = gr.Radio(list(METHODS), value="PCA", label="Map")
        run = gr.Button("Map clips", variant="primary", elem_id="embedding-button")
    status = gr.Markdown(elem_id="embedding-status")
    with gr.Row():
        with gr.Column(scale=3):
            plot = gr.Plot(label="Clip map", elem_id="embedding-map")
        with gr.Column(scale=1):
            hovered = gr.Image(label="Hovered clip", height=260, elem_id="embedding-hovered")
            selection = gr.Textbox(label="Selected clips", elem_id="embedding-selection")
            show = gr.Button("Show selection", elem_id="embedding-show")
    note = gr.Markdown()
    selected = gr.Gallery(
        label="Selected clips",
        columns=8,
        height=260,
        fit_columns=False,
        elem_id="embedding-selected",
    )
    neighbours = gr.Gallery(label="Nearest neighbours", columns=8, height=260, fit_columns=False)
    hover_box = gr.Textbox(visible="hidden", elem_id="embedding-hover")
    hover_button = gr.Button(visible="hidden", elem_id="embedding-hover-button")

    run.click(
        handlers.map_clips,
        [bundle, source, count, folder, colour_by],
        [plot, table_key, colour_by, method, status],
        api_name="map_clips",
    )
    for control in (colour_by, method):
        control.input(
            handlers.redraw, [table_key, method, colour_by], plot, api_visibility="undocumented"
        )
    show.click(
        handlers.show_selection,
        [table_key, selection],
        [selected, neighbours, note],
        api_name="show_selection",
    )
    hover_button.click(
        handlers.show_hover,
        [table_key, hover_box],
        hovered,
        show_progress="hidden",
        api_visibility="undocumented",
    )
