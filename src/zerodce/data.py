"""Training data: folders of images (no ground truth), resized to a square training size.

Zero-reference training needs nothing but images. :func:`find_images` collects
them recursively; :class:`ImageFolder` decodes each one, resizes it to
``size x size`` (as the authors' loaders do, aspect ratio not kept) and, by
default, keeps the whole set in memory as ``uint8``: decoding a 512x512 JPEG
costs more than a training step of the small networks, so decoding once
instead of once per epoch is what keeps a CPU busy with training. Files that
cannot be read are reported and left out; the rest of the set still trains.

:func:`split` divides the files into training and validation sets.
"""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from zerodce._checks import InputError
from zerodce.io import IMAGE_SUFFIXES, ImageError, pixels_to_tensor, read_image



def find_images(roots: Iterable[str | Path]) -> list[Path]:
    """Image files under ``roots`` (folders searched recursively, files taken as given), sorted by path.

    Raises:
        InputError: a root does not exist, or no image was found.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     for name in ("b.PNG", "a/c.jpg", "notes.txt"):
        ...         (Path(d) / name).parent.mkdir(exist_ok=True)
        ...         (Path(d) / name).touch()
        ...     [p.relative_to(d).as_posix() for p in find_images([d])]
        ['a/c.jpg', 'b.PNG']
    """
    found: set[Path] = set()
    roots = list(roots)
    for root in map(Path, roots):
        if root.is_file():
            found.add(root)
        elif root.is_dir():
            found.update(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        else:
            raise InputError(f"data path not found: {root}")
    if not found:
        raise InputError(
            f"no images found in {', '.join(map(str, roots))} (looked for {', '.join(IMAGE_SUFFIXES)})"
        )
    return sorted(found)


def split(paths: Sequence[Path], val_fraction: float, seed: int = 0, shuffle: bool = True) -> tuple[list[Path], list[Path]]:
    """Divide ``paths`` into ``(train, val)``; ``val`` gets ``round(len * val_fraction)`` files.

    Args:
        paths: the files, in a stable order (e.g. from :func:`find_images`).
        val_fraction: in ``[0, 1)``.
        seed: seeds the shuffle, so a split is reproducible.
        shuffle: ``False`` keeps the given order: the first files train, the last validate
            (the report's recipe).

    Example:
        >>> train, val = split([Path(f"{i}.png") for i in range(10)], 0.2, shuffle=False)
        >>> [p.name for p in val]
        ['8.png', '9.png']
    """
    if not 0 <= val_fraction < 1:
        raise InputError(f"the validation fraction must be in [0, 1), got {val_fraction}")
    paths = list(paths)
    if shuffle:
        random.Random(seed).shuffle(paths)
    n_val = round(len(paths) * val_fraction)
    if n_val and n_val == len(paths):
        raise InputError(f"{len(paths)} images are too few for a validation fraction of {val_fraction}")
    return paths[: len(paths) - n_val], paths[len(paths) - n_val :]


def load_image(path: str | Path, size: int) -> torch.Tensor:
    """One image as ``(3, size, size)`` ``uint8``: decoded, EXIF-oriented, resized (antialiased bilinear).

    Gray images are repeated to RGB and alpha is dropped; 16-bit images are
    rounded to 8 bits after resizing.

    Raises:
        zerodce.io.ImageError: the file cannot be read (the message names it).
    """
    x = pixels_to_tensor(read_image(path).pixels)  # (1, 3, H, W) in [0, 1]
    x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x[0].mul(255).round_().clamp_(0, 255).to(torch.uint8)


@dataclass(frozen=True)
class Skipped:
    """A file left out of a dataset, and why."""

    path: Path
    reason: str


class ImageFolder(Dataset):
    """Images as float ``(3, size, size)`` (or ``(3, crop, crop)``) tensors in [0, 1], with their index.

    ``dataset[i]`` is ``(image, i)``; :attr:`paths` names the files, so a
    training loop can report which files were in a bad batch.

    With ``crop``, each item is a ``crop x crop`` window of the resized image at
    a position drawn from ``(seed, epoch, index)``: random across epochs (call
    :meth:`set_epoch`), yet the same in every process and DataLoader worker.
    Training on crops keeps the pixel scale of ``size`` at the cost of ``crop``.

    Args:
        paths: image files (see :func:`find_images`).
        size: training size; every image is resized to ``size x size``.
        preload: decode every image once, now, into memory (``3 * size**2`` bytes
            each). ``False`` decodes on each access (in DataLoader workers), for
            sets that do not fit in memory.
        threads: decoding threads for the preload (Pillow releases the GIL).
        crop: side of the square window taken from each image; ``None`` for the whole image.
        seed: seeds the crop positions.

    Attributes:
        paths: the readable files, in the given order.
        skipped: the files left out, with the reason. With ``preload=False`` only
            files that cannot even be opened are found here; a file that fails
            later raises :class:`zerodce.io.ImageError` naming it.

    Example:
        >>> import tempfile, numpy as np
        >>> from zerodce.io import write_image
        >>> with tempfile.TemporaryDirectory() as d:
        ...     write_image(Path(d) / "dark.png", np.zeros((20, 30, 3), np.uint8))
        ...     _ = (Path(d) / "broken.jpg").write_bytes(b"not a jpeg")
        ...     data = ImageFolder(find_images([d]), size=16)
        >>> len(data), data[0][0].shape, data.skipped[0].path.name
        (1, torch.Size([3, 16, 16]), 'broken.jpg')
    """

    def __init__(self, paths: Sequence[str | Path], size: int, preload: bool = True, threads: int = 2,
                 crop: int | None = None, seed: int = 0) -> None:
        if min(size, crop or size) < 16:
            raise InputError(f"training images must be at least 16 pixels (the exposure patch), got {crop or size}")
        if crop is not None and crop > size:
            raise InputError(f"the crop ({crop}) must not be larger than the image size ({size})")
        self.size, self.crop, self.seed, self.epoch = size, crop, seed, 0
        self.skipped: list[Skipped] = []
        paths = [Path(p) for p in paths]
        self._images: torch.Tensor | None = None
        if preload:
            # Filled in place: one copy of the set in memory, not a list plus a stacked copy.
            images = torch.empty(len(paths), 3, size, size, dtype=torch.uint8)
            with ThreadPoolExecutor(max(1, threads)) as pool:
                ok = list(pool.map(self._load_into, paths, images))
            self.paths = [p for p, good in zip(paths, ok) if good]
            self._images = images if all(ok) else images[torch.tensor(ok, dtype=torch.bool)]
        else:
            self.paths = [p for p in paths if self._can_open(p)]
        self.skipped.sort(key=lambda s: s.path)  # threads finish in any order

    def _load_into(self, path: Path, slot: torch.Tensor) -> bool:
        try:
            slot.copy_(load_image(path, self.size))
            return True
        except ImageError as exc:
            self.skipped.append(Skipped(path, str(exc)))
            return False

    def _can_open(self, path: Path) -> bool:
        from PIL import Image

        try:
            with Image.open(path) as im:
                im.size  # noqa: B018 - reading the header is the check
            return True
        except Exception as exc:  # any failure to open means the same: leave the file out
            self.skipped.append(Skipped(path, f"cannot read {path}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"))
            return False

    def set_epoch(self, epoch: int) -> None:
        """Draw new crop positions (the same for a given seed and epoch)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if self._images is not None:
            image = self._images[index]
        else:
            image = load_image(self.paths[index], self.size)
        if self.crop is not None:
            top, left = np.random.default_rng([self.seed, self.epoch, index]).integers(0, self.size - self.crop + 1, 2)
            image = image[:, top : top + self.crop, left : left + self.crop]
        return image.float().div_(255), index
