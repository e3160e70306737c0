"""Reports: tables (terminal and Markdown), JSON, and contact sheets of the evaluated images.

Example:
    >>> r = MethodResult("ours", [ImageScore("1", 20.0, 0.5)])
    >>> to_json([r])["mean"]
    {'psnr': 20.0, 'ssim': 0.5}
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from zerodce._table import format_table as _table
from zerodce.evaluate.no_reference import NO_REFERENCE_FIELDS, NoReferenceResult
from zerodce.evaluate.scoring import ImageScore, MethodResult
from zerodce.io import write_atomic, write_image


def to_json(results: Sequence[MethodResult | NoReferenceResult]) -> dict:
    """One method: :meth:`MethodResult.to_dict`; several: ``{"methods": [{"method": name, **to_dict()}, ...]}``."""
    if len(results) == 1:
        return results[0].to_dict()
    return {"methods": [{"method": r.method, **r.to_dict()} for r in results]}


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` atomically (never a half-written report), creating the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, text.encode())


def write_json(path: str | Path, results: Sequence[MethodResult | NoReferenceResult]) -> None:
    """:func:`to_json` written to ``path`` (valid JSON: infinite PSNR is ``null``)."""
    write_text(path, json.dumps(to_json(results), indent=2, allow_nan=False) + "\n")


def _numbers(psnr_value: float, ssim_value: float) -> list[str]:
    return [f"{psnr_value:.2f}", f"{ssim_value:.4f}"]


def _well_exposed_cells(scores: ImageScore | None) -> list[str]:
    return ["-", "-"] if scores is None else _numbers(scores.psnr, scores.ssim)


def format_table(results: Sequence[MethodResult], *, per_image: bool = True, markdown: bool = False) -> str:
    """The results as a text (or Markdown) table: means per method, then per image.

    One method: a row per image and a ``mean`` row. Several: a row per method
    (the comparison), then, with ``per_image``, a row per image with a PSNR and
    an SSIM column per method. Where well-exposed inputs were scored
    (:attr:`MethodResult.well_exposed`), their PSNR (pooled over the images:
    :attr:`MethodResult.well_exposed_psnr`) and SSIM follow in two more columns
    (``-`` for a method without them, such as a folder of outputs).

    Example:
        >>> r = MethodResult("ours", [ImageScore("1", 20.0, 0.5)])
        >>> print(format_table([r]))
        image  PSNR (dB)    SSIM
        -----  ---------  ------
        1          20.00  0.5000
        mean       20.00  0.5000
    """
    exposed = any(r.well_exposed for r in results)
    extra = ["well-exposed PSNR (dB, pooled)", "well-exposed SSIM"] if exposed else []

    def mean_cells(r: MethodResult) -> list[str]:
        well = ImageScore("mean", r.well_exposed_psnr, r.well_exposed_ssim) if r.well_exposed else None
        return _numbers(r.psnr, r.ssim) + (_well_exposed_cells(well) if exposed else [])

    if len(results) == 1:
        r = results[0]
        rows = []
        if per_image:
            wells = r.well_exposed if r.well_exposed else [None] * len(r.images)
            rows = [[s.name, *_numbers(s.psnr, s.ssim)] + (_well_exposed_cells(w) if exposed else [])
                    for s, w in zip(r.images, wells, strict=True)]
        return _table(["image", "PSNR (dB)", "SSIM", *extra], rows + [["mean", *mean_cells(r)]], markdown=markdown)
    text = _table(["method", "PSNR (dB)", "SSIM", *extra], [[r.method, *mean_cells(r)] for r in results],
                  markdown=markdown)
    if per_image and results[0].images:
        headers = ["image"] + [f"{r.method} {m}" for r in results for m in ("PSNR", "SSIM")]
        rows = [[scores[0].name] + [n for s in scores for n in _numbers(s.psnr, s.ssim)]
                for scores in zip(*(r.images for r in results), strict=True)]
        text += "\n\n" + _table(headers, rows, markdown=markdown)
    return text


def write_markdown(path: str | Path, results: Sequence[MethodResult], title: str = "Evaluation") -> None:
    """A Markdown report: a heading, the comparison table and the per-image table."""
    exposed = (" The well-exposed columns score each method fed the ground truths themselves, output against input "
               "(PSNR of the mean squared error over the images, finite where some come back unchanged)."
               if any(r.well_exposed for r in results) else "")
    write_text(path, f"# {title}\n\nPSNR in dB and SSIM against the ground truth, 8-bit RGB.{exposed}\n\n"
                     f"{format_table(results, markdown=True)}\n")


#: Column titles of the no-reference tables, in :data:`NO_REFERENCE_FIELDS` order.
_NO_REFERENCE_HEADERS = ("LOE", "noise (levels)", "brightness", "clipped (%)")


def _no_reference_cells(values: Sequence[float | None]) -> list[str]:
    loe, noise, brightness, clipped = values
    return ["-" if loe is None or math.isnan(loe) else f"{loe:.1f}", f"{noise:.2f}", f"{brightness:.3f}",
            f"{100 * clipped:.2f}"]


def format_no_reference_table(results: Sequence[NoReferenceResult], *, per_image: bool = True,
                              markdown: bool = False) -> str:
    """No-reference scores as a table of means per method (the inputs first), then one row per image and method.

    Example:
        >>> from zerodce.evaluate.no_reference import NoReferenceScore
        >>> r = NoReferenceResult("input", [NoReferenceScore("1", None, 2.0, 0.25, 0.1)])
        >>> print(format_no_reference_table([r], per_image=False))
        method  LOE  noise (levels)  brightness  clipped (%)
        ------  ---  --------------  ----------  -----------
        input     -            2.00       0.250        10.00
    """
    text = _table(["method", *_NO_REFERENCE_HEADERS],
                  [[r.method, *_no_reference_cells([r.mean(k) for k in NO_REFERENCE_FIELDS])] for r in results],
                  markdown=markdown)
    if per_image:
        rows = [[s.name, r.method, *_no_reference_cells([getattr(s, k) for k in NO_REFERENCE_FIELDS])]
                for images in zip(*(r.images for r in results), strict=True) for r, s in zip(results, images, strict=True)]
        text += "\n\n" + _table(["image", "method", *_NO_REFERENCE_HEADERS], rows, markdown=markdown, align="llrrrr")
    return text


def write_no_reference_markdown(path: str | Path, results: Sequence[NoReferenceResult],
                                title: str = "No-reference evaluation") -> None:
    """A Markdown report of :func:`format_no_reference_table`, with what each column measures."""
    write_text(path, f"# {title}\n\nLOE: lightness-order error against the input (Wang et al. 2013, lightness "
                     "max(R,G,B) area-downsampled to a shorter side of 50 px; 0 = order kept). Noise: scikit-image "
                     "estimate_sigma averaged over channels, in 8-bit levels. Brightness: mean BT.601 luma in [0, 1]. "
                     "Clipped: pixels with any channel at 0 or 255.\n\n"
                     f"{format_no_reference_table(results, markdown=True)}\n")


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
