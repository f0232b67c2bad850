"""Decoder quality: PSNR and SSIM inside the masked region on held-out clips, per mask family.

Compares, on the same held-out clips and masks,
* the bundle's decoder on predicted latents (the product),
* a decoder fitted the same way on the target encoder's latents (upper-bound reference),
* a decoder fitted the same way on the run's models as initialised, never trained (how much
  of the result comes from what V-JEPA learned),
* two baselines without learning: mean colour of the visible pixels, nearest visible copy;
and measures which predictor mask token suits painted masks (latent L1 error to the target
latents with each token, by share of hidden tokens). Writes the decoder section of
docs/results.md (between its markers) and a JSON record.

    python benchmarks/decoder_quality.py                     # the starter bundle
    python benchmarks/decoder_quality.py --bundle runs/x/bundle.safetensors --clips 128

Reference decoders are fitted into --work, in a folder named after the bundle file's digest:
reused when the same bundle is measured again, never for a rebuilt one.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import shlex
import sys
import time
from pathlib import Path

import torch

from decoder.bundle import STARTER_PATH, Bundle, load_bundle
from decoder.config import DecoderConfig
from decoder.evaluation import (
    baseline_methods,
    decoder_method,
    held_out_batches,
    held_out_objects,
    score_methods,
)
from decoder.fit import EVAL_FAMILIES, fit_decoder
from decoder.latents import predicted_latents, target_latents, token_mask_set
from decoder.masks import LONG_RANGE_FROM, PAINTED_FAMILIES
from decoder.provenance import git_commit
from train.config import from_dict, to_dict
from train.data import normalize_clip
from train.doc_sections import replace_section
from train.pretrained import initial_models
from train.tokens import TokenGeometry

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "docs" / "results.md"
SECTION = "decoder"  # of docs/results.md
FAMILY_NOTES = {
    "multiblock-short": "pretraining short-range set: 8 blocks of 15% of the frame, whole clip",
    "multiblock-long": "pretraining long-range set: 2 blocks of 70% of the frame, whole clip",
    "blob": "one painted-style ellipse (8-35% of the frame) over some time steps",
    "tube": "the same ellipse through the whole clip",
    "future": "every frame from a random time step on",
}
SHARE_BINS = (0.0, 0.25, 0.5, 0.75, 1.0)


def reference_dir(work: str | Path, bundle_path: str | Path) -> Path:
    """Where the reference decoders of this bundle go: a folder named after the first 12 hex
    digits of the file's SHA-256, so a rebuilt bundle never reuses another model's fits."""
    digest = hashlib.sha256()
    with open(bundle_path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return Path(work) / digest.hexdigest()[:12]


def fit_reference(bundle: Bundle, pretrained, latents: str, out: Path, steps: int):
    """A decoder fitted like the bundle's (same config) on other latents or models."""
    data = {**to_dict(bundle.decoder_config), "latents": latents, "out": str(out)}
    data.update(steps=steps, resume=True)
    data["optim"]["warmup_steps"] = min(data["optim"]["warmup_steps"], steps)
    cfg = from_dict(DecoderConfig, data)
    source = {"checkpoint": f"reference: {out.name}", "steps": pretrained.step}
    return fit_decoder(pretrained, cfg, source).decoder.eval()


@torch.no_grad()
def mask_token_study(bundle: Bundle, batches) -> dict:
    """Latent L1 (predicted vs target, mean over masked tokens) with each predictor token, per
    family and per bin of the share of hidden tokens."""
    pretrained = bundle.pretrained
    tokens = range(len(pretrained.predictor.mask_tokens))
    bins = list(itertools.pairwise(SHARE_BINS))
    per_family, per_bin = {}, {f"{low:.2f}-{high:.2f}": {"clips": 0} for low, high in bins}
    for family, batch in batches.items():
        clips = normalize_clip(batch.clips)
        masks = token_mask_set(batch.token_masks)
        target = target_latents(pretrained, clips, masks)
        valid = masks.target_valid
        shares = batch.token_masks.flatten(1).float().mean(1)
        errors = {}
        for token in tokens:
            predicted = predicted_latents(pretrained, clips, masks, token)
            per_token = (predicted - target).abs().mean(-1)
            errors[token] = (per_token * valid).sum(1) / valid.sum(1)  # per clip
        per_family[family] = {str(t): errors[t].mean().item() for t in tokens}
        for low, high in bins:
            inside = (shares >= low) & (shares < high if high < 1.0 else shares <= high)
            row = per_bin[f"{low:.2f}-{high:.2f}"]
            row["clips"] += int(inside.sum())
            for t in tokens:
                row.setdefault(str(t), []).extend(errors[t][inside].tolist())
    per_bin = {name: row for name, row in per_bin.items() if row["clips"]}
    for row in per_bin.values():
        for t in tokens:
            row[str(t)] = sum(row[str(t)]) / row["clips"]
    return {"per_family": per_family, "per_share_bin": per_bin}


