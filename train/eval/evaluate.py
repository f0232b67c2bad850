"""One frozen evaluation of one checkpoint: labelled data -> cached features -> probes -> report."""

from __future__ import annotations

import logging
import time

from train.config import to_dict
from train.eval.config import EvalConfig
from train.eval.features import FeatureSet, cached_splits, extract
from train.eval.labelled import EvalDataError, labelled_splits
from train.eval.report import EvalReport
from train.eval.source import EvalSource, choose_encoder, open_source
from train.eval.suite import ProbeSuite, majority_share
from train.loop import resolve_device

log = logging.getLogger("train.eval")


def extraction_settings(source: EvalSource, cfg: EvalConfig, data: dict, precision: str) -> dict:
    """Everything cached features depend on (the probes' settings are not among them)."""
    model = to_dict(source.config.model)
    weights = source.identity() if cfg.encoder != "random_init" else {"seed": source.config.seed}
    return {
        "weights": weights,
        "encoder": cfg.encoder,
        "model": model,
        "data": data,
        "precision": precision,
    }


def load_features(source: EvalSource, cfg: EvalConfig) -> tuple[FeatureSet, FeatureSet, dict]:
    """(train, val, data description) features of the chosen encoder, cached under eval/."""
    splits = labelled_splits(source.config, cfg.data)
    precision = source.config.precision if cfg.precision == "run" else cfg.precision
    device = resolve_device(cfg.device)
    data = {**splits.description, "train_clips": len(splits.train), "val_clips": len(splits.val)}

    def compute() -> tuple[FeatureSet, FeatureSet]:
        encoder = choose_encoder(source.pretrained, cfg.encoder).to(device)
        run = lambda dataset: extract(
            encoder,
            dataset,
            device=device,
            precision=precision,
            batch_size=cfg.data.batch_size,
            num_workers=cfg.data.num_workers,
        )
        return run(splits.train), run(splits.val)

    cache_dir = source.eval_dir if cfg.cache else None
    settings = extraction_settings(source, cfg, data, precision)
    train, val, _ = cached_splits(cache_dir, settings, compute)
    missing = [name for name in cfg.label_names() if name not in train.labels]
    if missing:
        raise EvalDataError(
            f"labels {missing} are not in the data; it has {sorted(train.labels)}. "
            f"Choose with labels=[...]"
        )
    return train, val, {**data, "class_names": splits.class_names}


def evaluate_source(source: EvalSource, cfg: EvalConfig) -> EvalReport:
    started = time.perf_counter()
    train, val, data = load_features(source, cfg)
    class_names = data.pop("class_names")
    extracted = time.perf_counter()
    heads = cfg.probe.attentive_heads or source.pretrained.target_encoder.num_heads
    settings = to_dict(cfg)
    settings["probe"]["attentive_heads"] = heads
    suite = ProbeSuite(train, val, class_names, cfg, heads, resolve_device(cfg.device))
    results = suite.run()
    return EvalReport(
        run_dir=str(source.run_dir),
        checkpoint=str(source.checkpoint),
        step=source.pretrained.step,
        encoder=cfg.encoder,
        data=data,
        chance={name: majority_share(val.labels[name]) for name in cfg.label_names()},
        results=results,
        settings=settings,
        seconds={
            "features": extracted - started,
            "probes": time.perf_counter() - extracted,
        },
    )


def evaluate(path: str, cfg: EvalConfig, write: bool = True) -> EvalReport:
    """Evaluate the checkpoint at `path` (run directory or file); write the JSON result file."""
    source = open_source(path)
    report = evaluate_source(source, cfg)
    if write:
        out = cfg.out or source.eval_dir / f"results-{cfg.encoder}.json"
        log.info("results written to %s", report.write(out))
    return report
