"""The one CSV writer of artclf's outputs: the predict CLI's file and the page's export.

File names, URLs and labels come from outside, and a CSV is opened in spreadsheets, so
every cell written goes through `text_cell` or `number_cell`:

* control characters (C0, DEL and C1: tabs, line breaks, a bare carriage return) become
  U+FFFD, so that no cell can end a row early or start a new one;
* a cell starting with = + - or @ gets a leading apostrophe, so that no spreadsheet runs
  it as a formula;
* numbers that are not finite (NaN, inf) are written empty, never as text;
* cells are quoted where the CSV format needs it (commas, quotes), and rows end in CRLF,
  so that Python's csv reader, and artclf's labels.csv loader, read the file back.
"""

from __future__ import annotations

import csv
import math
import re
from typing import IO, Iterable

FORMULA_STARTS = ("=", "+", "-", "@")
REPLACEMENT = "\ufffd"
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def text_cell(value) -> str:
  """A text cell that a spreadsheet shows as text and a CSV reader reads as one cell."""
  text = _CONTROL.sub(REPLACEMENT, "" if value is None else str(value))
  return "'" + text if text.startswith(FORMULA_STARTS) else text


def number_cell(value, digits: int) -> str:
  """`value` with `digits` decimals; empty for None, NaN or infinity."""
  if value is None:
    return ""
  number = float(value)
  return f"{number:.{digits}f}" if math.isfinite(number) else ""


class CsvWriter:
  """Rows of cells onto an open text file (opened with newline='')."""

  def __init__(self, file: IO[str]):
    self._writer = csv.writer(file, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)

  def row(self, cells: Iterable[str]) -> None:
    """Writes one row; every cell goes through `text_cell` (which leaves safe cells, and
    the cells `number_cell` makes, as they are)."""
    self._writer.writerow([text_cell(cell) for cell in cells])