def markdown(record: dict) -> str:
    scores, methods = record["scores"], record["methods"]
    lines = [
        "## Pixel decoder",
        "",
        "What V-JEPA predicts under a mask, decoded to pixels by a decoder that reads only the "
        "predictor's latents of the masked tokens (decoder/, paper §6). PSNR (dB) and SSIM "
        f"inside the masked region, {record['clips']} held-out clips per mask family (a "
        "physics world disjoint from the training one), same clips and masks for every method.",
        "",
        f"Model: {record['bundle_summary']}.",
        "",
        "```",
        record["command"],
        "```",
        "",
        "| mask family | " + " | ".join(methods) + " |",
        "|---|" + "---|" * len(methods),
    ]
    for family in record["families"]:
        cells = [f"{s['psnr']:.2f} / {s['ssim']:.3f}" for s in map(scores[family].get, methods)]
        lines.append(f"| {family} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Cells: PSNR / SSIM. Families: "
        + "; ".join(f"`{f}`: {FAMILY_NOTES[f]}" for f in record["families"])
        + ".",
        "",
        "- **decoder (predicted)**: the bundle's decoder on the predictor's latents; it never "
        "sees a pixel. **target-latent decoder**: same decoder fitted on the target encoder's "
        "latents of the region (that encoder saw the hidden pixels: an upper bound, not a "
        "prediction). **untrained V-JEPA**: same decoder fitted on the run's models as "
        "initialised at step 0 (positions and whatever random features carry).",
        "- **mean colour**: the mean colour of the clip's visible pixels. **nearest visible "
        "copy**: each hidden tubelet copies the co-located visible tubelet nearest in time "
        "(earlier on a tie); masks that span the whole clip (multiblock, tube) leave no "
        "co-located visible tubelet, so it falls back to the visible tubelet nearest in space "
        "on the token grid (then nearest in time).",
        "- PSNR: 10·log10(255² / MSE) over the masked pixels. SSIM: Gaussian window σ 1.5, "
        "11×11, per channel, averaged over the masked pixels of the frame with the method's "
        "fill (windows at the mask boundary also see original pixels, alike for all methods).",
        "",
    ]
    lines += _object_lines(record)
    lines += _mask_token_lines(record)
    lines += [
        "",
        f"Measured {record['date']} at commit `{record['git_commit']}` in "
        f"{record['seconds']:.0f} s (load average before the run: {record['load']}).",
    ]
    return "\n".join(lines)


