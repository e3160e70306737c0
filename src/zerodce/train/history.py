"""The history of a run: ``history.csv``, its plot ``history.png`` and the report's loss table."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from zerodce._atomic import atomic_file, write_atomic
from zerodce.losses import COMPONENTS

def history_columns() -> list[str]:
    """Columns of ``history.csv``.

    Example:
        >>> history_columns()[:5]
        ['epoch', 'lr', 'seconds', 'images_per_s', 'train_total']
    """
    losses = ("total", *COMPONENTS)
    return ["epoch", "lr", "seconds", "images_per_s", *(f"train_{k}" for k in losses), *(f"val_{k}" for k in losses)]


def write_history(history: list[dict[str, float]], out: Path) -> None:
    """Write ``history.csv`` and ``history.png`` into ``out`` (each atomically)."""
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, history_columns())
    writer.writeheader()
    writer.writerows(history)
    write_atomic(out / "history.csv", text.getvalue().encode())
    with atomic_file(out / "history.png") as file:
        plot_history(history).save(file, format="PNG")


def format_table(row: dict[str, float]) -> str:
    """The report's loss table for one epoch: each loss, train and validation.

    Example:
        >>> row = {f"{s}_{k}": 0.5 for s in ("train", "val") for k in ("total", *COMPONENTS)}
        >>> print(format_table(row).splitlines()[1])
        total                        0.500000    0.500000
    """
    lines = [f"{'loss':<24} {'train':>12} {'validation':>11}"]
    for name in ("total", *COMPONENTS):
        lines.append(f"{name:<24} {row[f'train_{name}']:>12.6f} {row[f'val_{name}']:>11.6f}")
    return "\n".join(lines)


def plot_history(history: list[dict[str, float]], panel: tuple[int, int] = (300, 200)):
    """Loss curves (train blue, validation orange), one panel per loss, as a PIL image.

    Example:
        >>> rows = [{f"{s}_{k}": 1 / e for s in ("train", "val") for k in ("total", *COMPONENTS)} | {"epoch": e}
        ...         for e in (1, 2, 3)]
        >>> plot_history(rows).size
        (900, 400)
    """
    from PIL import Image, ImageDraw

    colors = {"train": (31, 119, 180), "val": (255, 127, 14)}
    width, height = panel
    image = Image.new("RGB", (3 * width, 2 * height), "white")
    draw = ImageDraw.Draw(image)
    margin = 10
    epochs = [row["epoch"] for row in history]
    for n, name in enumerate(("total", *COMPONENTS)):
        x0, y0 = (n % 3) * width + margin, (n // 3) * height + 20
        x1, y1 = x0 + width - 2 * margin, y0 + height - 40
        draw.rectangle((x0, y0, x1, y1), outline="gray")
        values = [row[f"{s}_{name}"] for row in history for s in colors if math.isfinite(row[f"{s}_{name}"])]
        if not values:
            draw.text((x0, y0 - 14), name, fill="black")
            continue
        low, high = min(values), max(values)
        span = (high - low) or 1.0
        # The range goes in the title: the panels share no scale, the terms differ by orders of magnitude.
        draw.text((x0, y0 - 14), f"{name}  [{low:.3g}, {high:.3g}]", fill="black")
        draw.text((x0, y1 + 4), f"epoch {int(epochs[0])}", fill="black")
        draw.text((x1 - 60, y1 + 4), f"epoch {int(epochs[-1])}", fill="black")
        e_span = (epochs[-1] - epochs[0]) or 1
        for s, color in colors.items():
            points = [(x0 + (row["epoch"] - epochs[0]) / e_span * (x1 - x0), y1 - (row[f"{s}_{name}"] - low) / span * (y1 - y0))
                      for row in history if math.isfinite(row[f"{s}_{name}"])]
            if len(points) > 1:
                draw.line(points, fill=color, width=2)
            elif points:
                draw.ellipse((points[0][0] - 2, points[0][1] - 2, points[0][0] + 2, points[0][1] + 2), fill=color)
    lx, ly = 2 * width + margin, height + 30
    for k, (s, color) in enumerate(colors.items()):
        draw.line((lx, ly + 20 * k + 6, lx + 30, ly + 20 * k + 6), fill=color, width=3)
        draw.text((lx + 40, ly + 20 * k), "train" if s == "train" else "validation", fill="black")
    return image
