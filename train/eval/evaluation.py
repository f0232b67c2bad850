"""One frozen evaluation of one checkpoint: labelled data -> cached features -> probes -> report."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from train.config import Config, to_dict
from train.eval.config import EvalConfig
from train.eval.features import FeatureSet, cached_splits, extract
from train.eval.labelled import EvalDataError, labelled_splits
from train.eval.report import EvalReport
from train.eval.source import EvalSource, choose_encoder, open_source
from train.eval.suite import ProbeResult, ProbeSuite, majority_share
from train.loop import resolve_device
from train.models import VisionTransformer

log = logging.getLogger("train.eval")


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
    encoder = choose_encoder(source.pretrained, cfg.encoder)
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
        out = cfg.out or source.eval_dir / f"results-{cfg.encoder}.json"
        log.info("results written to %s", report.write(out))
    return report
