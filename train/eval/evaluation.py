"""A frozen evaluation of one checkpoint: labelled data -> features -> probes -> EvalReport.

The report is a JSON file for machines and a table for people.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from train.config import Config, ConfigError, to_dict
from train.eval.config import EvalConfig
from train.eval.features import FeatureSet, cached_splits, extract
from train.eval.labelled import EvalDataError, labelled_splits
from train.eval.protocol import ProbeResult, ProbeSuite, majority_share
from train.eval.source import EvalSource, choose_encoder, first_blocks, open_source
from train.models import VisionTransformer
from train.runtime import resolve_device

log = logging.getLogger("train.eval")


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
        depth = self.settings.get("blocks")
        blocks = "" if depth is None else f"  after block {depth}"
        return "\n".join(
            [
                f"{self.run_dir}  step {self.step}  encoder={self.encoder}{blocks}",
                f"{self.data['source']} data: {counts}, accuracy on "
                f"{self.data.get('val_clips', '?')} held-out clips, % over seeds {seeds}",
                line(header),
                line(["-" * w for w in widths]),
                *(line(row) for row in rows),
                f"chance (majority class): {chance}",
            ]
        )


def splits_features(
    run_cfg: Config,
    encoder: VisionTransformer,
    cfg: EvalConfig,
    weights: dict[str, Any],
    cache_dir: Path | None,
) -> tuple[FeatureSet, FeatureSet, dict[str, Any]]:
    """(train, val, data description) token features of `encoder` on the labelled splits.

    `weights` identifies the encoder's weights for the cache key; `cache_dir=None`: no cache.
    """
    splits = labelled_splits(run_cfg, cfg.data)
    missing = [name for name in cfg.label_names() if name not in splits.class_names]
    if missing:
        raise EvalDataError(
            f"labels {missing} are not in the data, which has {sorted(splits.class_names)}; "
            "choose with labels=[...]"
        )
    precision = run_cfg.precision if cfg.precision == "run" else cfg.precision
    device = resolve_device(cfg.device)
    data = {**splits.description, "train_clips": len(splits.train), "val_clips": len(splits.val)}

    def compute() -> tuple[FeatureSet, FeatureSet]:
        encoder.to(device)
        run = lambda dataset: extract(
            encoder,
            dataset,
            device=device,
            precision=precision,
            batch_size=cfg.data.batch_size,
            num_workers=cfg.data.num_workers,
        )
        return run(splits.train), run(splits.val)

    settings = {
        "weights": weights,
        "encoder": cfg.encoder,
        **({"blocks": cfg.blocks} if cfg.blocks is not None else {}),
        "model": to_dict(run_cfg.model),
        "data": data,
        "precision": precision,
    }
    train, val = cached_splits(cache_dir, settings, compute)
    return train, val, {**data, "class_names": splits.class_names}


def probe_features(
    train: FeatureSet,
    val: FeatureSet,
    data: dict[str, Any],
    cfg: EvalConfig,
    encoder: VisionTransformer,
) -> tuple[list[ProbeResult], dict[str, Any], dict[str, float]]:
    """(results, resolved settings, chance per label) of the whole probe protocol."""
    heads = cfg.probe.attentive_heads or encoder.num_heads
    settings = to_dict(cfg)
    settings["probe"]["attentive_heads"] = heads
    device = resolve_device(cfg.device)
    names = data["class_names"]
    suite = ProbeSuite(train, val, names, cfg, heads, encoder.grid_size, device)
    chance = {name: majority_share(val.labels[name]) for name in cfg.label_names()}
    return suite.run(), settings, chance


def evaluate_source(source: EvalSource, cfg: EvalConfig) -> EvalReport:
    started = time.perf_counter()
    try:
        encoder = first_blocks(choose_encoder(source.pretrained, cfg.encoder), cfg.blocks)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    weights = (
        {"initialised_with_seed": source.config.seed}
        if cfg.encoder == "random_init"
        else source.identity()
    )
    cache_dir = source.eval_dir if cfg.cache else None
    train, val, data = splits_features(source.config, encoder, cfg, weights, cache_dir)
    extracted = time.perf_counter()
    results, settings, chance = probe_features(train, val, data, cfg, encoder)
    data.pop("class_names")
    return EvalReport(
        run_dir=str(source.run_dir),
        checkpoint=str(source.checkpoint),
        step=0 if cfg.encoder == "random_init" else source.pretrained.step,
        encoder=cfg.encoder,
        data=data,
        chance=chance,
        results=results,
        settings=settings,
        seconds={"features": extracted - started, "probes": time.perf_counter() - extracted},
    )


def evaluate(path: str | Path, cfg: EvalConfig, write: bool = True) -> EvalReport:
    """Evaluate the checkpoint at `path` (run directory or file); write the JSON result file."""
    source = open_source(path)
    report = evaluate_source(source, cfg)
    if write:
        blocks = "" if cfg.blocks is None else f"-blocks{cfg.blocks}"
        out = cfg.out or source.eval_dir / f"results-{cfg.encoder}{blocks}.json"
        log.info("results written to %s", report.write(out))
    return report
