"""A folder of still images as a clip dataset (I-JEPA mode), through the video transforms.

Every .jpg/.jpeg/.png/.bmp/.webp below the folder (recursive, hidden files skipped, sorted) is
one item. Images are decoded with PIL: JPEGs are decoded directly at a reduced scale when they
are much larger than needed (`Image.draft`), EXIF rotation is applied, and grey, palette and
RGBA images become RGB; 16-bit (and other high-bit-depth) images are scaled to 8 bits.

Clips are [3, T, H, W] uint8 with T = `num_frames`: 1 for an image model, or the same frame
repeated `num_frames` times when the model expects video-shaped input (a still "video" whose
frames are identical), so an image folder can feed a video model unchanged.

Views and bad files follow `VideoDataset`: an int index is the centre-crop evaluation view and
raises on an unreadable file; a `Draw` is a random-resized-crop training view that substitutes
the next readable image and reports it in `skipped`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from train.data.base import DataError
from train.data.files import (
    MAX_SKIP_ATTEMPTS,
    PROBE_LIMIT,
    MediaDataset,
    UnreadableError,
    list_media,
    no_media_message,
)
from train.data.reader import decode_size

if TYPE_CHECKING:
    from train.config import DataConfig, ModelConfig

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def load_image(path: Path, short_side: int) -> torch.Tensor:
    """An RGB uint8 [3, 1, H, W] clip of one image; JPEGs shrink while decoding when they can.

    `short_side` is a hint: JPEG decoding scales by 1/2, 1/4 or 1/8 while staying at least that
    large; other formats decode at full size (the transforms resize afterwards).
    """
    try:
        with Image.open(path) as image:
            image.draft("RGB", decode_size(*image.size, short_side))
            rgb = as_rgb8(ImageOps.exif_transpose(image))
    except FileNotFoundError:
        raise UnreadableError(path, "file not found") from None
    except UnidentifiedImageError:
        reason = "empty file (0 bytes)" if _is_empty(path) else "not an image PIL can read"
        raise UnreadableError(path, reason) from None
    # PIL reports damage as OSError (truncated), SyntaxError (broken PNG chunks) or ValueError.
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise UnreadableError(path, f"cannot decode (PIL: {err})") from None
    frame = torch.from_numpy(np.array(rgb))  # [H, W, 3]; a writable copy
    # [C, T, H, W] view of [H, W, C] memory: channels-last for the resize kernels.
    return frame.permute(2, 0, 1).unsqueeze(1)


SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")


def as_rgb8(image: Image.Image) -> Image.Image:
    """An 8-bit RGB image. High-bit-depth pictures are scaled to 0..255, not clipped (PIL's
    own conversion clips a 16-bit grey PNG to almost pure white): 16-bit modes by 255/65535;
    32-bit integer ("I") by the same when a value exceeds 255 (a 16-bit file), else kept;
    floating point ("F") by 255 when its values lie in [0, 1], else clipped to 0..255."""
    if image.mode not in (*SIXTEEN_BIT_MODES, "I", "F"):
        return image.convert("RGB")
    values = np.asarray(image, dtype=np.float64)
    if image.mode in SIXTEEN_BIT_MODES or (image.mode == "I" and values.max(initial=0) > 255):
        values = values * (255.0 / 65535.0)
    elif image.mode == "F" and values.size and values.min() >= 0.0 and values.max() <= 1.0:
        values = values * 255.0
    grey = np.clip(np.rint(np.nan_to_num(values)), 0, 255).astype(np.uint8)
    return Image.fromarray(grey, "L").convert("RGB")


def _is_empty(path: Path) -> bool:
    try:
        return os.path.getsize(path) == 0
    except OSError:
        return False


class ImageDataset(MediaDataset):
    """Images as clips [3, num_frames, img_size, img_size]; see the module docstring."""

    kind, unit = "image", "images"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        num_frames: int = 1,
        img_size: int = 224,
        crop_scale: tuple[float, float] = (0.3, 1.0),
        crop_aspect: tuple[float, float] = (0.75, 1.35),
        hflip: bool = True,
        probe_limit: int = PROBE_LIMIT,
        max_skip_attempts: int = MAX_SKIP_ATTEMPTS,
    ) -> None:
        if num_frames < 1:
            raise DataError(f"num_frames={num_frames} must be at least 1")
        source = Path(path).expanduser()
        super().__init__(
            source,
            self._find_images(source),
            None,
            img_size=img_size,
            crop_scale=crop_scale,
            crop_aspect=crop_aspect,
            hflip=hflip,
            max_skip_attempts=max_skip_attempts,
        )
        self.num_frames = num_frames
        self._require_readable(lambda i: self._load(i, short_side=32), probe_limit)

    @classmethod
    def from_config(cls, data: DataConfig, model: ModelConfig) -> ImageDataset:
        if not data.path:
            raise DataError("data.source=images needs data.path=FOLDER")
        return cls(
            data.path,
            num_frames=model.num_frames,
            img_size=model.img_size,
            crop_scale=data.crop_scale,
            crop_aspect=data.crop_aspect,
            hflip=data.hflip,
        )

    @staticmethod
    def _find_images(source: Path) -> list[Path]:
        if not source.exists():
            raise FileNotFoundError(f"image source {source} does not exist")
        if source.is_file():
            if source.suffix.lower() in IMAGE_EXTENSIONS:
                return [source]
            raise DataError(f"image source {source} must be a folder of images or one image")
        paths = list_media(source, IMAGE_EXTENSIONS)
        if not paths:
            raise DataError(no_media_message(source, IMAGE_EXTENSIONS, "image"))
        return paths

    def _load(self, item: int, short_side: int) -> torch.Tensor:
        return load_image(self.paths[item], short_side)

    def _as_clip(self, frame: torch.Tensor) -> torch.Tensor:
        """[3, 1, H, W] -> contiguous [3, num_frames, H, W] (the one frame repeated)."""
        return frame.repeat(1, self.num_frames, 1, 1)

    def _training_clip(self, file: int, generator: torch.Generator) -> torch.Tensor:
        return self._as_clip(
            self.train_transform(self._load(file, self.train_short_side), generator)
        )

    def _evaluation_clip(self, index: int) -> torch.Tensor:
        return self._as_clip(self.eval_transform(self._load(index, self.eval_short_side)))
