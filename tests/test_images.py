"""ImageDataset: image folders as one-frame (or repeated-frame) clips, with bad files skipped."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from train.config import DataConfig, ModelConfig
from train.data.base import Draw
from train.data.files import SkippedFileWarning, UnreadableError
from train.data.images import ImageDataset, load_image


def texture(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth random RGB picture (crops of it differ, unlike a flat colour)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    return np.kron(coarse, np.ones((8, 8, 1), np.uint8))[:height, :width]


@pytest.fixture()
def image_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    (folder / ".cache").mkdir()
    Image.fromarray(texture(150, 200)).save(folder / "a.jpg")
    Image.fromarray(texture(143, 175)[..., 0]).save(folder / "sub" / "b_gray.png")
    Image.fromarray(texture(90, 120, 1)).save(folder / "sub" / "c.bmp")
    Image.fromarray(texture(100, 100, 2)).save(folder / "d.webp")
    rgba = np.dstack([texture(64, 80, 3), np.full((64, 80), 128, np.uint8)])
    Image.fromarray(rgba).save(folder / "e_rgba.PNG")
    Image.fromarray(texture(64, 64, 4)).convert("P").save(folder / "f_palette.png")
    Image.fromarray(texture(64, 64)).save(folder / ".cache" / "thumb.jpg")  # hidden: ignored
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_folder_listing_is_recursive_sorted_and_skips_hidden(image_folder: Path) -> None:
    dataset = ImageDataset(image_folder, img_size=32)
    names = [p.relative_to(image_folder).as_posix() for p in dataset.paths]
    assert names == [
        "a.jpg",
        "d.webp",
        "e_rgba.PNG",
        "f_palette.png",
        "sub/b_gray.png",
        "sub/c.bmp",
    ]
    assert len(dataset) == 6


def test_every_format_gives_rgb_clips(image_folder: Path) -> None:
    dataset = ImageDataset(image_folder, img_size=32)
    for index in range(len(dataset)):
        for sample in (dataset[index], dataset[Draw(index, seed=index)]):
            clip = sample["clip"]
            assert clip.shape == (3, 1, 32, 32) and clip.dtype == torch.uint8
            assert sample["labels"] == {} and "skipped" not in sample
    gray = dataset[dataset.paths.index(image_folder / "sub" / "b_gray.png")]["clip"]
    assert torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2])


def test_video_models_get_the_frame_repeated(image_folder: Path) -> None:
    dataset = ImageDataset(image_folder, num_frames=4, img_size=32)
    clip = dataset[Draw(0, 3)]["clip"]
    assert clip.shape == (3, 4, 32, 32) and clip.is_contiguous()
    assert all(torch.equal(clip[:, 0], clip[:, t]) for t in range(4))


def test_draws_are_deterministic_and_seeded(image_folder: Path) -> None:
    dataset = ImageDataset(image_folder, img_size=32)
    first = dataset[Draw(0, 11)]["clip"]
    assert torch.equal(first, ImageDataset(image_folder, img_size=32)[Draw(0, 11)]["clip"])
    assert not torch.equal(first, dataset[Draw(0, 12)]["clip"])
    assert torch.equal(dataset[0]["clip"], dataset[0]["clip"])


def test_values_are_not_rescaled(tmp_path: Path) -> None:
    Image.fromarray(np.full((40, 60, 3), 255, np.uint8)).save(tmp_path / "white.png")
    clip = ImageDataset(tmp_path, img_size=32)[Draw(0, 0)]["clip"]
    assert clip.min() == 255


def test_large_jpeg_decodes_at_reduced_scale(tmp_path: Path) -> None:
    path = tmp_path / "big.jpg"
    Image.fromarray(texture(1200, 1600)).save(path)
    frame = load_image(path, short_side=100)
    assert frame.shape == (3, 1, 150, 200)  # JPEG scaled by 1/8 while decoding, still >= 100
    assert load_image(tmp_path / "big.jpg", short_side=2000).shape == (3, 1, 1200, 1600)


def test_exif_rotation_is_applied(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    Image.fromarray(texture(100, 200)).save(tmp_path / "phone.jpg", exif=exif)
    assert load_image(tmp_path / "phone.jpg", short_side=1000).shape == (3, 1, 200, 100)


def test_bad_images_are_skipped_in_training_and_raise_in_evaluation(tmp_path: Path) -> None:
    good = texture(80, 80)
    Image.fromarray(good).save(tmp_path / "z_good.jpg")
    (tmp_path / "a_zero.jpg").write_bytes(b"")
    (tmp_path / "b_text.png").write_text("hello " * 100)
    whole = (tmp_path / "z_good.jpg").read_bytes()
    (tmp_path / "c_truncated.jpg").write_bytes(whole[: len(whole) // 3])
    dataset = ImageDataset(tmp_path, img_size=32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sample = dataset[Draw(0, 1)]
    folder = tmp_path.name
    assert sample["skipped"][:2] == [
        f"skipped {folder}/a_zero.jpg: empty file (0 bytes)",
        f"skipped {folder}/b_text.png: not an image PIL can read",
    ]
    assert sample["skipped"][2].startswith(f"skipped {folder}/c_truncated.jpg: cannot decode (PIL:")
    assert len([w for w in caught if issubclass(w.category, SkippedFileWarning)]) == 3
    assert sample["clip"].shape == (3, 1, 32, 32)
    with pytest.raises(UnreadableError, match=r"b_text\.png: not an image"):
        dataset[1]


def test_folder_without_a_readable_image_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(b"")
    (tmp_path / "b.png").write_text("text")
    with pytest.raises(ValueError, match=r"no readable image among 2 files in .*/a\.jpg: empty"):
        ImageDataset(tmp_path)


def test_missing_and_empty_sources(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ImageDataset(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="it is empty"):
        ImageDataset(tmp_path)
    (tmp_path / "clip.mp4").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"no image files .* suffixes \.mp4"):
        ImageDataset(tmp_path)
    with pytest.raises(ValueError, match="must be a folder of images"):
        ImageDataset(tmp_path / "clip.mp4")


def test_from_config(image_folder: Path) -> None:
    data = DataConfig(source="images", path=str(image_folder), crop_scale=(0.5, 1.0), hflip=False)
    dataset = ImageDataset.from_config(data, ModelConfig(num_frames=2, img_size=48))
    assert (dataset.num_frames, dataset.img_size) == (2, 48)
    assert dataset.train_transform.scale == (0.5, 1.0) and not dataset.train_transform.hflip
    assert dataset[Draw(0, 0)]["clip"].shape == (3, 2, 48, 48)
