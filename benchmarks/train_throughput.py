"""Training throughput per preset and precision: clips/s, tokens/s, achieved FLOP/s, MFU, memory.

One full optimisation step is timed (target-encoder forward, encoder + predictor forward and
backward over every mask set, AdamW, EMA) on a fixed batch drawn from the preset's own data and
masks, so the figure is compute only; the data pipeline is timed separately (`data_ms`, one
process building one batch). FLOPs are counted once by torch's FlopCounterMode (matmuls and
attention; elementwise work is not counted, as usual for MFU). The peak is the dense matmul rate
measured in the same run at the same precision, so MFU says how much of what this machine can
do the step achieves. The fastest step is reported too (`best step`): on a shared machine the
median moves with the other jobs' load. Each row also records the masks of its batch: the
masking ratio per mask set and the share of index slots that are padding.

`--save FILE` writes the rows (and the load average, torch version and threads) as JSON;
`--baseline FILE` prints them side by side with a saved run's rows, as after / before ratios.

    python benchmarks/train_throughput.py                       # tiny_cpu, fp32 and bf16
    python benchmarks/train_throughput.py --baseline benchmarks/baselines/tiny_cpu_before.json
    python benchmarks/train_throughput.py --presets vits16 vitl16 --device cuda --batch 32
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from train.batches import StepBatches
from train.config import load_config
from train.ema import ema_update
from train.loop import Trainer
from train.step import autocast_dtype, forward_backward


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_peak(device: torch.device, precision: str, size: int, repeats: int) -> float:
    """Dense [size x size] @ [size x size] FLOP/s, median of `repeats` timed batches."""
    dtype = autocast_dtype(precision) or torch.float32
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    inner = 20 if device.type == "cuda" else 3
    for _ in range(2):
        a @ b
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        for _ in range(inner):
            a @ b
        sync(device)
        times.append((time.perf_counter() - start) / inner)
    return 2 * size**3 / statistics.median(times)


def measure(preset: str, precision: str, args) -> dict:
    overrides = [
        f"precision={precision}",
        "out=/dev/null/never-written",
        "data.num_workers=0",
        f"device={args.device}",
        "steps=1000",
        "optim.warmup_steps=10",
    ]
    if args.batch:
        overrides.append(f"data.batch_size={args.batch}")
    if preset != "tiny_cpu":
        # Paper geometry on the synthetic world: throughput does not depend on the pixels.
        overrides += ["data.source=synthetic", "data.micro_batch_size=null"]
    overrides += args.set
    cfg = load_config(preset, overrides)
    trainer = Trainer(cfg)
    batches = StepBatches(trainer.dataset, trainer.plan, trainer.masker, trainer.clip_shape)
    data_start = time.perf_counter()
    batch = batches[(0, 0)]
    data_ms = 1000 * (time.perf_counter() - data_start)
    batch = batch.to(trainer.device)

    def gradients() -> None:
        forward_backward(trainer.step_setup, [batch], with_monitors=False)

    def step() -> None:
        gradients()
        trainer.optimizer_step()
        ema_update(trainer.target_encoder, trainer.encoder, 0.999)

    with FlopCounterMode(display=False) as counter:
        gradients()
    trainer.optimizer.zero_grad(set_to_none=True)
    flops = counter.get_total_flops()
    if trainer.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for _ in range(args.warmup):
        step()
    times = []
    for _ in range(args.steps):
        sync(trainer.device)
        start = time.perf_counter()
        step()
        sync(trainer.device)
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    clips = batch.clips.shape[0]
    peak = matmul_peak(trainer.device, precision, args.matmul_size, repeats=5)
    if trainer.device.type == "cuda":
        memory_gib = torch.cuda.max_memory_allocated() / 2**30
    else:
        memory_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return {
        "preset": preset,
        "precision": precision,
        "device": str(trainer.device),
        "batch": clips,
        "tokens_per_clip": trainer.num_tokens,
        "step_s_median": seconds,
        "step_s_min": min(times),
        "step_s_max": max(times),
        "clips_per_s": clips / seconds,
        "clips_per_s_best": clips / min(times),
        "tokens_per_s": clips * trainer.num_tokens / seconds,
        "gflop_per_clip": flops / clips / 1e9,
        "achieved_tflops": flops / seconds / 1e12,
        "matmul_peak_tflops": peak / 1e12,
        "mfu": flops / seconds / peak,
        "peak_memory_gib": memory_gib,
        "data_ms_per_batch": data_ms,
        "compile": bool(cfg.compile),
        "mask_ratio": [m.masking_ratio(trainer.num_tokens) for m in batch.masks],
        "padding": statistics.mean(m.padding_fraction() for m in batch.masks),
    }


# The side-by-side comparison: (row key, title, format), before, after and after / before.
COMPARED = [
    ("clips_per_s", "clips/s", ".1f"),
    # The fastest step: on a shared machine other jobs only ever add time, so this is the
    # steadier figure when the load moves between two runs.
    ("clips_per_s_best", "best step", ".1f"),
    ("gflop_per_clip", "GFLOP/clip", ".2f"),
    ("mfu", "MFU", ".1%"),
    ("padding", "padding", ".1%"),
]


def row_key(row: dict) -> tuple:
    return row["preset"], row["precision"], row["batch"], row.get("compile", False)


def print_rows(rows: list[dict]) -> None:
    header = (
        f"{'preset':<10} {'prec':<5} {'batch':>5} {'tokens':>6} {'clips/s':>8} "
        f"{'tokens/s':>9} {'GFLOP/clip':>10} {'TFLOP/s':>8} {'peak':>6} {'MFU':>6} "
        f"{'mem GiB':>7} {'data ms':>7} {'padding':>7}"
    )
    print(header)
    for r in rows:
        print(
            f"{r['preset']:<10} {r['precision']:<5} {r['batch']:>5} {r['tokens_per_clip']:>6} "
            f"{r['clips_per_s']:>8.1f} {r['tokens_per_s']:>9.0f} {r['gflop_per_clip']:>10.2f} "
            f"{r['achieved_tflops']:>8.3f} {r['matmul_peak_tflops']:>6.2f} {r['mfu']:>6.1%} "
            f"{r['peak_memory_gib']:>7.2f} {r['data_ms_per_batch']:>7.1f} "
            f"{r.get('padding', float('nan')):>7.1%}"
        )


def print_comparison(rows: list[dict], baseline: dict) -> None:
    """Each row next to the baseline row of the same preset, precision and batch (the baseline's
    eager row when it has no compiled one)."""
    before = {row_key(r): r for r in baseline["rows"]}
    print(f"\nagainst {baseline['source']} (its load average: {baseline.get('load_average')})")
    print(f"{'preset':<10} {'prec':<5} {'compiled':<8} {'':<10} {'before':>9} {'after':>9} ratio")
    for r in rows:
        preset, precision, batch, compiled = row_key(r)
        ref = before.get(row_key(r)) or before.get((preset, precision, batch, False))
        label = f"{preset:<10} {precision:<5} {'yes' if compiled else 'no':<8}"
        if ref is None:
            print(f"{label} no baseline row of batch {batch}")
            continue
        for key, title, fmt in COMPARED:
            old, new = ref.get(key, float("nan")), r.get(key, float("nan"))
            ratio = f"{new / old:.2f}" if old else "-"
            print(f"{label} {title:<10} {format(old, fmt):>9} {format(new, fmt):>9} {ratio:>5}")
            label = " " * len(label)


def load_rows(path: Path) -> dict:
    """A saved run: {"rows": [...], ...}; a bare list of rows (older --json files) also works."""
    data = json.loads(path.read_text())
    if isinstance(data, list):
        data = {"rows": data}
    data["source"] = path.name
    for row in data["rows"]:  # rows saved before the best step was recorded
        row.setdefault("clips_per_s_best", row["batch"] / row["step_s_min"])
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="+", default=["tiny_cpu"])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--batch", type=int, default=None, help="per-device batch (default: preset)"
    )
    parser.add_argument("--steps", type=int, default=10, help="timed steps (median reported)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--matmul-size", type=int, default=2048)
    parser.add_argument("--set", nargs="*", default=[], help="extra key=value config overrides")
    parser.add_argument("--save", "--json", type=Path, help="also write the rows here (JSON)")
    parser.add_argument("--baseline", type=Path, help="compare with rows saved by --save")
    args = parser.parse_args()

    baseline = load_rows(args.baseline) if args.baseline else None  # fail before measuring
    load_before = os.getloadavg()
    rows = [measure(p, prec, args) for p in args.presets for prec in args.precisions]
    load_after = os.getloadavg()
    print_rows(rows)
    print(f"load average (1, 5, 15 min): before {load_before}, after {load_after}")
    if baseline is not None:
        print_comparison(rows, baseline)
    if args.save:
        saved = {
            "rows": rows,
            "load_average": {"before": load_before, "after": load_after},
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "settings": {
                key: getattr(args, key)
                for key in ("presets", "precisions", "device", "batch", "steps", "warmup", "set")
            },
        }
        args.save.write_text(json.dumps(saved, indent=2))


if __name__ == "__main__":
    main()
