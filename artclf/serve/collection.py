"""Prediction over a whole collection: what `python -m artclf.predict` runs.

Files stream through in batches with bounded memory, whatever their number: threads
decode the next batches (grain) while the model runs on this one; each result is printed
and written to the output file as soon as it is known, so that a crash loses nothing
already done, and `--resume` skips the images the output file already holds (the file's
format and its resume: `predict_output`). A progress line on stderr gives images/s and the
time left. An unreadable file gets its own error line and the rest go on; the exit status
is 1 if any input failed. Entries of a folder that are not image files (other types, no
extension, FIFOs, broken or looping links) are counted and named in the closing summary,
e.g. `predicted 29/36, 7 skipped: ...`.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import stat
import sys
import tempfile
import time
from typing import Iterable, Iterator, Sequence

import grain
import numpy as np

from artclf.serve import csv_cells, predict_output
from artclf.serve import predict as predict_lib

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp"}


@dataclasses.dataclass
class Inputs:
  files: list[pathlib.Path]
  skipped: list[tuple[pathlib.Path, str]]  # entries of folders that are not image files

  def summary(self) -> str:
    """'N skipped: name (why); ...' (the first ten), or ''."""
    if not self.skipped:
      return ""
    shown = "; ".join(f"{path} ({why})" for path, why in self.skipped[:10])
    more = f"; and {len(self.skipped) - 10} more" if len(self.skipped) > 10 else ""
    return f"{len(self.skipped)} skipped: {shown}{more}"


def find_inputs(paths: Iterable[str]) -> Inputs:
  """Files as given, and the image files inside folders (sorted, recursively, links to
  folders not followed); every other entry of a folder is counted as skipped, with why."""
  inputs = Inputs([], [])
  for raw in paths:
    path = pathlib.Path(raw)
    if not path.is_dir():
      inputs.files.append(path)
      continue
    found = []
    for folder, dirs, names in os.walk(path):
      links = [d for d in dirs if os.path.islink(os.path.join(folder, d))]
      for entry in (pathlib.Path(folder) / name for name in names + links):
        why = _skip_reason(entry)
        if why:
          inputs.skipped.append((entry, why))
        else:
          found.append(entry)
    inputs.files.extend(sorted(found))
  inputs.skipped.sort()
  return inputs


def _skip_reason(entry: pathlib.Path) -> str:
  """Why a folder's entry is not predicted, or '' for an image file."""
  try:
    mode = entry.stat().st_mode
  except OSError:
    return "a broken link or a link loop"
  if stat.S_ISDIR(mode):
    return "a link to a folder, not followed"
  if not stat.S_ISREG(mode):
    return "not a regular file (a FIFO, socket or device)"
  if not entry.suffix:
    return "no file extension"
  if entry.suffix.lower() not in IMAGE_SUFFIXES:
    return f"{entry.suffix} is not a supported image type"
  return ""


def expand_inputs(paths: Iterable[str]) -> list[pathlib.Path]:
  """The files `find_inputs` would predict."""
  return find_inputs(paths).files


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
  inputs = find_inputs(paths)
  if not inputs.files:
    print("no images found in the given paths" + (f"; {inputs.summary()}" if inputs.skipped
                                                  else ""), file=sys.stderr)
    return 1
  try:  # before the model loads: a bad --output fails in a second, not after the work
    files, writer = _open_output(inputs.files, output, resume, str(pathlib.Path(workdir).resolve()))
    _check_writable(explain_dir)
  except OSError as error:
    print(f"error: cannot write {error.filename}: {error.strerror}", file=sys.stderr)
    return 2
  model = predict_lib.load_model(workdir)
  if writer:
    writer.begin(model.scheme, neighbours > 0)
  failed = _predict_stream(files, model, writer, explain_dir, flip_tta, batch_size, threads,
                           stream, neighbours)
  if writer:
    writer.close()
  summary = [f"predicted {len(files) - failed}/{len(files) + len(inputs.skipped)}"]
  summary += [f"{failed} could not be read"] if failed else []
  summary += [inputs.summary()] if inputs.skipped else []
  print(", ".join(summary), file=sys.stderr)
  return 1 if failed else 0


def _open_output(files: list[pathlib.Path], output: str | None, resume: bool, workdir: str):
  """(the files still to predict, the output's writer or None); with `resume`, the files
  the output already holds are left out (see `predict_output.read_done`)."""
  if not output:
    return files, None
  path = pathlib.Path(output)
  done = predict_output.read_done(path, workdir) if resume else set()
  if done:  # a CSV holds the path as its cell (control characters replaced)
    files = [f for f in files
             if not {str(f.resolve()), csv_cells.text_cell(str(f.resolve()))} & done]
    print(f"resuming: {len(done)} images already in {path}", file=sys.stderr)
  try:
    return files, predict_output.ResultWriter(path, append=resume, workdir=workdir)
  except OSError as error:
    raise OSError(error.errno, error.strerror, str(path)) from None


def _check_writable(folder: str | None) -> None:
  """Creates `folder` and writes a file into it; OSError naming it if that fails."""
  if not folder:
    return
  try:
    pathlib.Path(folder).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=folder):
      pass
  except OSError as error:
    raise OSError(error.errno, error.strerror, folder) from None


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
