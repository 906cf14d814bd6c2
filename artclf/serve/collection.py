"""Prediction over a whole collection: what `python -m artclf.predict` runs.

Files stream through in batches with bounded memory, whatever their number: threads
decode the next batches (grain) while the model runs on this one; each result is printed
and written to the output file as soon as it is known, so that a crash loses nothing
already done, and `--resume` skips the images the output file already holds. A progress
line on stderr gives images/s and the time left. An unreadable file gets its own error
line and the rest go on; the exit status is 1 if any input failed.
"""

from __future__ import annotations

import csv
import io
import json
import os
import pathlib
import sys
import time
from typing import Iterable, Iterator, Sequence

import grain
import numpy as np

from artclf.serve import predict as predict_lib

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp"}
OUTPUT_SUFFIXES = (".csv", ".json", ".jsonl")


def expand_inputs(paths: Iterable[str]) -> list[pathlib.Path]:
  """Files as given, and the image files inside folders (sorted, recursively)."""
  found = []
  for raw in paths:
    path = pathlib.Path(raw)
    if path.is_dir():
      found.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES))
    else:
      found.append(path)
  return found


def decoded_batches(files: Sequence[pathlib.Path], model, batch_size: int,
                    threads: int) -> Iterator[list[tuple[str, np.ndarray | None, str]]]:
  """Batches of (name, evaluation view or None, error), decoded `threads` at a time."""
  def decode(path) -> tuple[str, np.ndarray | None, str]:
    try:
      return str(path), model.view(predict_lib.read_input(path)), ""
    except (ValueError, TypeError) as error:
      return str(path), None, str(error)

  stream = grain.MapDataset.source([str(f) for f in files]).map(decode).batch(
      batch_size, batch_fn=list).to_iter_dataset(
          grain.ReadOptions(num_threads=threads, prefetch_buffer_size=2 * max(threads, 1)))
  yield from stream


class ResultWriter:
  """Appends results to a .csv, .jsonl or .json file as they come (see `read_done`)."""

  def __init__(self, path: pathlib.Path, append: bool):
    """Opens the file (so that an unwritable one fails before the model loads)."""
    self.path, self.suffix, self.scheme, self.neighbours = path, path.suffix.lower(), None, False
    if self.suffix not in OUTPUT_SUFFIXES:
      raise ValueError(f"--output {path}: use a .csv, .jsonl or .json file")
    self.fresh = not (append and path.exists() and path.stat().st_size)
    if self.suffix == ".json" and not self.fresh:
      _reopen_json_array(path)
    self.file = open(path, "w" if self.fresh else "a", encoding="utf-8", newline="")
    self.first = self.fresh

  def begin(self, scheme, neighbours: bool = False) -> None:
    """Writes the header of a new file; the CSV columns follow the run's scheme."""
    self.scheme, self.neighbours = scheme, neighbours
    if self.fresh and self.suffix == ".csv":
      csv.writer(self.file).writerow(csv_columns(scheme, neighbours))
    elif self.fresh and self.suffix == ".json":
      self.file.write("[\n")

  def write(self, name: str, result: dict | None, error: str) -> None:
    if self.suffix == ".csv":
      row = csv_row(name, result, error, self.scheme)
      csv.writer(self.file).writerow(row + ([neighbour_ids(result)] if self.neighbours else []))
    else:
      record = json.dumps({"image": name, "error": error or None, **(result or {})})
      prefix = "" if self.suffix == ".jsonl" or self.first else ",\n"
      self.file.write(prefix + record + ("\n" if self.suffix == ".jsonl" else ""))
    self.first = False
    self.file.flush()

  def close(self) -> None:
    if self.suffix == ".json":
      self.file.write("\n]\n")
    self.file.close()


def _reopen_json_array(path: pathlib.Path) -> None:
  """Drops the closing ']' of a JSON array written earlier, so records can follow."""
  text = path.read_text(encoding="utf-8").rstrip()
  if text.endswith("]"):
    path.write_text(text[:-1].rstrip() + "\n", encoding="utf-8")


def read_done(path: pathlib.Path) -> set[str]:
  """The image names an output file already holds (rows cut off by a crash are ignored)."""
  if not path.exists():
    return set()
  text = path.read_text(encoding="utf-8")
  if path.suffix.lower() == ".csv":
    return {row["image"] for row in csv.DictReader(io.StringIO(text)) if row.get("image")}
  done = set()
  for line in text.splitlines():
    line = line.strip().lstrip(",").strip()
    if line.startswith("{"):
      try:
        done.add(json.loads(line.rstrip(","))["image"])
      except (ValueError, KeyError):
        continue
  return done


def csv_columns(scheme, neighbours: bool = False) -> list[str]:
  """image, error, then per task of the run: <task>, <task>_probability, <task>_p_<class>...;
  familiarity, unfamiliar; with neighbours, `neighbours` (see `neighbour_ids`)."""
  columns = ["image", "error"]
  for task, names in scheme.classes.items():
    columns += [task, f"{task}_probability"] + [f"{task}_p_{c}" for c in names]
  return columns + ["familiarity", "unfamiliar"] + (["neighbours"] if neighbours else [])


