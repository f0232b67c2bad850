"""A big model on a CPU: what one Predict costs for V-JEPA 2's ViT-L at 16 frames x 256 px.

    OMP_NUM_THREADS=2 python benchmarks/big_model_cpu.py             # every setting, a table
    python benchmarks/big_model_cpu.py --settings fp32 bf16 --threads 2
    OMP_NUM_THREADS=1 python benchmarks/big_model_cpu.py --open-only --threads 1  # opening only

The model is the `vitl16_v2` preset (ViT-L/16, 3-D RoPE, the 384 x 12 predictor) with its
step-0 random weights: nothing is downloaded, and the cost of a Predict does not depend on what
the weights hold. It is opened the way `python -m workbench --model PATH --weights W --frames N
--img-size S` opens one (workbench.bundles.opened_with), then one Predict runs as the app's
Predict tab runs it without a decoder:

* prediction: `workbench.latent_view.latent_view` — the encoder on the context tokens, the
  predictor on the masked tokens, the target encoder on the whole clip, the PCA colours;
* step-0 reference: `workbench.step0.untrained_surprise` — the same on the untrained model of
  the same architecture, which the app builds on the first Predict (then keeps).

Each setting runs in its own process, so that peaks do not mix: the peak resident memory while
opening (VmHWM; the fp32 weights exist before a cast to bf16), then the peak reset
(/proc/self/clear_refs) and measured again over the Predict, and the process's ru_maxrss. One
cold run per setting (the first Predict after opening, as a user meets it; no warm-up). The
predictor's output is kept to compare bf16 with fp32 on the same weights, clip and mask. The
load average is printed before and after: other work on the machine slows every figure here.

The "open" rows measure opening a file, as a user opens an imported release: the model's
random weights are written once as an imported run (train.released.write_run: encoder,
predictor and target encoder in fp32), then each precision opens that run in a fresh process
through the app's registry (`--model RUN --weights W`), and the peak resident memory of that
process (VmHWM: it counts the file's pages the process maps as well) is read once it is open.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

PRESET = "vitl16_v2"
MASK = "multiblock-short"  # the paper's 8 small blocks: about half the tokens hidden
# name -> (weights, frames, pixels); None keeps the preset's 16 x 256.
SETTINGS = {
    "fp32": ("fp32", None, None),
    "bf16": ("bf16", None, None),
    "fp32-8x256": ("fp32", 8, None),
    "bf16-8x256": ("bf16", 8, None),
    "bf16-16x160": ("bf16", None, 160),
}
# Opening a file: name -> (weights, what is opened: the imported run's checkpoint, or a bundle
# of the same weights in fp16 with a pixel decoder, as `make starter` writes them).
OPEN_SETTINGS = {
    "open-fp32": ("fp32", "run"),
    "open-bf16": ("bf16", "run"),
    "open-bundle-fp32": ("fp32", "bundle"),
    "open-bundle-bf16": ("bf16", "bundle"),
}
# Beside the run, not in it: a bundle inside a run directory is what `--model RUN` would open.
BUNDLE_SUFFIX = "-bundle.safetensors"


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _reset_peak() -> bool:
    """Start VmHWM afresh (Linux); False where the kernel does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def measure_one(name: str, threads: int, latents_path: Path | None) -> dict:
    """One setting, in this process: open, one Predict, the figures as a dict."""
    import torch

    torch.set_num_threads(threads)
    from decoder.bundle import without_decoder
    from train.config import load_config
    from train.pretrained import initial_models
    from workbench.bundles import OpenOptions, opened_with
    from workbench.latent_view import latent_view
    from workbench.step0 import untrained_surprise

    weights, frames, pixels = SETTINGS[name]
    started = time.perf_counter()
    # The data section is never read here; synthetic clips make the preset valid without a folder.
    config = load_config(PRESET, ["data.source=synthetic"])
    bundle = without_decoder(initial_models(config), {"pretrain": {"steps": 0}})
    bundle = opened_with(bundle, OpenOptions(weights, frames, pixels))
    open_s = time.perf_counter() - started
    open_peak_kib, open_rss_kib = _status_kib("VmHWM"), _status_kib("VmRSS")
    parameter_bytes = sum(
        p.numel() * p.element_size() for part in bundle.modules() for p in part.parameters()
    )

    generator = torch.Generator().manual_seed(0)
    shape = (3, bundle.num_frames, bundle.img_size, bundle.img_size)
    clip = torch.randint(0, 256, shape, generator=generator, dtype=torch.uint8)
    mask, mask_index = bundle.preset_mask(MASK, seed=0)
    kept: list[torch.Tensor] = []
    bundle.predictor.register_forward_hook(lambda _m, _i, out: kept.append(out.float()))

    reset = _reset_peak()
    started = time.perf_counter()
    view = latent_view(bundle, clip, mask, mask_index)
    predict_s = time.perf_counter() - started
    started = time.perf_counter()
    untrained_surprise(bundle, clip, view.token_mask, view.mask_index)
    step0_s = time.perf_counter() - started
    if latents_path is not None:
        torch.save(kept[0], latents_path)
    return {
        "setting": name,
        "weights": weights,
        "clip": f"{bundle.num_frames} x {bundle.img_size}",
        "tokens": int(mask.numel()),
        "hidden": round(float(mask.float().mean()), 3),
        "threads": threads,
        "parameter_gib": parameter_bytes / 2**30,
        "open_s": open_s,
        "predict_s": predict_s,
        "step0_s": step0_s,
        "rss_after_open_gib": open_rss_kib / 2**20,
        "peak_open_gib": open_peak_kib / 2**20,
        "peak_predict_gib": _status_kib("VmHWM") / 2**20 if reset else None,
        "maxrss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    }


def write_random_run(run_dir: Path) -> dict:
    """The preset's step-0 weights written as an imported run, and as a bundle (fp16 weights,
    a pixel decoder) beside it (in this process: the parent never holds a ViT-L)."""
    import torch

    from decoder.bundle import save_bundle
    from decoder.config import DecoderConfig
    from decoder.model import build_decoder
    from train.config import load_config
    from train.pretrained import initial_models
    from train.released import write_run
    from train.tokens import TokenGeometry

    config = load_config(PRESET, ["data.source=synthetic"])
    models = initial_models(config)
    checkpoint = write_run(models, run_dir)
    geometry = TokenGeometry.from_model_config(config.model)
    decoder_config = DecoderConfig()
    width = models.predictor.predictor_proj.out_features
    decoder = build_decoder(decoder_config.model, width, geometry.grid, geometry.patch_dim)
    bundle = save_bundle(
        run_dir.parent / f"{run_dir.name}{BUNDLE_SUFFIX}",
        models,
        decoder,
        decoder_config,
        {},
        weight_dtype=torch.float16,
    )
    return {
        "checkpoint_gib": checkpoint.stat().st_size / 2**30,
        "bundle_gib": bundle.stat().st_size / 2**30,
    }


def measure_open(name: str, threads: int, run_dir: Path) -> dict:
    """Open the run as `python -m workbench --model RUN --weights W` does; the figures."""
    import torch

    torch.set_num_threads(threads)
    from workbench.bundles import BundleRegistry, OpenOptions

    weights, opened = OPEN_SETTINGS[name]
    path = run_dir.parent / f"{run_dir.name}{BUNDLE_SUFFIX}" if opened == "bundle" else run_dir
    started = time.perf_counter()
    registry = BundleRegistry(
        run_dir.parent, run_dir / "no-starter", path, "--model", OpenOptions(weights)
    )
    bundle = registry.load(registry.default_key())
    open_s = time.perf_counter() - started
    parameter_bytes = sum(
        p.numel() * p.element_size() for part in bundle.modules() for p in part.parameters()
    )
    return {
        "setting": name,
        "weights": weights,
        "threads": threads,
        "parameter_gib": parameter_bytes / 2**30,
        "open_s": open_s,
        "rss_after_open_gib": _status_kib("VmRSS") / 2**20,
        "peak_open_gib": _status_kib("VmHWM") / 2**20,
    }


def run_setting(
    name: str, threads: int, latents_path: Path | None, run_dir: Path | None = None
) -> dict:
    """One setting in a child process (its own peaks), its figures back as JSON."""
    command = [sys.executable, __file__, "--one", name, "--threads", str(threads)]
    if latents_path is not None:
        command += ["--latents", str(latents_path)]
    if run_dir is not None:
        command += ["--run", str(run_dir)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO)
    if done.returncode != 0:
        raise RuntimeError(f"setting {name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def difference(reference_path: Path, other_path: Path) -> tuple[float, float]:
    """(max, mean) absolute difference of the predicted latents, over the reference's std."""
    import torch

    from train.pretrained import bf16_gap

    gap = bf16_gap(torch.load(reference_path), torch.load(other_path))
    return gap["max"], gap["mean"]


def table(rows: list[dict]) -> str:
    lines = [
        "| setting | clip (frames x px) | tokens (hidden) | weights | open | Predict: "
        "prediction + step-0 reference | peak RSS opening | peak RSS over Predict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        peak = row["peak_predict_gib"]
        lines.append(
            f"| {row['setting']} | {row['clip']} | {row['tokens']} ({row['hidden']:.0%}) | "
            f"{row['parameter_gib']:.2f} GiB | {row['open_s']:.0f} s | "
            f"{row['predict_s'] + row['step0_s']:.0f} s = {row['predict_s']:.0f} + "
            f"{row['step0_s']:.0f} s | {row['peak_open_gib']:.1f} GiB | "
            f"{'n/a' if peak is None else f'{peak:.1f} GiB'} |"
        )
    return "\n".join(lines)


def open_table(rows: list[dict], written: dict) -> str:
    lines = [
        "| setting | file | weights held | open | resident after opening | peak RSS opening |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        size = written["bundle_gib" if "bundle" in row["setting"] else "checkpoint_gib"]
        lines.append(
            f"| {row['setting']} | {size:.2f} GiB | {row['parameter_gib']:.2f} GiB | "
            f"{row['open_s']:.0f} s | {row['rss_after_open_gib']:.2f} GiB | "
            f"{row['peak_open_gib']:.2f} GiB |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS))
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument(
        "--open-only", action="store_true", help="only the open rows (a file opened afresh)"
    )
    parser.add_argument("--one", choices=[*SETTINGS, *OPEN_SETTINGS], help=argparse.SUPPRESS)
    parser.add_argument("--latents", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--run", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one in OPEN_SETTINGS:
        if not (args.run / "checkpoints").is_dir():
            print(json.dumps(write_random_run(args.run)))
            return 0
        print(json.dumps(measure_open(args.one, args.threads, args.run)))
        return 0
    if args.one:
        print(json.dumps(measure_one(args.one, args.threads, args.latents)))
        return 0

    load_before = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        run_dir = Path(scratch) / "vitl-random"
        written = run_setting("open-fp32", args.threads, None, run_dir)  # writes the run
        open_rows = [run_setting(name, args.threads, None, run_dir) for name in OPEN_SETTINGS]
        for row in open_rows:
            print(json.dumps(row), flush=True)
        if args.open_only:
            args.settings = []
        latents = {name: Path(scratch) / f"{name}.pt" for name in ("fp32", "bf16")}
        for name in args.settings:
            rows.append(run_setting(name, args.threads, latents.get(name)))
            print(json.dumps(rows[-1]), flush=True)
        gap = None
        if all(path.is_file() for path in latents.values()):
            gap = difference(latents["fp32"], latents["bf16"])
    load_after = os.getloadavg()
    print()
    print(open_table(open_rows, written))
    if rows:
        print()
        print(table(rows))
    if gap is not None:
        print(
            f"\nbf16 against fp32, predicted latents at 16 x 256: max |difference| "
            f"{gap[0]:.3f} std, mean {gap[1]:.4f} std"
        )
    print(
        f"\nload average (1, 5, 15 min) before {', '.join(f'{x:.2f}' for x in load_before)}; "
        f"after {', '.join(f'{x:.2f}' for x in load_after)}; {os.cpu_count()} CPUs, "
        f"{args.threads} torch threads"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
