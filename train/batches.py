"""From a dataset to the micro-batches of each training step, deterministically.

Every random choice in the input pipeline (which items, their augmentation, their masks) is a
pure function of (run seed, step, slot in the global batch). Consequences the project relies on:
a resumed run sees exactly the batches an uninterrupted run would have seen; the number of
DataLoader workers does not change the data; and N processes with a global batch B see exactly
the samples and masks one process with batch B sees.

DataLoader workers build whole micro-batches (items, masks, collation), so the training process
only moves tensors to the device.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import lru_cache

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from train.config import ConfigError
from train.data.base import ClipDataset, Draw, draw_generator
from train.masks import BatchMasker, MaskSet

# Tags keep the seed streams of different purposes apart.
ORDER, AUGMENT, MASK_BATCH, MASK_SAMPLE, MONITOR = 1, 2, 3, 4, 5


def mix_seed(*parts: int) -> int:
    """A well-spread 63-bit seed from integers (order matters)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & 0x7FFF_FFFF_FFFF_FFFF


@dataclass
class Batch:
    """One micro-batch: uint8 clips [B, C, T, H, W], integer labels, one MaskSet per mask set."""

    step: int
    clips: torch.Tensor
    labels: dict[str, torch.Tensor]
    masks: list[MaskSet]
    skipped: list[str] = field(default_factory=list)  # one message per unreadable item passed
    # Samples whose own item was unreadable (each replaced by a later readable one): what the
    # bad-data limit counts, one per draw however many broken items in a row it passed.
    bad_draws: int = 0

    def to(self, device: torch.device | str) -> Batch:
        non_blocking = torch.device(device).type == "cuda"
        return self._map(lambda t: t.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> Batch:
        """Called by the DataLoader's pinning thread (pin_memory=True on GPU)."""
        return self._map(torch.Tensor.pin_memory)

    def _map(self, fn) -> Batch:
        masks = [MaskSet(*(fn(t) for t in vars(m).values())) for m in self.masks]
        labels = {k: fn(v) for k, v in self.labels.items()}
        return Batch(self.step, fn(self.clips), labels, masks, self.skipped, self.bad_draws)


@dataclass(frozen=True)
class BatchPlan:
    """How a global batch splits into ranks and accumulation micro-steps.

    Global slot of sample j in micro-step a on rank r: (a * world_size + r) * micro_batch + j.
    Slots index an endless stream of items: epoch e visits a seeded permutation of the dataset.
    """

    dataset_len: int
    global_batch: int
    micro_batch: int
    world_size: int
    rank: int
    seed: int
    # Consecutive slots that draw the same item (each with its own augmentation seed): a video
    # dataset then opens and decodes a file once for several clips (`data.clips_per_video`).
    # An epoch visits every item this many times.
    clips_per_item: int = 1

    @classmethod
    def create(
        cls,
        dataset_len: int,
        global_batch: int,
        micro_batch: int | None,
        world_size: int,
        rank: int,
        seed: int,
        clips_per_item: int = 1,
    ) -> BatchPlan:
        if global_batch % world_size:
            raise ConfigError(
                f"data.batch_size={global_batch} (global) must be divisible by the number of "
                f"processes ({world_size})"
            )
        micro = micro_batch or global_batch // world_size
        if global_batch % (micro * world_size):
            raise ConfigError(
                f"data.batch_size={global_batch} must be a multiple of "
                f"data.micro_batch_size={micro} x {world_size} processes; e.g. "
                f"data.micro_batch_size={_largest_divisor(global_batch // world_size, micro)}"
            )
        if dataset_len < 1:
            raise ConfigError("the dataset is empty: check data.path")
        if clips_per_item < 1:
            raise ConfigError(f"data.clips_per_video={clips_per_item} must be at least 1")
        return cls(dataset_len, global_batch, micro, world_size, rank, seed, clips_per_item)

    @property
    def accum_steps(self) -> int:
        return self.global_batch // (self.micro_batch * self.world_size)

    def slots(self, micro_step: int) -> range:
        first = (micro_step * self.world_size + self.rank) * self.micro_batch
        return range(first, first + self.micro_batch)

    def draws(self, step: int, micro_step: int) -> list[Draw]:
        draws = []
        for slot in self.slots(micro_step):
            position = step * self.global_batch + slot
            epoch, offset = divmod(position // self.clips_per_item, self.dataset_len)
            index = int(_permutation(self.seed, epoch, self.dataset_len)[offset])
            draws.append(Draw(index, mix_seed(self.seed, AUGMENT, step, slot)))
        return draws


@lru_cache(maxsize=2)
def _permutation(seed: int, epoch: int, n: int) -> torch.Tensor:
    return torch.randperm(n, generator=draw_generator(mix_seed(seed, ORDER, epoch)))


def _largest_divisor(n: int, at_most: int) -> int:
    return max(d for d in range(1, min(n, at_most) + 1) if n % d == 0)


class StepBatches(Dataset):
    """Dataset of micro-batches keyed by (step, micro_step); runs in DataLoader workers."""

    def __init__(
        self,
        dataset: ClipDataset,
        plan: BatchPlan,
        masker: BatchMasker,
        clip_shape: tuple[int, int, int, int],
    ):
        self.dataset = dataset
        self.plan = plan
        self.masker = masker
        self.clip_shape = tuple(clip_shape)

    def __len__(self) -> int:  # not used for iteration; the sampler drives it
        return 0

    def __getitem__(self, key: tuple[int, int]) -> Batch:
        step, micro_step = key
        draws = self.plan.draws(step, micro_step)
        # Datasets that can serve several draws of one item from one read say so with `samples`.
        read_many = getattr(self.dataset, "samples", None)
        samples = read_many(draws) if read_many else [self.dataset[d] for d in draws]
        for sample in samples:
            if (
                tuple(sample["clip"].shape) != self.clip_shape
                or sample["clip"].dtype != torch.uint8
            ):
                raise ValueError(
                    f"dataset returned a clip of shape {tuple(sample['clip'].shape)} "
                    f"({sample['clip'].dtype}); the model expects uint8 {self.clip_shape} "
                    "[C, T, H, W]: check model.num_frames and model.img_size"
                )
        seed = self.plan.seed
        slots = self.plan.slots(micro_step)
        batch_gen = draw_generator(mix_seed(seed, MASK_BATCH, step))
        sample_gens = [draw_generator(mix_seed(seed, MASK_SAMPLE, step, s)) for s in slots]
        label_names = samples[0].get("labels", {}).keys()
        return Batch(
            step=step,
            clips=torch.stack([s["clip"] for s in samples]),
            labels={k: torch.tensor([s["labels"][k] for s in samples]) for k in label_names},
            masks=self.masker(batch_gen, sample_gens),
            skipped=[msg for s in samples for msg in s.get("skipped", [])],
            bad_draws=sum(1 for s in samples if s.get("skipped")),
        )


class StepKeys(Sampler):
    """(step, micro_step) for every step from `start` to `stop`."""

    def __init__(self, start: int, stop: int, accum_steps: int):
        self.start, self.stop, self.accum_steps = start, stop, accum_steps

    def __iter__(self):
        for step in range(self.start, self.stop):
            for micro_step in range(self.accum_steps):
                yield step, micro_step

    def __len__(self) -> int:
        return (self.stop - self.start) * self.accum_steps


def _as_is(batch: Batch) -> Batch:
    return batch


def make_loader(
    batches: StepBatches, start: int, stop: int, num_workers: int, pin_memory: bool
) -> DataLoader:
    return DataLoader(
        batches,
        batch_size=None,
        sampler=StepKeys(start, stop, batches.plan.accum_steps),
        collate_fn=_as_is,
        num_workers=num_workers,
        pin_memory=pin_memory,
        prefetch_factor=4 if num_workers else None,
        persistent_workers=False,
    )
