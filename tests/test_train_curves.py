"""The "is it learning?" curve of the Train tab and the notebooks: the intuitive-physics
yardstick's matched-set accuracy read from a run's metrics log, drawn against its first value
and chance, live (plotly) and static (matplotlib, for executed notebooks)."""

from __future__ import annotations

import math

import pytest

from train.monitor import MetricsLog, read_metrics
from workbench.train_curves import (
    CHANCE,
    curves_image,
    physics_figure,
    physics_points,
    physics_summary,
)

# The yardstick at steps 1, 50 and 100 (and one NaN record, as a failed measurement logs);
# the loss at every step, as `python -m train` writes it with monitor.log_every=1.
PHYSICS = {1: 0.5625, 50: 0.65625, 100: 0.75}


@pytest.fixture
def records(tmp_path):
    log = MetricsLog(tmp_path / "metrics.jsonl")
    for step in range(1, 101):
        record = {"step": step, "loss": 1.0 / step}
        if step in PHYSICS:
            record.update(physics=0.4, physics_matched=PHYSICS[step])
        if step == 75:
            record["physics_matched"] = math.nan
        log.write(record)
    return read_metrics(tmp_path / "metrics.jsonl")


def test_the_points_are_the_matched_sets_of_the_log(records):
    assert physics_points(records) == (list(PHYSICS), list(PHYSICS.values()))


def test_the_live_figure_marks_the_first_value_and_chance(records):
    fig = physics_figure(records)
    (trace,) = fig.data
    assert list(trace.x) == [1, 50, 100] and list(trace.y) == list(PHYSICS.values())
    lines = sorted(shape.y0 for shape in fig.layout.shapes)
    assert lines == [CHANCE, PHYSICS[1]]
    notes = {a.text for a in fig.layout.annotations}
    assert notes == {"chance 50%", "step 1: 56%"}
    assert fig.layout.title.text == "Intuitive physics (matched sets)"
    assert tuple(fig.layout.yaxis.range) == (0, 1)


def test_before_any_measurement_the_figure_says_so():
    fig = physics_figure([{"step": 1, "loss": 0.9}])
    assert len(fig.data[0].x) == 0 and not fig.layout.shapes
    assert fig.layout.title.text == "Intuitive physics (not measured yet)"
    assert fig.layout.annotations[0].text == "no data yet"
    assert physics_summary([{"step": 1, "loss": 0.9}]) == ""


def test_the_summary_gives_the_rise_in_points(records):
    assert physics_summary(records) == (
        "intuitive physics (matched sets, chance 50%): 56% at step 1 -> 75% at step 100 "
        "(+19 points)"
    )
    assert physics_summary(records[:1]).endswith("56% at step 1")


def test_the_static_image_holds_both_curves_and_is_saved(records, tmp_path):
    path = tmp_path / "curves.png"
    fig = curves_image(records, "a run", path)
    loss_ax, physics_ax = fig.axes
    (loss_line,) = loss_ax.lines
    assert list(loss_line.get_xdata()) == list(range(1, 101))
    chance, start, curve = physics_ax.lines
    assert list(chance.get_ydata()) == [CHANCE, CHANCE]
    assert list(start.get_ydata()) == [PHYSICS[1]] * 2
    assert list(curve.get_xdata()) == [1, 50, 100]
    assert list(curve.get_ydata()) == list(PHYSICS.values())
    assert path.read_bytes().startswith(b"\x89PNG")
