"""A checked batch as CSV in the labels.csv format, so that corrected batches become training data.

Columns: `image`, one per task of the run (`culture, medium, period` for the shared set's
runs), `split`, as labels.csv has them, where the labels are the ones the cataloguer
accepted or corrected ('' = unknown), then
`predicted_<task>` and `<task>_probability` for what the model said, `corrected` (the
tasks the person changed, space-separated) and `source_url` (for images fetched from a URL).

`split` is written empty on purpose: `artclf.data.labels_csv` refuses a row without a
split, so a batch cannot go into training before someone decides where it belongs. Put
the CSV beside the photos as labels.csv (or append its rows to one) and fill the split.

Every cell goes through `csv_cells` (the predict CLI's writer too): file names, URLs and
labels come from outside, so control characters are replaced, a cell a spreadsheet would
run as a formula gets a leading apostrophe, and NaN or infinite probabilities a client
sent are written empty.
"""

from __future__ import annotations

import io
from typing import Iterable

from artclf.serve import csv_cells


def columns(tasks) -> list[str]:
  predicted = []
  for task in tasks:
    predicted += [f"predicted_{task}", f"{task}_probability"]
  return ["image", *tasks, "split", *predicted, "familiarity", "unfamiliar", "corrected",
          "source_url"]


def csv_row(row: dict, tasks) -> list[str]:
  """row: image, labels {task: name or ''}, predicted (predict's result dict), source_url."""
  chosen, predicted = row["labels"], row["predicted"]
  text, number = csv_cells.text_cell, csv_cells.number_cell
  cells = [text(row["image"]), *(text(chosen[task]) for task in tasks), ""]
  for task in tasks:
    cells += [text(predicted[task]["label"]), number(predicted[task]["probability"], 6)]
  familiarity = number(predicted.get("familiarity"), 4)
  cells += (["", ""] if not familiarity else
            [familiarity, "true" if predicted.get("unfamiliar") else "false"])
  corrected = [task for task in tasks if chosen[task] != predicted[task]["label"]]
  return cells + [" ".join(corrected), text(row.get("source_url") or "")]


def to_csv(rows: Iterable[dict], tasks) -> str:
  buffer = io.StringIO(newline="")
  writer = csv_cells.CsvWriter(buffer)
  writer.row(columns(tasks))
  for row in rows:
    writer.row(csv_row(row, tasks))
  return buffer.getvalue()
