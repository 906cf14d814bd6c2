"""A collection's corrections: the CSV the page exports, read under a run's label scheme.

  rows = corrections.read_corrections("my_photos/corrections.csv", scheme)

The CSV has the labels.csv columns: `image` (a path relative to the CSV's folder, or
absolute) and one column per task of the run's scheme; an empty label means unknown,
and every other column is ignored. A row that cannot be used (its image missing or not
decodable, a class outside the scheme, no known label at all) is skipped with one line
naming the CSV, the line and the value, as training names a bad labels.csv row; a CSV
with no usable row raises `CorrectionsError`.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import os
import pathlib

from absl import logging

from artclf import scheme as scheme_lib
from artclf.data import images, labels_csv


class CorrectionsError(ValueError):
  """A corrections CSV that cannot be used at all; the message names it."""


@dataclasses.dataclass(frozen=True)
class Row:
  """One usable row: the CSV line, the image file, and its class ids under the scheme."""
  line: int
  image: pathlib.Path
  labels: dict[str, int]  # task -> class id (scheme.UNKNOWN for an empty label)
  image_bytes: bytes = dataclasses.field(repr=False, default=b"")


@dataclasses.dataclass(frozen=True)
class Corrections:
  """The usable rows of a corrections CSV, what was skipped, and the file's sha256."""
  csv_path: pathlib.Path
  sha256: str
  rows: tuple[Row, ...]
  skipped: tuple[str, ...]  # one line per bad row, naming the CSV, line and value

  def __len__(self) -> int:
    return len(self.rows)


def read_corrections(csv_path: str | os.PathLike,
                     scheme: scheme_lib.LabelScheme) -> Corrections:
  """The usable rows of `csv_path` under `scheme` (see the module docstring).

  Raises CorrectionsError (one line) for a file that cannot be read, a header without
  `image` or without any task column of the scheme, and a file with no usable row.
  """
  csv_path = pathlib.Path(csv_path).resolve()
  if not csv_path.is_file():
    raise CorrectionsError(f"{csv_path} not found: give the corrections CSV the page exports")
  data = csv_path.read_bytes()
  try:
    text = labels_csv.read_text(csv_path)
  except labels_csv.DatasetError as error:
    raise CorrectionsError(str(error)) from None
  reader = csv.DictReader(io.StringIO(text, newline=""))
  header = reader.fieldnames or []
  tasks = [t for t in scheme.tasks if t in header]
  if "image" not in header or not tasks:
    raise CorrectionsError(
        f"{csv_path}, line 1: the header needs an image column and at least one of "
        f"{', '.join(scheme.tasks)}; it is {', '.join(header) or '(empty)'}")
  rows, skipped, seen = [], [], {}
  line = 2
  for record in reader:
    where, line = f"{csv_path}, line {line}", reader.line_num + 1
    row, problem = _read_row(record, csv_path.parent, tasks, scheme, where, seen)
    if problem:
      skipped.append(problem)
      logging.warning("skipped: %s", problem)
    else:
      rows.append(row)
  if not rows:
    reason = f"; {len(skipped)} skipped, the first: {skipped[0]}" if skipped else ""
    raise CorrectionsError(f"{csv_path} has no usable row{reason}")
  return Corrections(csv_path, hashlib.sha256(data).hexdigest(), tuple(rows), tuple(skipped))


def _read_row(record: dict, folder: pathlib.Path, tasks: list[str],
              scheme: scheme_lib.LabelScheme, where: str,
              seen: dict) -> tuple[Row | None, str | None]:
  """(the row, None) or (None, the one-line reason it cannot be used)."""
  line = int(where.rsplit(" ", 1)[1])
  raw = (record.get("image") or "").strip()
  if not raw:
    return None, f"{where}: empty image path"
  path = pathlib.Path(raw).expanduser()
  path = (path if path.is_absolute() else folder / path).resolve()
  if path in seen:
    return None, f"{where}: image {raw!r} is already on line {seen[path]}"
  if not path.is_file():
    return None, f"{where}: image file {raw!r} not found ({path})"
  labels = {task: scheme_lib.UNKNOWN for task in scheme.tasks}
  for task in tasks:
    try:
      labels[task] = scheme.class_id(task, record.get(task) or "")
    except scheme_lib.SchemeError as error:
      return None, f"{where}: column {task}: {error}"
  if all(value == scheme_lib.UNKNOWN for value in labels.values()):
    return None, f"{where}: image {raw!r} has no label in {', '.join(tasks)}"
  data = path.read_bytes()
  try:
    images.decode_image(data)
  except images.ImageDecodeError as error:
    return None, f"{where}: image {raw!r}: {error}"
  seen[path] = line
  return Row(line, path, labels, data), None
