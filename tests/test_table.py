"""The one table formatter (zerodce._table), used by eval, train and the benchmark."""

from __future__ import annotations

import pytest

from zerodce._table import format_table


def test_text_columns_align():
    text = format_table(["name", "value", "note"], [["a", "1.5", "x"], ["longer", "10.25", ""]], align="lrl")
    assert text.splitlines() == ["name    value  note",
                                 "------  -----  ----",
                                 "a         1.5  x",
                                 "longer  10.25"]


def test_markdown_rule_marks_right_aligned_columns():
    lines = format_table(["method", "PSNR (dB)"], [["a", "15.00"]], markdown=True).splitlines()
    assert lines == ["| method | PSNR (dB) |", "| ------ | --------: |", "| a      |     15.00 |"]


@pytest.mark.parametrize("rows, align, message", [
    ([["only one"]], None, "a row has 1 cells for 2 columns"),
    ([["a", "b"]], "lx", "align must give 'l' or 'r'"),
    ([["a", "b"]], "l", "align must give"),
])
def test_bad_shapes(rows, align, message):
    with pytest.raises(ValueError, match=message):
        format_table(["h1", "h2"], rows, align=align)
