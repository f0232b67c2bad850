"""Embeddings: a 2-D map of the clip features of a dataset, coloured by a label. PCA appears at
once, UMAP replaces it when ready. Hovering a point shows its clip; a lasso (or a click) selects
clips and shows them with their nearest neighbours in feature space.

Plotly's selection events live in the browser; a small script (`BRIDGE_JS`) copies the selected
clip numbers into the "Selected clips" box and presses "Show selection", and the hovered clip's
number into a hidden box. Typing clip numbers or ranges ("3-17, 20") into the box works the same
way; once a selection is shown, the box holds it as ranges, so a lasso of hundreds of clips
stays readable.

Colours: every label of the clips (the physics world's motion labels and what its scenes show,
background included; a folder's sub-folders or list-file labels), or a CSV the user uploads
(`file name, label` lines, read as bytes: no server path). "Show only" filters the map by the
colour label's values. "Export" writes the selection as a list file (`path label` lines) under
the app's output folder, for training's and evaluation's `data.path=`.
"""

from __future__ import annotations

import re
import shutil
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
    UNLABELLED,
    ClipTable,
    DataChoice,
    cached_table,
    clip_table,
    export_selection,
    labels_from_csv,
)
from workbench.context import AppContext
from workbench.frames import enlarge, write_gif
from workbench.guard import user_errors
from workbench.maps import cosine_distances, nearest_neighbours, pca_2d, umap_2d
from workbench.paths import new_output_path, output_dir
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


def uploaded_for(table: ClipTable, uploaded: dict | None) -> dict | None:
    """The CSV labels uploaded for this map, or None (a CSV belongs to the map it was read for)."""
    return uploaded if uploaded and uploaded.get("table") == table.key else None


def label_of(
    table: ClipTable, colour_by: str, uploaded: dict | None = None
) -> tuple[np.ndarray | None, list[str] | None]:
    """(int [N] values, their names) of label `colour_by`; (None, None) for no label."""
    if not colour_by or colour_by == NO_LABEL:
        return None, None
    csv_labels = uploaded_for(table, uploaded)
    if csv_labels and colour_by == csv_labels["title"]:
        return np.array(csv_labels["values"], dtype=np.int64), list(csv_labels["names"])
    if colour_by not in table.labels:
        raise ValueError(f"these clips have no label {colour_by!r}")
    return table.labels[colour_by], table.label_names[colour_by]


def colour_choices(table: ClipTable, uploaded: dict | None = None) -> list[str]:
    csv_labels = uploaded_for(table, uploaded)
    return [NO_LABEL, *table.labels, *([csv_labels["title"]] if csv_labels else [])]


def map_figure(
    table: ClipTable,
    method: str,
    colour_by: str,
    shown_values: list[str] | None = None,
    uploaded: dict | None = None,
) -> Any:
    """The map coloured by `colour_by`; with `shown_values`, only the clips of those values."""
    labels, names = label_of(table, colour_by, uploaded)
    title = f"{method} of {table.title}" + (
        f", coloured by {colour_by}" if labels is not None else ""
    )
    figure = embedding_figure(_coords(table, method), labels, names, title, table.hover)
    if shown_values:
        if names is None:
            raise ValueError("choose a label to colour by before filtering by its values")
        unknown = [value for value in shown_values if value not in names]
        if unknown:
            raise ValueError(
                f"{', '.join(map(repr, unknown))} not a value of {colour_by!r}: "
                f"choose from {', '.join(names)}"
            )
        # One trace per label value: filtering drops whole traces, clip numbers stay as they are.
        figure.data = [trace for trace in figure.data if trace.name in shown_values]
        shown = sum(len(trace.x) for trace in figure.data)
        figure.update_layout(title=f"{title}; showing {shown} clips: {', '.join(shown_values)}")
    return figure


