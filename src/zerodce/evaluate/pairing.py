"""Pairing: low-light inputs matched with their ground truth (and with enhanced folders) by file stem.

Inputs and ground truth are matched by file stem (``22.png`` with ``22.png`` or
``22.jpg``); LOL-v2's ``low00690``/``normal00690`` also match (a leading
``low``/``normal``/``high`` before digits is ignored). Every image must have
its partner: a missing one is a :class:`PairingError` naming it.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from zerodce._checks import InputError
from zerodce.data import find_images
from zerodce.io import IMAGE_SUFFIXES

#: Sub-folders of a dataset root, ``(low, ground truth)``, tried in order (case-insensitive):
#: LOL (``eval15/low``, ``eval15/high``), a bare pair of folders, LOL-v2 (``Low``, ``Normal``,
#: or its ``Test`` folder).
LAYOUTS: tuple[tuple[str, str], ...] = (
    ("eval15/low", "eval15/high"),
    ("low", "high"),
    ("low", "normal"),
    ("test/low", "test/normal"),
)

#: A role prefix in front of the number, as in LOL-v2's ``low00690.png`` / ``normal00690.png``.
_ROLE_PREFIX = re.compile(r"^(low|normal|high)(?=\d)", re.IGNORECASE)


class PairingError(InputError):
    """Folders whose images cannot be paired; the message names the images concerned."""


@dataclass(frozen=True)
class Pair:
    """One evaluation sample: its name (the input's stem), input and ground-truth files.

    ``low`` is ``None`` when only finished outputs are scored; ``high`` is ``None``
    for photos without a ground truth (:func:`find_photos`).
    """

    name: str
    low: Path | None
    high: Path | None


def _child(folder: Path, relative: str) -> Path | None:
    """``folder / relative`` matched case-insensitively, one part at a time."""
    for part in relative.split("/"):
        if not folder.is_dir():
            return None
        matches = [c for c in folder.iterdir() if c.is_dir() and c.name.lower() == part]
        if not matches:
            return None
        folder = matches[0]
    return folder


def dataset_dirs(root: str | Path) -> tuple[Path, Path]:
    """The ``(low, ground truth)`` folders of a dataset root in one of the :data:`LAYOUTS`.

    Raises:
        PairingError: ``root`` is not a folder or has none of the layouts.
    """
    root = Path(root)
    if not root.is_dir():
        raise PairingError(f"dataset root {root} is not a folder")
    for low, high in LAYOUTS:
        low_dir, high_dir = _child(root, low), _child(root, high)
        if low_dir is not None and high_dir is not None:
            return low_dir, high_dir
    raise PairingError(f"{root} has no known dataset layout: expected eval15/low + eval15/high (LOL), "
                       "low + high, or Low + Normal (LOL-v2); or give --low DIR --high DIR")


def natural_key(text: str) -> list:
    """Sort key that orders ``2`` before ``10``.

    Example:
        >>> sorted(["10", "2", "1"], key=natural_key)
        ['1', '2', '10']
    """
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def _index(folder: Path) -> dict[str, Path]:
    """Images of ``folder`` (not recursive) by pairing key; two images with one key are an error."""
    if not folder.is_dir():
        raise PairingError(f"{folder} is not a folder")
    index: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in IMAGE_SUFFIXES or path.name.startswith(".") or not path.is_file():
            continue
        key = _ROLE_PREFIX.sub("", path.stem)
        if key in index:
            raise PairingError(f"{index[key].name} and {path.name} in {folder} pair with the same images; keep one")
        index[key] = path
    if not index:
        raise PairingError(f"no images in {folder} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    return index


def _missing(have: dict[str, Path], need: Iterable[str], folder: Path, what: str) -> None:
    missing = sorted(set(need) - set(have), key=natural_key)
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise PairingError(f"no {what} in {folder} for {len(missing)} image(s): {shown} (pairs match by file stem)")


def find_pairs(low: str | Path | None, high: str | Path) -> list[Pair]:
    """Pair the images of ``low`` and ``high`` by file stem, in natural name order.

    Args:
        low: folder of low-light inputs, or ``None`` to take the names from ``high``
            alone (to score folders of already-enhanced images).
        high: folder of ground-truth images.

    Raises:
        PairingError: an image without its partner (named), a folder without
            images, or two images of one folder with the same stem.
    """
    high_index = _index(Path(high))
    if low is None:
        return [Pair(key, None, high_index[key]) for key in sorted(high_index, key=natural_key)]
    low_index = _index(Path(low))
    _missing(high_index, low_index, Path(high), "ground truth")
    _missing(low_index, high_index, Path(low), "low-light input")
    return [Pair(low_index[key].stem, low_index[key], high_index[key]) for key in sorted(low_index, key=natural_key)]


def find_photos(sources: Sequence[str | Path]) -> list[Pair]:
    """Photos without ground truth: image files, and the images under folders (recursive), in natural name order.

    Files are found by :func:`zerodce.data.find_images`, as training finds them.
    A photo is named by its path under its folder without the extension (a file
    given by itself: its stem); with several sources, a folder's photos are
    named ``folder/...`` so that two folders' ``1.png`` stay apart.

    Raises:
        InputError: a source that does not exist or holds no image (:class:`PairingError`:
            two photos with one name).
    """
    pairs: list[Pair] = []
    for source in map(Path, sources):
        files = find_images([source])
        if source.is_file():
            pairs.append(Pair(source.stem, source, None))
            continue
        prefix = f"{source.name}/" if len(sources) > 1 else ""
        names = {path: prefix + path.relative_to(source).with_suffix("").as_posix() for path in files}
        pairs += [Pair(names[path], path, None) for path in sorted(files, key=lambda p: natural_key(names[p]))]
    twice = sorted((name for name, n in Counter(p.name for p in pairs).items() if n > 1), key=natural_key)
    if twice:
        raise PairingError(f"two photos are named {', '.join(twice)}; give them from different folders")
    return pairs


def _key(pair: Pair) -> str:
    return _ROLE_PREFIX.sub("", pair.name)


def match_folder(folder: str | Path, pairs: Sequence[Pair]) -> dict[str, Path]:
    """The image of ``folder`` for each pair, by pair name; :class:`PairingError` names missing ones."""
    index = _index(Path(folder))
    _missing(index, [_key(p) for p in pairs], Path(folder), "enhanced image")
    return {pair.name: index[_key(pair)] for pair in pairs}
