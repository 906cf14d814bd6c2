"""The predict CLI's --output file (.csv, .jsonl or .json), written row by row, and resumed.

Every row names the image as given (`image`), its resolved path (`path`) and the run that
predicted it (`workdir`, resolved). `--resume` reads the file back (`read_done`):

* a last row or object cut off by a crash or a full disk is dropped from the file, and
  its image predicted again;
* the images already done are keyed by resolved path, so a resume from another current
  folder, or with absolute instead of relative paths, skips exactly the same images;
* a file written with another workdir is refused: its rows would mix two models.

CSV cells go through `csv_cells`, the page export's writer; NaN or infinite numbers are
never written (empty in CSV, null in JSON).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import pathlib

from artclf.serve import csv_cells

OUTPUT_SUFFIXES = (".csv", ".json", ".jsonl")


class OutputError(ValueError):
  """An --output file that cannot be resumed; the message names it and says what to do."""


def columns(scheme, neighbours: bool = False) -> list[str]:
  """image, path, error, then per task: <task>, <task>_probability, <task>_p_<class>...;
  familiarity, unfamiliar, workdir; with neighbours, `neighbours` (see `neighbour_ids`)."""
  names = ["image", "path", "error"]
  for task, classes in scheme.classes.items():
    names += [task, f"{task}_probability"] + [f"{task}_p_{c}" for c in classes]
  names += ["familiarity", "unfamiliar", "workdir"]
  return names + (["neighbours"] if neighbours else [])


def neighbour_ids(record: dict) -> str:
  """The nearest training photos' object ids (their paths where they have none), nearest
  first, space-separated."""
  return " ".join(n.get("object_id") or n["image"] for n in record.get("neighbours") or [])


def csv_row(record: dict, scheme) -> list[str]:
  """The cells of one record (see `ResultWriter.write`)."""
  number = csv_cells.number_cell
  row = [record["image"], record["path"], record["error"] or ""]
  for task, classes in scheme.classes.items():
    result = record.get(task)
    if result is None:
      row += [""] * (2 + len(classes))
    else:
      row += [result["label"], number(result["probability"], 6)]
      row += [number(result["distribution"][c], 6) for c in classes]
  if record.get("familiarity") is None:
    row += ["", ""]
  else:
    row += [number(record["familiarity"], 4), "true" if record["unfamiliar"] else "false"]
  return row + [record["workdir"]]


def finite(value):
  """`value` with every NaN or infinite float inside it replaced by None (JSON null)."""
  if isinstance(value, dict):
    return {key: finite(item) for key, item in value.items()}
  if isinstance(value, (list, tuple)):
    return [finite(item) for item in value]
  if isinstance(value, float) and not math.isfinite(value):
    return None
  return value


class ResultWriter:
  """Appends results to a .csv, .jsonl or .json file as they come (see the module docstring)."""

  def __init__(self, path: pathlib.Path, append: bool, workdir: str):
    """Opens the file (so that an unwritable one fails before the model loads)."""
    self.path, self.suffix, self.scheme, self.neighbours = path, path.suffix.lower(), None, False
    self.workdir = workdir
    if self.suffix not in OUTPUT_SUFFIXES:
      raise OutputError(f"--output {path}: use a .csv, .jsonl or .json file")
    self.fresh = not (append and path.exists() and path.stat().st_size)
    if not self.fresh:
      cut_to_complete(path)
    self.file = open(path, "w" if self.fresh else "a", encoding="utf-8", newline="")
    self.first = self.fresh or (self.suffix == ".json" and path.read_text().strip() == "[")
    self.csv = csv_cells.CsvWriter(self.file)

  def begin(self, scheme, neighbours: bool = False) -> None:
    """Writes the header of a new file; the CSV columns follow the run's scheme."""
    self.scheme, self.neighbours = scheme, neighbours
    if self.fresh and self.suffix == ".csv":
      self.csv.row(columns(scheme, neighbours))
    elif self.fresh and self.suffix == ".json":
      self.file.write("[\n")
    elif self.suffix == ".csv":
      with open(self.path, newline="", encoding="utf-8") as f:
        header = next(csv.reader(f), [])
      if header != columns(scheme, neighbours):
        raise OutputError(f"{self.path}: its columns are not those of this run's output "
                          f"({', '.join(header[:4])}, ...); write to a new --output file")

  def write(self, name: str, result: dict | None, error: str) -> None:
    record = {"image": name, "path": str(pathlib.Path(name).resolve()), "error": error or None,
              **finite(result or {}), "workdir": self.workdir}
    if self.suffix == ".csv":
      self.csv.row(csv_row(record, self.scheme) +
                   ([neighbour_ids(record)] if self.neighbours else []))
    else:
      text = json.dumps(record, allow_nan=False)
      prefix = "" if self.suffix == ".jsonl" or self.first else ",\n"
      self.file.write(prefix + text + ("\n" if self.suffix == ".jsonl" else ""))
    self.first = False
    self.file.flush()

  def close(self) -> None:
    if self.suffix == ".json":
      self.file.write("\n]\n")
    self.file.close()


def read_done(path: pathlib.Path, workdir: str | None = None) -> set[str]:
  """The resolved paths of the images an output file already holds.

  A row or object cut off at the end of the file is not counted. Raises OutputError for
  a file that another workdir wrote.
  """
  if not path.exists() or not path.stat().st_size:
    return set()
  records, _ = _complete(path)
  done = set()
  for record in records:
    other = record.get("workdir")
    if workdir is not None and other and other != workdir:
      raise OutputError(f"{path} holds predictions of another run ({other}), not of "
                        f"{workdir}; resume with that --workdir, or write to a new --output")
    if record.get("path"):
      done.add(record["path"])
    elif record.get("image"):  # written before rows kept their resolved path
      done.add(str(pathlib.Path(record["image"]).resolve()))
  return done


def cut_to_complete(path: pathlib.Path) -> None:
  """Cuts the file back to its complete records (a JSON array left open for more)."""
  _, kept = _complete(path)
  if kept != path.read_text(encoding="utf-8", errors="replace"):
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(kept, encoding="utf-8", newline="")
    os.replace(tmp, path)


def _complete(path: pathlib.Path) -> tuple[list[dict], str]:
  """(the complete records of the file, its text cut back to them)."""
  text = path.read_text(encoding="utf-8", errors="replace")
  suffix = path.suffix.lower()
  if suffix == ".json":
    records = []
    for line in text.splitlines()[1:]:
      try:
        records.append(finite(json.loads(line.strip().rstrip(","))))
      except ValueError:
        break  # the closing ']', or an object cut off
    return records, "[\n" + ",\n".join(json.dumps(r, allow_nan=False) for r in records)
  kept = text[:text.rfind("\n") + 1]  # a last line without its line end was cut
  if suffix == ".csv":
    return list(csv.DictReader(io.StringIO(kept, newline=""))), kept
  records = []
  for number, line in enumerate(kept.splitlines(), 1):
    if not line.strip():
      continue
    try:
      records.append(json.loads(line))
    except ValueError:
      raise OutputError(f"{path}, line {number}: not a JSON record; write to a new "
                        "--output file") from None
  return records, kept