def parse_clip_numbers(text: str, count: int) -> list[int]:
    """Clip numbers from what the selection box holds: numbers and ranges ("3-17, 20"), in the
    order given, each once. Reads back what `compact_clip_numbers` writes."""
    numbers: list[int] = []
    for first, last in re.findall(r"(\d+)(?:\s*-\s*(\d+))?", text or ""):
        low, high = int(first), int(last or first)
        if high < low:
            raise ValueError(f"clip range {low}-{high} runs backwards: write {high}-{low}")
        numbers.extend(range(low, high + 1))
    if not numbers:
        raise ValueError(
            "select clips with the lasso, click one, or type clip numbers (3, 17 or 3-17)"
        )
    bad = sorted({n for n in numbers if n >= count})
    if bad:
        shown = ", ".join(map(str, bad[:5])) + (", ..." if len(bad) > 5 else "")
        raise ValueError(
            f"clip numbers {shown} do not exist: the map has {count} clips (0..{count - 1})"
        )
    return list(dict.fromkeys(numbers))


def compact_clip_numbers(numbers: list[int]) -> str:
    """Clip numbers as sorted runs, "3-17, 20": a lasso of hundreds of clips stays readable in
    the selection box, and `parse_clip_numbers` reads it back."""
    runs: list[list[int]] = []
    for number in sorted(set(numbers)):
        if runs and number == runs[-1][1] + 1:
            runs[-1][1] = number
        else:
            runs.append([number, number])
    return ", ".join(str(low) if low == high else f"{low}-{high}" for low, high in runs)


def thumbnail(table: ClipTable, row: int, size: int = THUMB_PX) -> str:
    """An animated GIF of clip `row`, about `size` px wide (cached per table)."""
    key = (table.key, row, size)
    if key not in _gif_cache:
        frames = enlarge(table.clip_of(row), size)
        _remember(_gif_cache, key, str(write_gif(frames, new_output_path(f"clip{row}", ".gif"))))
    return _gif_cache[key]


def _caption(row: int, distance: float | None = None) -> str:
    """'clip 12', or 'd=0.031 · clip 12' for a neighbour: short, so a gallery tile shows it
    whole; the clips' labels go in the note (`_labels_line`)."""
    return f"clip {row}" if distance is None else f"d={distance:.3f} · clip {row}"


