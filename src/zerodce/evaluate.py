"""Full-reference evaluation: enhanced images against ground truth, PSNR and SSIM.

The pieces, each usable on its own:

* **Pairing** (:func:`dataset_dirs`, :func:`find_pairs`, :func:`match_folder`):
  low-light inputs and ground truth are matched by file stem (``22.png`` with
  ``22.png`` or ``22.jpg``); LOL-v2's ``low00690``/``normal00690`` also match
  (a leading ``low``/``normal``/``high`` before digits is ignored). Every image
  must have its partner: a missing one is a :class:`PairingError` naming it.
* **Methods** (:data:`Method`): anything that turns a pair's low-light image
  into an 8-bit RGB output: a model (:func:`model_method`), a classical
  baseline (:func:`baseline_methods`) or a folder of already-enhanced images
  (:func:`folder_method`).
* **Scoring** (:func:`evaluate`): every method on every pair, images compared as
  8-bit RGB with :func:`zerodce.metrics.psnr` and :func:`zerodce.metrics.ssim`;
  a pair that cannot be read is reported and left out of every method's mean.
* **Reports**: :func:`format_table` (terminal and Markdown), :func:`to_json`,
  and :class:`ContactSheet` (input | outputs | ground truth, one row per image).

Example:
    >>> scores = MethodResult("x", [ImageScore("a", 20.0, 0.5), ImageScore("b", 30.0, 0.7)])
    >>> (scores.psnr, round(scores.ssim, 2))
    (25.0, 0.6)
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from tqdm import tqdm

from zerodce.baselines import BASELINES, Baseline
from zerodce.enhance import Enhancer
from zerodce.io import FORMATS, ImageError, write_atomic, read_image, write_image
from zerodce.metrics import psnr, ssim

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


class PairingError(ValueError):
    """Folders whose images cannot be paired; the message names the images concerned."""


@dataclass(frozen=True)
class Pair:
    """One evaluation sample: its name (the input's stem), input and ground-truth files."""

    name: str
    low: Path | None
    high: Path


#: A method maps a pair and its low-light input (8-bit RGB, or ``None`` without inputs)
#: to its 8-bit RGB output.
Method = Callable[[Pair, "np.ndarray | None"], np.ndarray]


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


def _natural_key(text: str) -> list:
    """Sort key that orders ``2`` before ``10``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def _index(folder: Path) -> dict[str, Path]:
    """Images of ``folder`` (not recursive) by pairing key; two images with one key are an error."""
    if not folder.is_dir():
        raise PairingError(f"{folder} is not a folder")
    index: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in FORMATS or path.name.startswith(".") or not path.is_file():
            continue
        key = _ROLE_PREFIX.sub("", path.stem)
        if key in index:
            raise PairingError(f"{index[key].name} and {path.name} in {folder} pair with the same images; keep one")
        index[key] = path
    if not index:
        raise PairingError(f"no images in {folder} (looked for {', '.join(sorted(FORMATS))})")
    return index


def _missing(have: dict[str, Path], need: Iterable[str], folder: Path, what: str) -> None:
    missing = sorted(set(need) - set(have), key=_natural_key)
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
        return [Pair(key, None, high_index[key]) for key in sorted(high_index, key=_natural_key)]
    low_index = _index(Path(low))
    _missing(high_index, low_index, Path(high), "ground truth")
    _missing(low_index, high_index, Path(low), "low-light input")
    return [Pair(low_index[key].stem, low_index[key], high_index[key]) for key in sorted(low_index, key=_natural_key)]


def _key(pair: Pair) -> str:
    return _ROLE_PREFIX.sub("", pair.name)


def match_folder(folder: str | Path, pairs: Sequence[Pair]) -> dict[str, Path]:
    """The image of ``folder`` for each pair, by pair name; :class:`PairingError` names missing ones."""
    index = _index(Path(folder))
    _missing(index, [_key(p) for p in pairs], Path(folder), "enhanced image")
    return {pair.name: index[_key(pair)] for pair in pairs}


def read_rgb8(path: str | Path) -> np.ndarray:
    """An image file as 8-bit RGB ``(H, W, 3)``: gray repeated, alpha dropped, 16-bit rounded.

    Raises:
        ImageError: the file cannot be read.
    """
    pixels = read_image(path).pixels
    if pixels.dtype == np.uint16:
        pixels = np.round(pixels / 257.0).astype(np.uint8)
    if pixels.ndim == 2:
        return np.repeat(pixels[..., None], 3, axis=2)
    return np.repeat(pixels[..., :1], 3, axis=2) if pixels.shape[2] == 2 else np.ascontiguousarray(pixels[..., :3])


def _needs_input(low: np.ndarray | None) -> np.ndarray:
    if low is None:
        raise ValueError("this method enhances the low-light inputs; give their folder (--low or a dataset root)")
    return low


def model_method(enhancer: Enhancer) -> Method:
    """A model as a method: 8-bit output ``round(clip(y * 255))`` of :meth:`Enhancer.enhance_array`."""
    return lambda pair, low: enhancer.enhance_array(_needs_input(low))


def baseline_methods() -> dict[str, Method]:
    """The classical :data:`~zerodce.baselines.BASELINES` as methods, by display name."""

    def method(fn: Baseline) -> Method:
        return lambda pair, low: fn(_needs_input(low))

    return {name: method(fn) for name, fn in BASELINES.items()}


def folder_method(folder: str | Path, pairs: Sequence[Pair]) -> Method:
    """Already-enhanced images: each pair's output is ``folder``'s image of the same stem.

    Raises:
        PairingError: ``folder`` lacks the image of a pair (named).
    """
    files = match_folder(folder, pairs)
    return lambda pair, low: read_rgb8(files[pair.name])


@dataclass(frozen=True)
class ImageScore:
    """PSNR (dB) and SSIM of one output against its ground truth."""

    name: str
    psnr: float
    ssim: float


def _json_number(value: float) -> float | None:
    # PSNR of an exact match is inf, which JSON cannot hold.
    return value if math.isfinite(value) else None


@dataclass
class MethodResult:
    """One method's scores: per image, and their means (:attr:`psnr`, :attr:`ssim`)."""

    method: str
    images: list[ImageScore] = field(default_factory=list)

    @property
    def psnr(self) -> float:
        """Mean PSNR in dB (nan without images)."""
        return float(np.mean([s.psnr for s in self.images])) if self.images else math.nan

    @property
    def ssim(self) -> float:
        """Mean SSIM (nan without images)."""
        return float(np.mean([s.ssim for s in self.images])) if self.images else math.nan

    def to_dict(self) -> dict:
        """``{"mean": {"psnr", "ssim"}, "images": [{"name", "psnr", "ssim"}, ...]}``; infinite PSNR -> ``None``."""
        return {
            "mean": {"psnr": _json_number(self.psnr), "ssim": self.ssim},
            "images": [{"name": s.name, "psnr": _json_number(s.psnr), "ssim": s.ssim} for s in self.images],
        }


@dataclass
class Evaluation:
    """Results in method order, and one line per pair left out (unreadable or mismatched)."""

    results: list[MethodResult]
    failures: list[str] = field(default_factory=list)


#: Called once per evaluated pair with its name, input (or ``None``), outputs in method order and ground truth.
PairCallback = Callable[[str, "np.ndarray | None", list[np.ndarray], np.ndarray], None]


def evaluate(
    pairs: Sequence[Pair],
    methods: Mapping[str, Method],
    *,
    on_pair: PairCallback | None = None,
    progress: bool = False,
) -> Evaluation:
    """Score every method on every pair.

    Args:
        pairs: from :func:`find_pairs`.
        methods: display name -> :data:`Method`, in table order.
        on_pair: sees each pair's images (e.g. :meth:`ContactSheet.add`).
        progress: show a progress bar on stderr.

    A pair whose files cannot be read, or whose images differ in size, is
    reported in :attr:`Evaluation.failures` and left out of every method, so the
    means stay comparable. Errors of a method itself propagate.
    """
    evaluation = Evaluation([MethodResult(name) for name in methods])
    for pair in tqdm(pairs, unit="img", disable=not progress, desc="eval"):
        try:
            high = read_rgb8(pair.high)
            low = None if pair.low is None else read_rgb8(pair.low)
            if low is not None and low.shape != high.shape:
                raise ImageError(f"{pair.low} is {_size(low)} but its ground truth {pair.high} is {_size(high)}")
            outputs = []
            for name, method in methods.items():
                out = method(pair, low)
                if out.shape != high.shape:
                    raise ImageError(f"output of {name} is {_size(out)} but the ground truth {pair.high} is {_size(high)}")
                outputs.append(out)
        except ImageError as exc:
            evaluation.failures.append(f"{pair.name}: {exc}")
            continue
        for result, out in zip(evaluation.results, outputs):
            result.images.append(ImageScore(pair.name, psnr(out, high), ssim(out, high)))
        if on_pair is not None:
            on_pair(pair.name, low, outputs, high)
    return evaluation


def _size(image: np.ndarray) -> str:
    return f"{image.shape[1]}x{image.shape[0]}"


# --------------------------------------------------------------------------- reports


def to_json(results: Sequence[MethodResult]) -> dict:
    """One method: :meth:`MethodResult.to_dict`; several: ``{"methods": [{"method": name, **to_dict()}, ...]}``."""
    if len(results) == 1:
        return results[0].to_dict()
    return {"methods": [{"method": r.method, **r.to_dict()} for r in results]}


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` atomically (never a half-written report), creating the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, text.encode())


def write_json(path: str | Path, results: Sequence[MethodResult]) -> None:
    """:func:`to_json` written to ``path`` (valid JSON: infinite PSNR is ``null``)."""
    write_text(path, json.dumps(to_json(results), indent=2, allow_nan=False) + "\n")


def _table(headers: list[str], rows: list[list[str]], markdown: bool) -> str:
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells: list[str]) -> str:
        padded = [c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))]
        return f"| {' | '.join(padded)} |" if markdown else "  ".join(padded)

    rule = ("| " + " | ".join("-" * (w - 1) + (":" if i else "-") for i, w in enumerate(widths)) + " |") if markdown \
        else "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


def _numbers(psnr_value: float, ssim_value: float) -> list[str]:
    return [f"{psnr_value:.2f}", f"{ssim_value:.4f}"]


def format_table(results: Sequence[MethodResult], *, per_image: bool = True, markdown: bool = False) -> str:
    """The results as a text (or Markdown) table: means per method, then per image.

    One method: a row per image and a ``mean`` row. Several: a row per method
    (the comparison), then, with ``per_image``, a row per image with a PSNR and
    an SSIM column per method.

    Example:
        >>> r = MethodResult("ours", [ImageScore("1", 20.0, 0.5)])
        >>> print(format_table([r]))
        image  PSNR (dB)    SSIM
        -----  ---------  ------
        1          20.00  0.5000
        mean       20.00  0.5000
    """
    if len(results) == 1:
        r = results[0]
        rows = [[s.name, *_numbers(s.psnr, s.ssim)] for s in r.images] if per_image else []
        return _table(["image", "PSNR (dB)", "SSIM"], rows + [["mean", *_numbers(r.psnr, r.ssim)]], markdown)
    text = _table(["method", "PSNR (dB)", "SSIM"], [[r.method, *_numbers(r.psnr, r.ssim)] for r in results], markdown)
    if per_image and results[0].images:
        headers = ["image"] + [f"{r.method} {m}" for r in results for m in ("PSNR", "SSIM")]
        rows = [[scores[0].name] + [n for s in scores for n in _numbers(s.psnr, s.ssim)]
                for scores in zip(*(r.images for r in results))]
        text += "\n\n" + _table(headers, rows, markdown)
    return text


def write_markdown(path: str | Path, results: Sequence[MethodResult], title: str = "Evaluation") -> None:
    """A Markdown report: a heading, the comparison table and the per-image table."""
    write_text(path, f"# {title}\n\nPSNR in dB and SSIM against the ground truth, 8-bit RGB.\n\n"
                     f"{format_table(results, markdown=True)}\n")


class ContactSheet:
    """A grid of thumbnails: one row per image, one column per title (input, methods, ground truth).

    Every cell is ``cell_width`` pixels wide, as tall as the image's aspect ratio
    gives; a header strip of :attr:`HEADER` pixels names the columns, and each
    row's name is written on its first cell.

    Example:
        >>> sheet = ContactSheet(["input", "output"], cell_width=40)
        >>> sheet.add("a", [np.zeros((20, 80, 3), np.uint8)] * 2)
        >>> sheet.render().shape
        (28, 80, 3)
    """

    HEADER = 18

    def __init__(self, titles: Sequence[str], cell_width: int = 200) -> None:
        if cell_width < 1:
            raise ValueError(f"cell_width must be >= 1, got {cell_width}")
        self.titles = list(titles)
        self.cell_width = int(cell_width)
        self._rows: list[tuple[str, list[Image.Image]]] = []
        self._font = ImageFont.load_default()

    def add(self, name: str, images: Sequence[np.ndarray]) -> None:
        """Add a row: one 8-bit RGB image per column (kept as thumbnails only)."""
        if len(images) != len(self.titles):
            raise ValueError(f"expected {len(self.titles)} images (one per column), got {len(images)}")
        h, w = images[0].shape[:2]
        size = (self.cell_width, max(1, round(h * self.cell_width / w)))
        self._rows.append((name, [Image.fromarray(im).resize(size, Image.Resampling.BILINEAR) for im in images]))

    def add_pair(self, name: str, low: np.ndarray | None, outputs: list[np.ndarray], high: np.ndarray) -> None:
        """:data:`PairCallback` for :func:`evaluate`: input (if any), outputs, ground truth."""
        self.add(name, ([] if low is None else [low]) + outputs + [high])

    def _fit(self, text: str) -> str:
        """``text`` shortened with an ellipsis to fit a cell, so titles don't run into the next column."""
        while len(text) > 1 and self._font.getlength(text) > self.cell_width - 8:
            text = text[:-2] + "…"
        return text

    def _label(self, draw: ImageDraw.ImageDraw, xy: tuple[int, int], text: str) -> None:
        box = draw.textbbox(xy, text, font=self._font)
        draw.rectangle((box[0] - 2, box[1] - 2, box[2] + 2, box[3] + 2), fill=(0, 0, 0))
        draw.text(xy, text, fill=(255, 255, 255), font=self._font)

    def render(self) -> np.ndarray:
        """The sheet as an 8-bit RGB array ``(HEADER + sum of row heights, columns * cell_width, 3)``."""
        width = self.cell_width * len(self.titles)
        height = self.HEADER + sum(cells[0].height for _, cells in self._rows)
        sheet = Image.new("RGB", (width, height))
        draw = ImageDraw.Draw(sheet)
        for col, title in enumerate(self.titles):
            draw.text((col * self.cell_width + 4, 3), self._fit(title), fill=(255, 255, 255), font=self._font)
        y = self.HEADER
        for name, cells in self._rows:
            for col, cell in enumerate(cells):
                sheet.paste(cell, (col * self.cell_width, y))
            self._label(draw, (4, y + 4), name)
            y += cells[0].height
        return np.asarray(sheet)

    def save(self, path: str | Path) -> None:
        """Write the sheet atomically; the format comes from the extension (PNG recommended)."""
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        write_image(path, self.render())