def _object_lines(record: dict) -> list[str]:
    """The object-aware table (decoder/objects.py), when the clips come from the physics world."""
    scores, methods = record["scores"], record["methods"]
    families = [f for f in record["families"] if "centre_px" in scores[f][methods[0]]]
    if not families:
        return []
    lines = [
        "**Does the fill put the hidden object where it is?** Object-aware scores "
        "(decoder/objects.py): PSNR over the masked pixels an object covers, and the distance "
        "(px) between the hidden object's centre and the centre of what the fill draws there "
        "(its departure from the same scene rendered without objects), per frame; lower is "
        "better for the distance.",
        "",
        "| mask family | clips / frames | " + " | ".join(methods) + " |",
        "|---|---|" + "---|" * len(methods),
    ]
    for family in families:
        first = scores[family][methods[0]]
        counts = f"{first['object_clips']:.0f} / {first['centre_frames']:.0f}"
        cells = [
            f"{s['object_psnr']:.2f} dB / {s['centre_px']:.1f} px"
            for s in map(scores[family].get, methods)
        ]
        lines.append(f"| {family} | {counts} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _mask_token_lines(record: dict) -> list[str]:
    """The mask-token study: one column per predictor mask token (a causal predictor has one)."""
    study = record["mask_tokens"]
    tokens = sorted(next(iter(study["per_family"].values())).keys() - {"clips"}, key=int)
    if len(tokens) < 2:
        return [
            "**Which predictor mask token for painted masks.** The predictor learned one mask "
            "token (its pretraining had one mask set), so every mask uses it.",
        ]
    header = "| " + " | ".join(f"token {t}" for t in tokens) + " |"
    rule = "|---" * (len(tokens) + 1) + "|"
    lines = [
        "**Which predictor mask token for painted masks.** The predictor learned one mask token "
        "per pretraining mask set (for the paper's masks, 0: short-range, 1: long-range). "
        "Latent L1 error |predicted − target| over the masked tokens, mean per clip, with each "
        "token:",
        "",
        "| hidden share of tokens | clips " + header,
        "|---" + rule,
    ]
    for name, row in study["per_share_bin"].items():
        cells = " | ".join(f"{row[t]:.4f}" for t in tokens)
        lines.append(f"| {name} | {row['clips']} | {cells} |")
    lines += ["", "| mask family " + header, rule]
    for family, row in study["per_family"].items():
        lines.append(f"| {family} | " + " | ".join(f"{row[t]:.4f}" for t in tokens) + " |")
    lines += [
        "",
        "Decoder PSNR / SSIM on painted-style masks with each token (the decoder was fitted on "
        "these families with either token, so it reads both):",
        "",
        "| mask family " + header,
        rule,
    ]
    for family, row in study["decoder_by_token"].items():
        cells = [f"{row[t]['psnr']:.2f} / {row[t]['ssim']:.3f}" for t in tokens]
        lines.append(f"| {family} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Rule used by the decoder and the app (`decoder.masks.mask_index_for`): a painted mask "
        f"hiding at least {record['long_range_from']:.0%} of the clip's tokens uses the "
        "long-range token, a smaller one the short-range token; the pretraining presets use "
        "their own set's token.",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", default=str(STARTER_PATH))
    parser.add_argument("--clips", type=int, default=128, help="held-out clips per family")
    parser.add_argument("--work", default="runs/decoder_quality", help="reference fits go here")
    parser.add_argument(
        "--reference-steps", type=int, default=None, help="default: the bundle decoder's steps"
    )
    parser.add_argument("--no-docs", action="store_true", help="do not touch docs/results.md")
    parser.add_argument("--json", default=None, help="default: WORK/decoder_quality.json")
    args = parser.parse_args()

    started = time.perf_counter()
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    bundle = load_bundle(args.bundle)
    pretrained = bundle.pretrained
    geometry = TokenGeometry.from_model_config(bundle.config.model)
    work = reference_dir(args.work, args.bundle)
    steps = args.reference_steps or bundle.decoder_config.steps
    target_decoder = fit_reference(bundle, pretrained, "target", work / "target_latents", steps)
    untrained = initial_models(bundle.config)
    untrained_decoder = fit_reference(bundle, untrained, "predicted", work / "untrained", steps)

    batches = held_out_batches(bundle.config, EVAL_FAMILIES, args.clips)
    methods = [
        decoder_method("decoder (predicted)", pretrained, bundle.decoder),
        decoder_method("target-latent decoder", pretrained, target_decoder, "target"),
        decoder_method("untrained V-JEPA + decoder", untrained, untrained_decoder),
        *baseline_methods(geometry),
    ]
    objects = held_out_objects(bundle.config, args.clips)
    scores = score_methods(batches, methods, geometry, objects=objects)
    study = mask_token_study(bundle, batches)
    # The decoder was fitted on painted-style masks with either token, so it can read both.
    painted = {family: batches[family] for family in PAINTED_FAMILIES}
    per_token = [
        decoder_method(str(token), pretrained, bundle.decoder, mask_index=token)
        for token in range(len(pretrained.predictor.mask_tokens))
    ]
    study["decoder_by_token"] = score_methods(painted, per_token, geometry)
    record = {
        "command": shlex.join(["python", "benchmarks/decoder_quality.py", *sys.argv[1:]]),
        "bundle": args.bundle,
        "bundle_summary": bundle.summary(),
        "clips": args.clips,
        "families": list(EVAL_FAMILIES),
        "methods": [m.name for m in methods],
        "scores": scores,
        "mask_tokens": study,
        "long_range_from": LONG_RANGE_FROM,
        "reference_steps": steps,
        "git_commit": git_commit(),
        "date": time.strftime("%Y-%m-%d"),
        "load": load,
        "seconds": time.perf_counter() - started,
    }
    json_path = Path(args.json or work / "decoder_quality.json")
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(record, indent=2))
    text = markdown(record)
    print(text)
    if not args.no_docs:
        replace_section(RESULTS, SECTION, text)


if __name__ == "__main__":
    main()