def _labels_line(table: ClipTable, row: int) -> str:
    """'clip 12: circle · up · fast · 2 objects': the hover text without the label names."""
    parts = table.hover[row].split("<br>")
    values = [part.split(": ", 1)[-1] for part in parts[1:]]
    return f"{parts[0]}: {' · '.join(values)}" if values else parts[0]


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
    def redraw(
        self,
        table_key: str | None,
        method: str,
        colour_by: str,
        shown_values: list[str] | None = None,
        uploaded: dict | None = None,
    ) -> Any:
        if table_key is None:
            return gr.skip()
        return map_figure(cached_table(table_key), method, colour_by, shown_values, uploaded)

    @user_errors
    def show_selection(self, table_key: str | None, selection: str) -> tuple[Any, Any, str]:
        """(gallery of the selected clips, gallery of their nearest neighbours, a note)."""
        if table_key is None:
            raise ValueError("press 'Map clips' first")
        table = cached_table(table_key)
        rows = parse_clip_numbers(selection, len(table))
        neighbours = nearest_neighbours(table.features, rows, NEIGHBOURS)
        distances = cosine_distances(table.features, rows, neighbours)
        own = cosine_distances(table.features, rows, np.array(rows))
        shown = rows[:MAX_SHOWN]
        selected = [(thumbnail(table, r), _caption(r)) for r in shown]
        near = [
            (thumbnail(table, int(r)), _caption(int(r), float(d)))
            for r, d in zip(neighbours, distances, strict=True)
        ]
        more = f" (showing the first {MAX_SHOWN})" if len(rows) > MAX_SHOWN else ""
        spread = (
            f" The selected clips lie {own.mean():.3f} from it on average." if len(rows) > 1 else ""
        )
        note = (
            f"{len(rows)} clips selected{more}; below, the {len(near)} clips nearest to their "
            "mean feature, with their cosine distance d from it (0 = the same direction, 1 = "
            f"unrelated; in feature space, not on the map).{spread}"
        )
        # The neighbours' labels, which the short gallery captions leave out: do they share
        # the selection's shape, or only its background?
        labels = "\n".join(f"- {_labels_line(table, int(r))}" for r in neighbours)
        return selected, near, f"{note}\n\nNearest neighbours:\n{labels}"

    @user_errors
    def compact_selection(self, table_key: str | None, selection: str) -> Any:
        """The selection box rewritten as ranges ("3-17, 20") once the selection is shown."""
        if table_key is None or not (selection or "").strip():
            return gr.skip()
        return compact_clip_numbers(parse_clip_numbers(selection, len(cached_table(table_key))))

    @user_errors
    def filter_choices(
        self, table_key: str | None, colour_by: str, uploaded: dict | None = None
    ) -> Any:
        """The "Show only" values for the colour label, none chosen (the whole map)."""
        if table_key is None:
            return gr.skip()
        _, names = label_of(cached_table(table_key), colour_by, uploaded)
        return gr.update(choices=names or [], value=[], interactive=names is not None)

    @user_errors
    def upload_labels(
        self, table_key: str | None, data: bytes | None, method: str
    ) -> tuple[dict, Any, Any, Any, str]:
        """(CSV labels state, colour choices, the map coloured by them, filter, a note)."""
        if table_key is None:
            raise ValueError("press 'Map clips' first, then upload labels for its clips")
        if not data:
            raise ValueError("upload a CSV of `file name, label` lines")
        table = cached_table(table_key)
        title, values, names = labels_from_csv(bytes(data), table.names)
        uploaded = {"table": table.key, "title": title, "values": values.tolist(), "names": names}
        missing = names.index(UNLABELLED) if UNLABELLED in names else -1
        labelled = int(np.sum(values != missing))
        note = f"{title}: {len(names)} values, {labelled} of {len(table)} clips labelled."
        return (
            uploaded,
            gr.update(choices=colour_choices(table, uploaded), value=title),
            map_figure(table, method, title, uploaded=uploaded),
            gr.update(choices=names, value=[], interactive=True),
            note,
        )

    @user_errors
    def export(
        self,
        table_key: str | None,
        selection: str,
        colour_by: str = NO_LABEL,
        uploaded: dict | None = None,
    ) -> tuple[str, str]:
        """(a downloadable list file, or a zip of it with the clips' mp4s; a note)."""
        if table_key is None:
            raise ValueError("press 'Map clips' first")
        table = cached_table(table_key)
        rows = parse_clip_numbers(selection, len(table))
        labels, names = label_of(table, colour_by, uploaded)
        # Always a fresh folder inside this process's output folder: nothing the page sends
        # names a place on the server.
        folder = new_output_path("selection", "")
        list_file = export_selection(table, rows, folder, labels, names)
        labelled = f", labelled by {colour_by}" if labels is not None else ""
        if table.video_paths is not None:
            note = (
                f"{len(rows)} clips{labelled} as a list file of the videos' paths on this "
                "machine: train or evaluate on it with `data.path=selection.txt`."
            )
            return str(list_file), note
        archive = shutil.make_archive(
            str(folder), "zip", root_dir=output_dir(), base_dir=folder.name
        )
        note = (
            f"{len(rows)} physics clips{labelled} as mp4s with a list file `selection.txt` "
            "beside them, zipped: unzip and train or evaluate with "
            f"`data.path={folder.name}/selection.txt`."
        )
        return archive, note

    @user_errors
    def show_hover(self, table_key: str | None, hovered: str) -> tuple[Any, Any]:
        """(the hovered clip, labelled with its number only so the label fits above the image;
        its labels in full beside it)."""
        if table_key is None or not (hovered or "").strip():
            return gr.skip(), gr.skip()
        table = cached_table(table_key)
        row = parse_clip_numbers(hovered, len(table))[0]
        image = gr.update(value=thumbnail(table, row, HOVER_PX), label=_caption(row))
        return image, _labels_line(table, row)


