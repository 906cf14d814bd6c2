"""A checked batch as CSV in the labels.csv format, so that corrected batches become training data.

Columns: `image`, one per task of the run (`culture, medium, period` for the shared set's
runs), `split`, as labels.csv has them, where the labels are the ones the cataloguer
accepted or corrected ('' = unknown), then
`predicted_<task>` and `<task>_probability` for what the model said, `corrected` (the
tasks the person changed, space-separated) and `source_url` (for images fetched from a URL).

`split` is written empty on purpose: `artclf.data.labels_csv` refuses a row without a
split, so a batch cannot go into training before someone decides where it belongs. Put
the CSV beside the photos as labels.csv (or append its rows to one) and fill the split.

A cell that a spreadsheet would run as a formula (starting with = + - @, tab or CR) gets
a leading apostrophe: file names and URLs come from outside.
"""

from __future__ import annotations

import csv
import io
from typing import Iterable


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def columns(tasks) -> list[str]:
  predicted = []
  for task in tasks:
    predicted += [f"predicted_{task}", f"{task}_probability"]
  return ["image", *tasks, "split", *predicted, "familiarity", "unfamiliar", "corrected",
          "source_url"]


def safe_cell(text: str) -> str:
  return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_row(row: dict, tasks) -> list[str]:
  """row: image, labels {task: name or ''}, predicted (predict's result dict), source_url."""
  chosen, predicted = row["labels"], row["predicted"]
  cells = [safe_cell(row["image"]), *(chosen[task] for task in tasks), ""]
  for task in tasks:
    cells += [predicted[task]["label"], f"{float(predicted[task]['probability']):.6f}"]
  familiarity = predicted.get("familiarity")
  cells += (["", ""] if familiarity is None else
            [f"{float(familiarity):.4f}", "true" if predicted.get("unfamiliar") else "false"])
  corrected = [task for task in tasks if chosen[task] != predicted[task]["label"]]
  return cells + [" ".join(corrected), safe_cell(row.get("source_url") or "")]


def to_csv(rows: Iterable[dict], tasks) -> str:
  buffer = io.StringIO()
  writer = csv.writer(buffer, lineterminator="\n")
  writer.writerow(columns(tasks))
  for row in rows:
    writer.writerow(csv_row(row, tasks))
  return buffer.getvalue()
