"""The one text/Markdown table formatter, used by every report (evaluation, training, benchmarks)."""

from __future__ import annotations

from typing import Sequence


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, markdown: bool = False,
                 align: str | None = None) -> str:
    """Rows of already-formatted cells as an aligned text table, or a Markdown one.

    Args:
        headers: one title per column.
        rows: one list of cell strings per row, as many cells as ``headers``.
        markdown: a GitHub Markdown table (``|`` separated, alignment in the rule)
            instead of columns separated by two spaces under a rule of dashes.
        align: ``"l"`` or ``"r"`` per column; default: the first column left,
            the others right (labels, then numbers).

    Raises:
        ValueError: a row or ``align`` of another length than ``headers``.

    Example:
        >>> print(format_table(["image", "PSNR"], [["1", "20.00"], ["mean", "7.50"]]))
        image   PSNR
        -----  -----
        1      20.00
        mean    7.50
        >>> print(format_table(["a", "b"], [["x", "1"]], markdown=True))
        | a | b |
        | - | -: |
        | x | 1 |
    """
    align = align if align is not None else "l" + "r" * (len(headers) - 1)
    if len(align) != len(headers) or set(align) - {"l", "r"}:
        raise ValueError(f"align must give 'l' or 'r' for each of the {len(headers)} columns, got {align!r}")
    for row in rows:
        if len(row) != len(headers):
            raise ValueError(f"a row has {len(row)} cells for {len(headers)} columns: {list(row)}")
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        padded = [str(c).ljust(w) if a == "l" else str(c).rjust(w) for c, w, a in zip(cells, widths, align)]
        return f"| {' | '.join(padded)} |" if markdown else "  ".join(padded).rstrip()

    if markdown:
        rule = "| " + " | ".join("-" * max(1, w - 1) + ":" if a == "r" else "-" * w
                                 for w, a in zip(widths, align)) + " |"
    else:
        rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])