def build(ctx: AppContext, bundle: gr.Dropdown) -> None:
    handlers = EmbeddingHandlers(ctx)
    table_key = gr.State(None)
    uploaded = gr.State(None)  # labels read from the user's CSV, for the current map
    gr.Markdown(
        "A map of many clips: each point is one clip's mean feature. **Hover** a point to see "
        "the clip; **lasso** or **click** points to see them and their nearest neighbours "
        "(with their cosine distance *d*). Colour by any label, the physics world's background "
        "included, or upload a CSV of `file name, label` lines; **Show only** filters the map "
        "by the colour's values; **Export** saves the selection as a list file (`path label` "
        "lines) that training and evaluation take as `data.path=`."
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
        shown_values = gr.Dropdown(
            [], value=[], multiselect=True, label="Show only (empty: all clips)"
        )
        method = gr.Radio(list(METHODS), value="PCA", label="Map")
        run = gr.Button("Map clips", variant="primary", elem_id="embedding-button")
    status = gr.Markdown(elem_id="embedding-status")
    with gr.Row():
        with gr.Column(scale=3):
            plot = gr.Plot(label="Clip map", elem_id="embedding-map")
        with gr.Column(scale=1):
            hovered = gr.Image(label="Hovered clip", height=260, elem_id="embedding-hovered")
            hovered_labels = gr.Markdown(elem_id="embedding-hovered-labels")
            selection = gr.Textbox(
                label="Selected clips",
                placeholder="3, 17 or 3-17",
                elem_id="embedding-selection",
            )
            with gr.Row():
                show = gr.Button("Show selection", elem_id="embedding-show")
                export = gr.Button("Export selection", elem_id="embedding-export")
            exported = gr.File(label="Exported list file", height=80)
            csv_file = gr.File(
                label="Labels CSV (file name, label)",
                file_types=[".csv", ".tsv", ".txt"],
                type="binary",
                height=80,
            )
    note = gr.Markdown()
    selected = gr.Gallery(
        label="Selected clips",
        columns=8,
        height=260,
        fit_columns=False,
        elem_id="embedding-selected",
    )
    neighbours = gr.Gallery(
        label="Nearest neighbours",
        columns=8,
        height=260,
        fit_columns=False,
        elem_id="embedding-neighbours",
    )
    hover_box = gr.Textbox(visible="hidden", elem_id="embedding-hover")
    hover_button = gr.Button(visible="hidden", elem_id="embedding-hover-button")

    run.click(
        handlers.map_clips,
        [bundle, source, count, folder, colour_by],
        [plot, table_key, colour_by, method, status],
        api_name="map_clips",
    ).then(
        handlers.filter_choices,
        [table_key, colour_by, uploaded],
        shown_values,
        api_visibility="undocumented",
    )
    redraw_inputs = [table_key, method, colour_by, shown_values, uploaded]
    colour_by.input(
        handlers.filter_choices,
        [table_key, colour_by, uploaded],
        shown_values,
        api_visibility="undocumented",
    ).then(handlers.redraw, redraw_inputs, plot, api_visibility="undocumented")
    for control in (method, shown_values):
        control.input(handlers.redraw, redraw_inputs, plot, api_visibility="undocumented")
    csv_file.upload(
        handlers.upload_labels,
        [table_key, csv_file, method],
        [uploaded, colour_by, plot, shown_values, note],
        api_visibility="undocumented",
    )
    export.click(
        handlers.export,
        [table_key, selection, colour_by, uploaded],
        [exported, note],
        api_name="export_selection",
    )
    show.click(
        handlers.show_selection,
        [table_key, selection],
        [selected, neighbours, note],
        api_name="show_selection",
    ).success(
        handlers.compact_selection,
        [table_key, selection],
        selection,
        api_visibility="undocumented",
    )
    hover_button.click(
        handlers.show_hover,
        [table_key, hover_box],
        [hovered, hovered_labels],
        show_progress="hidden",
        api_visibility="undocumented",
    )
