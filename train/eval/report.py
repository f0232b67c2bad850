"""The result of a frozen evaluation: a JSON file for machines and a table for people."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from train.eval.suite import ProbeResult


@dataclass
class EvalReport:
    run_dir: str
    checkpoint: str
    step: int
    encoder: str
    data: dict[str, Any]
    chance: dict[str, float]  # per label: the majority class's share of the held-out split
    results: list[ProbeResult]
    settings: dict[str, Any]  # the EvalConfig, as plain data
    seconds: dict[str, float] = field(default_factory=dict)  # extraction, probes

    def result(self, label: str, probe: str, fraction: float = 1.0) -> ProbeResult:
        for r in self.results:
            if (r.label, r.probe, r.fraction) == (label, probe, fraction):
                return r
        raise KeyError(f"no result for label={label} probe={probe} fraction={fraction}")

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["results"] = [
            {**asdict(r), "mean": r.mean, "std": r.std, "seeds": self.settings["seeds"]}
            for r in self.results
        ]
        return data

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        return path

    def table(self) -> str:
        """Accuracy (%) mean ± std over seeds, one row per label and probe, one column per
        fraction of the labelled clips."""
        fractions = sorted({r.fraction for r in self.results})
        header = ["label", "probe"] + [f"{100 * f:g}% labels" for f in fractions]
        rows = []
        for label in dict.fromkeys(r.label for r in self.results):
            for probe in dict.fromkeys(r.probe for r in self.results if r.label == label):
                cells = [label, probe]
                for fraction in fractions:
                    try:
                        r = self.result(label, probe, fraction)
                    except KeyError:
                        cells.append("-")
                        continue
                    cells.append(f"{100 * r.mean:5.1f} ± {100 * r.std:4.1f}")
                rows.append(cells)
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
        line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
        seeds = self.settings["seeds"]
        chance = ", ".join(f"{k} {100 * v:.1f}" for k, v in self.chance.items())
        counts = f"{self.data.get('train_clips', '?')} probe-training clips"
        return "\n".join(
            [
                f"{self.run_dir}  step {self.step}  encoder={self.encoder}",
                f"{self.data['source']} data: {counts}, accuracy on "
                f"{self.data.get('val_clips', '?')} held-out clips, % over seeds {seeds}",
                line(header),
                line(["-" * w for w in widths]),
                *(line(row) for row in rows),
                f"chance (majority class): {chance}",
            ]
        )
