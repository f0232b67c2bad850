"""Training and held-out batches for a decoder fit: clips of the run's own data, token masks of
the configured families, and the predictor mask token of each sample.

Deterministic like the core's pipeline (train/batches.py, whose plan and seed mixing this
reuses): a batch is a pure function of (seed, step), so a resumed fit sees the batches an
uninterrupted one would have, whatever the number of DataLoader workers.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

from decoder.config import DecoderConfig, MaskMix
from decoder.masks import sample_mask
from train.batches import BatchPlan, mix_seed
from train.config import Config, to_dict
from train.data import ClipDataset, Draw, build_dataset, draw_generator
from train.masks import num_mask_sets
from train.tokens import TokenGeometry

# Seed-stream tags, apart from the core's (train/batches.py uses 1-5).
FAMILY_DRAW, MASK_DRAW, HELD_OUT = 11, 12, 13
# The held-out clips come from a disjoint synthetic world: the run's seed plus this offset.
HELD_OUT_SEED_OFFSET = 7919
# Runs on files (videos, images) hold out this share of their items from the decoder's fit (at
# least one): the held-out clips are real files the decoder never trained on.
HELD_OUT_FILE_SHARE = 0.1


@dataclass
class DecoderBatch:
    """uint8 clips [B, C, T, H, W]; token masks bool [B, T', H', W']; mask_index long [B]."""

    clips: torch.Tensor
    token_masks: torch.Tensor
    mask_index: torch.Tensor

    def to(self, device: torch.device | str) -> DecoderBatch:
        return DecoderBatch(*(t.to(device) for t in vars(self).values()))


def family_sampler(mix: MaskMix) -> tuple[list[str], torch.Tensor]:
    """Family names and their probabilities from the configured weights (zeros dropped)."""
    weights = {name: w for name, w in to_dict(mix).items() if w > 0}
    probs = torch.tensor(list(weights.values()), dtype=torch.float64)
    return list(weights), probs / probs.sum()


class ItemSubset:
    """The items `indices` of a clip dataset, renumbered 0..len-1, keeping its contract (an int
    is the evaluation view, a Draw the training view)."""

    def __init__(self, dataset: ClipDataset, indices: list[int]):
        self.dataset = dataset
        self.indices = list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, key: int | Draw) -> dict:
        if isinstance(key, Draw):
            return self.dataset[Draw(self.indices[key.index], key.seed)]
        return self.dataset[self.indices[key]]


def file_split(dataset: ClipDataset) -> tuple[list[int], list[int]]:
    """(items the decoder fits on, items held out) of a file dataset, split by file: the last
    HELD_OUT_FILE_SHARE of a fixed permutation of the files is held out, with every clip of
    those files (a video dataset's items are video x clip). One file cannot be split: it is
    both (the evaluation then says nothing about unseen files, and a warning says so)."""
    clips_per_file = getattr(dataset, "clips_per_video", 1)
    files = len(dataset) // clips_per_file
    if files < 2:
        warnings.warn(
            "the run's data has one file: the decoder's held-out clips come from the file it "
            "fits on",
            stacklevel=2,
        )
        everything = list(range(len(dataset)))
        return everything, everything
    order = torch.randperm(files, generator=draw_generator(mix_seed(HELD_OUT, files))).tolist()
    held = max(1, round(files * HELD_OUT_FILE_SHARE))

    def items(chosen: list[int]) -> list[int]:
        return [f * clips_per_file + c for f in sorted(chosen) for c in range(clips_per_file)]

    return items(order[:-held]), items(order[-held:])


def fit_dataset(run_config: Config) -> ClipDataset:
    """The clips a decoder fits on: the run's own data, less the held-out files."""
    dataset = build_dataset(run_config)
    if run_config.data.source == "synthetic":
        return dataset
    return ItemSubset(dataset, file_split(dataset)[0])


class DecoderBatches(Dataset):
    """Batches keyed by (step, micro_step), built in DataLoader workers (see make_loader)."""

    def __init__(self, run_config: Config, cfg: DecoderConfig):
        self.run_config = run_config
        self.geometry = TokenGeometry.from_model_config(run_config.model)
        self.dataset = fit_dataset(run_config)
        self.plan = BatchPlan.create(len(self.dataset), cfg.batch_size, None, 1, 0, cfg.seed)
        self.families, self.probs = family_sampler(cfg.masks)
        self.seed = cfg.seed
        # The predictor learned one mask token per mask set of the run.
        self.num_mask_tokens = num_mask_sets(run_config.mask)

    def __len__(self) -> int:  # iteration is driven by the sampler
        return 0

    def __getitem__(self, key: tuple[int, int]) -> DecoderBatch:
        step, micro_step = key
        clips, masks, indices = [], [], []
        for slot, draw in zip(self.plan.slots(micro_step), self.plan.draws(step, micro_step)):
            clips.append(self.dataset[draw]["clip"])
            gen = draw_generator(mix_seed(self.seed, FAMILY_DRAW, step, slot))
            family = self.families[int(torch.multinomial(self.probs, 1, generator=gen))]
            gen = draw_generator(mix_seed(self.seed, MASK_DRAW, step, slot))
            mask, index = sample_mask(family, self.geometry, self.run_config.mask, gen)
            if family != "pretraining":
                # Painted-style masks read either predictor token, so the decoder is not tied
                # to the rule that picks one (decoder.masks.mask_index_for) and the rule can be
                # chosen, or changed, by measuring a fitted decoder.
                index = int(torch.randint(0, self.num_mask_tokens, (), generator=gen))
            masks.append(mask)
            indices.append(index)
        return DecoderBatch(torch.stack(clips), torch.stack(masks), torch.tensor(indices))


def held_out_dataset(run_config: Config) -> ClipDataset:
    """Clips the decoder never fits on: for the physics world another world (which the run
    never trained on either); for files, the held-out files (`file_split`), in their
    evaluation view."""
    if run_config.data.source == "synthetic":
        return build_dataset(run_config, seed_offset=HELD_OUT_SEED_OFFSET)
    dataset = build_dataset(run_config)
    return ItemSubset(dataset, file_split(dataset)[1])


def held_out_batch(
    run_config: Config, family: str, count: int, seed: int = 0, dataset: ClipDataset | None = None
) -> DecoderBatch:
    """The first `count` held-out clips with masks of one family, reproducible from `seed`."""
    dataset = dataset if dataset is not None else held_out_dataset(run_config)
    if count > len(dataset):
        raise ValueError(f"asked for {count} held-out clips; the dataset has {len(dataset)}")
    geometry = TokenGeometry.from_model_config(run_config.model)
    clips, masks, indices = [], [], []
    for i in range(count):
        clips.append(dataset[i]["clip"])
        gen = draw_generator(mix_seed(seed, HELD_OUT, i))
        mask, index = sample_mask(family, geometry, run_config.mask, gen)
        masks.append(mask)
        indices.append(index)
    return DecoderBatch(torch.stack(clips), torch.stack(masks), torch.tensor(indices))