def neighbour_ids(result: dict | None) -> str:
  """The nearest training photos' object ids (their paths where they have none), nearest
  first, space-separated."""
  found = (result or {}).get("neighbours") or []
  return " ".join(n.get("object_id") or n["image"] for n in found)


def csv_row(name: str, result: dict | None, error: str, scheme) -> list:
  row = [name, error]
  for task, names in scheme.classes.items():
    if result is None:
      row += [""] * (2 + len(names))
    else:
      row += [result[task]["label"], f"{result[task]['probability']:.6f}"]
      row += [f"{result[task]['distribution'][c]:.6f}" for c in names]
  if result is None or result.get("familiarity") is None:
    return row + ["", ""]
  return row + [f"{result['familiarity']:.4f}", "true" if result["unfamiliar"] else "false"]


def format_line(name: str, result: dict | None, error: str, width: int, tasks) -> str:
  """One table line: the name, then label (probability) per task, or the error."""
  if result is None:
    return f"{name.ljust(width)}  ERROR: {error}"
  cells = [f"{result[t]['label']} ({result[t]['probability']:.2f})".ljust(20) for t in tasks]
  if result.get("unfamiliar"):
    cells.append("UNFAMILIAR")
  return f"{name.ljust(width)}  " + "  ".join(cells).rstrip()


def format_header(width: int, tasks) -> str:
  return f"{'image'.ljust(width)}  " + "  ".join(t.ljust(20) for t in tasks).rstrip()


class _Progress:
  """'predicted N/M images, X images/s, T left' on stderr every few seconds."""

  def __init__(self, total: int, every: float = 5.0):
    self.total, self.done, self.every = total, 0, every
    self.start = self.last = time.time()

  def step(self, count: int, final: bool = False) -> None:
    self.done += count
    now = time.time()
    if now - self.last >= self.every or (final and self.total > 0):
      rate = self.done / max(now - self.start, 1e-9)
      left = (self.total - self.done) / max(rate, 1e-9)
      print(f"predicted {self.done}/{self.total} images, {rate:.1f} images/s, "
            f"{left / 60:.1f} min left", file=sys.stderr, flush=True)
      self.last = now


def run_cli(paths: Sequence[str], workdir: str, output: str | None = None,
            explain_dir: str | None = None, flip_tta: bool | None = None, resume: bool = False,
            batch_size: int = 32, threads: int = 4, stream=sys.stdout,
            neighbours: int = 0) -> int:
  """The CLI's work, importable for tests: returns the exit status."""
  files = expand_inputs(paths)
  if not files:
    print("no images found in the given paths", file=sys.stderr)
    return 1
  writer = None
  if output:
    output_path = pathlib.Path(output)
    done = read_done(output_path) if resume else set()
    files = [f for f in files if str(f) not in done]
    if done:
      print(f"resuming: {len(done)} images already in {output_path}", file=sys.stderr)
    try:  # before the model loads: a bad --output fails in a second, not after the work
      writer = ResultWriter(output_path, append=resume)
    except OSError as error:
      print(f"error: cannot write {output_path}: {error.strerror}", file=sys.stderr)
      return 2
  model = predict_lib.load_model(workdir)
  if writer:
    writer.begin(model.scheme, neighbours > 0)
  failed = _predict_stream(files, model, writer, explain_dir, flip_tta, batch_size, threads,
                           stream, neighbours)
  if writer:
    writer.close()
  if failed:
    print(f"{failed} of {len(files)} inputs could not be read", file=sys.stderr)
  return 1 if failed else 0


def _predict_stream(files, model, writer, explain_dir, flip_tta, batch_size, threads,
                    stream, neighbours: int = 0) -> int:
  """Predicts, prints and writes every file, batch after batch; returns the failures."""
  width = min(60, max([len("image")] + [len(str(f)) for f in files]))
  print(format_header(width, model.scheme.tasks), file=stream)
  progress, failed, index = _Progress(len(files)), 0, 0
  for batch in decoded_batches(files, model, batch_size, threads):
    good = [i for i, (_, view, _) in enumerate(batch) if view is not None]
    computed = (predict_lib.results_of_views(model, np.stack([batch[i][1] for i in good]),
                                             flip_tta, neighbours=neighbours) if good else [])
    results = dict(zip(good, computed))
    for i, (name, _, error) in enumerate(batch):
      print(format_line(name, results.get(i), error, width, model.scheme.tasks), file=stream,
            flush=True)
      if writer:
        writer.write(name, results.get(i), error)
    if explain_dir:
      _explain(model, [(index + i, batch[i][0], batch[i][1]) for i in good],
               pathlib.Path(explain_dir))
    failed += len(batch) - len(good)
    index += len(batch)
    progress.step(len(batch), final=index == len(files))
  return failed


def _explain(model, items, out_dir: pathlib.Path) -> None:
  """Grad-CAM overlays of one batch's (number, name, view) images, one PNG per task."""
  from artclf.serve import gradcam  # pylint: disable=import-outside-toplevel
  out_dir.mkdir(parents=True, exist_ok=True)
  for number, name, view in items:
    picture = predict_lib.to_picture(name)
    stem = f"{number:04d}_{pathlib.Path(name).stem}"
    for task, heatmap in gradcam.explain(model, picture, view).items():
      gradcam.overlay(picture, heatmap).save(out_dir / f"{stem}_{task}.png")
