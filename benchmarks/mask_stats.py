"""The masking ratio a model really trains on, per mask set: exact masks padded to the batch
maximum, exact masks made equal-size per batch (`mask.equal_sizes`), and the original code's
truncation of every sample to the batch minimum; with the padding share each way.

    python benchmarks/mask_stats.py                        # paper masks at 16 x 224 (8x14x14)
    python benchmarks/mask_stats.py --preset vitl16        # a preset's masks on its own grid
    python benchmarks/mask_stats.py --grid 4 8 8           # paper masks, tiny_cpu geometry
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from train.config import MaskConfig, load_config
from workbench.lab.mask_study import masking_ratios


def mask_setup(args) -> tuple[MaskConfig, tuple[int, int, int], int]:
    """The mask config, token grid and tubelet size to measure."""
    if args.preset is None:
        grid = tuple(args.grid or (8, 14, 14))
        return MaskConfig(), grid, 2
    # The masks do not depend on the data: the synthetic source spares a data.path.
    cfg = load_config(args.preset, ["data.source=synthetic"])
    m = cfg.model
    grid = (m.num_frames // m.tubelet_size, m.img_size // m.patch_size, m.img_size // m.patch_size)
    return cfg.mask, tuple(args.grid or grid), m.tubelet_size


COLUMNS = {
    "padded": "ratio padded",
    "equal": "ratio equal",
    "truncated": "ratio truncated",
    "hidden": "ctx lost (trunc.)",
    "pad_padded": "padding (padded)",
    "pad_equal": "padding (equal)",
}
PERCENT_COLUMNS = ("hidden", "pad_padded", "pad_equal")


def measure(mask_cfg: MaskConfig, grid, tubelet: int, batch: int, batches: int) -> list[dict]:
    """Per mask set, the mean of each column over `batches` batches of `batch` samples; padded
    and equal-size masks are drawn from the same seeds (the masks notebook's measurement)."""
    padded = masking_ratios(replace(mask_cfg, equal_sizes=False), grid, tubelet, batch, batches)
    equal = masking_ratios(replace(mask_cfg, equal_sizes=True), grid, tubelet, batch, batches)
    # Truncation keeps every sample's context down to the batch's smallest: the largest ratio.
    per_sample = padded.sample_ratios.reshape(len(padded.batch_ratios), batches, batch)
    truncated = per_sample.max(-1)
    columns = {
        "padded": padded.batch_ratios,
        "equal": equal.batch_ratios,
        "truncated": truncated,
        "hidden": 1 - (1 - truncated) / (1 - padded.batch_ratios),
        "pad_padded": padded.padding,
        "pad_equal": equal.padding,
    }
    return [
        {key: float(values[k].mean()) for key, values in columns.items()}
        for k in range(len(padded.batch_ratios))
    ]


def set_names(mask_cfg: MaskConfig, count: int) -> list[str]:
    """ "8 x 0.15" for a multiblock set (blocks x spatial scale), "set k" for any other."""
    names = []
    if mask_cfg.strategy == "multiblock":
        names = [f"{s.num_blocks} x {s.spatial_scale[0]:g}" for s in mask_cfg.multiblock]
    return names + [f"set {k}" for k in range(len(names), count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", help="measure this preset's masks (default: the paper's)")
    parser.add_argument("--grid", type=int, nargs=3, metavar=("T", "H", "W"))
    parser.add_argument("--batch", type=int, default=24, help="per-device batch")
    parser.add_argument("--batches", type=int, default=200)
    args = parser.parse_args()

    mask_cfg, grid, tubelet = mask_setup(args)
    rows = measure(mask_cfg, grid, tubelet, args.batch, args.batches)
    tokens = grid[0] * grid[1] * grid[2]
    source = args.preset or "paper masks"
    print(f"{source}: grid {grid} = {tokens} tokens, batch {args.batch}, {args.batches} batches\n")
    print(f"{'mask set':<12} " + " ".join(f"{title:>17}" for title in COLUMNS.values()))
    for name, row in zip(set_names(mask_cfg, len(rows)), rows):
        cells = [
            f"{row[key]:>17.1%}" if key in PERCENT_COLUMNS else f"{row[key]:>17.3f}"
            for key in COLUMNS
        ]
        print(f"{name:<12} " + " ".join(cells))


if __name__ == "__main__":
    main()
