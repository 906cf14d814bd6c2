"""The labelled-dataset format: a folder with `labels.csv` and the images.

`labels.csv` needs the columns

  image    path of the image file, relative to the folder holding labels.csv
  split    one of the configured split names (default train, val, test)

and holds a column per label task (the shared set's culture, medium and period, or a
run's own tasks: see `artclf.scheme`). Every column but image and split (labels,
object_id, museum, title, license, ...) is kept, as text, in `Example.metadata`; the
labels are checked against a run's scheme when the run reads them
(`artclf.data.dataset.read_labels`), since one folder can serve runs of several schemes.
An empty label means unknown for that task.

`load_dataset` checks the rest before anything is built and raises
`DatasetError` naming the labels.csv line and the offending value. Images that
exist but cannot be decoded are all collected first, then reported together
(count and paths); they are skipped only with `skip_bad_images=True`, and even
then they are listed in `LabelledDataset.bad_images` and logged.
"""

import codecs
import csv
import dataclasses
import io
import logging
import os
import pathlib
import posixpath
import re

from artclf.data import images

LABELS_FILE = "labels.csv"
REQUIRED_COLUMNS = ("image", "split")
DEFAULT_SPLITS = ("train", "val", "test")


class DatasetError(ValueError):
  """A labelled-dataset folder that does not follow the format."""


@dataclasses.dataclass(frozen=True)
class Example:
  """One row of labels.csv, validated."""
  line: int  # Line of labels.csv where the row starts (the header is line 1).
  image: str  # Path relative to the dataset folder, '/'-separated.
  split: str
  metadata: dict[str, str]  # Every column but image and split (labels too), as written.


@dataclasses.dataclass(frozen=True)
class BadImage:
  line: int
  image: str
  reason: str


@dataclasses.dataclass(frozen=True)
class LabelledDataset:
  """A validated dataset folder: the usable examples, and the images skipped."""
  source_dir: pathlib.Path
  examples: tuple[Example, ...]
  metadata_columns: tuple[str, ...]
  bad_images: tuple[BadImage, ...] = ()

  def split(self, name: str) -> list[Example]:
    return [e for e in self.examples if e.split == name]

  def image_path(self, example: Example) -> pathlib.Path:
    return self.source_dir / example.image


def load_dataset(source_dir: str | os.PathLike, *, splits=DEFAULT_SPLITS,
                 check_images: bool = True,
                 skip_bad_images: bool = False) -> LabelledDataset:
  """Reads and validates a labelled-dataset folder.

  Args:
    source_dir: folder holding labels.csv.
    splits: the allowed split names.
    check_images: decode every image to find unreadable ones (about 1 ms per
      small JPEG). Missing files are always an error.
    skip_bad_images: drop undecodable images (reported) instead of failing.

  Raises:
    DatasetError: with the labels.csv line and value, for a missing column, an
      unknown split, a duplicate or missing image, and (unless
      skip_bad_images) for undecodable images, all listed.
  """
  source_dir = pathlib.Path(source_dir)
  csv_path = source_dir / LABELS_FILE
  if not csv_path.is_file():
    raise DatasetError(f"{csv_path}: no {LABELS_FILE} in the dataset folder")
  examples, metadata_columns = _read_rows(csv_path, tuple(splits))
  if not examples:
    raise DatasetError(f"{csv_path} has a header but no rows: add one row per image")
  bad_images = _find_bad_images(source_dir, examples) if check_images else []
  if bad_images:
    listing = "\n".join(f"  line {b.line}: {b.image}: {b.reason}" for b in bad_images)
    shown = "; ".join(f"line {b.line}: {b.image}: {b.reason}" for b in bad_images[:5])
    more = f"; and {len(bad_images) - 5} more (all in the log)" if len(bad_images) > 5 else ""
    summary = f"{csv_path}: {len(bad_images)} of {len(examples)} images cannot be decoded"
    if not skip_bad_images:
      logging.error("%s:\n%s", summary, listing)
      raise DatasetError(f"{summary} ({shown}{more}); fix or remove them, or skip them with "
                         "--skip_bad_images (training: --config.data.skip_bad_images=True)")
    logging.warning("%s; skipping them:\n%s", summary, listing)
    bad_paths = {b.image for b in bad_images}
    examples = [e for e in examples if e.image not in bad_paths]
  return LabelledDataset(source_dir=source_dir, examples=tuple(examples),
                         metadata_columns=metadata_columns, bad_images=tuple(bad_images))


def read_text(csv_path: pathlib.Path) -> str:
  """labels.csv as text: UTF-8 (with or without a BOM) or UTF-16/32 with a BOM.

  Anything else is refused with the line and byte where decoding failed.
  """
  data = csv_path.read_bytes()
  for bom, encoding in ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
                        (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"),
                        (codecs.BOM_UTF8, "utf-8-sig")):
    if data.startswith(bom):
      return data.decode(encoding)
  try:
    return data.decode("utf-8")
  except UnicodeDecodeError as error:
    line = data[:error.start].count(b"\n") + 1
    raise DatasetError(
        f"{csv_path}, line {line}: byte 0x{data[error.start]:02x} is not UTF-8; save the file "
        "as UTF-8 (a spreadsheet's 'CSV UTF-8' export; Latin-1 or Windows-1252 files must be "
        "converted)") from None


def _check_delimiter(csv_path: pathlib.Path, header: list[str]) -> None:
  if len(header) == 1:
    for delimiter, name in ((";", "semicolons"), ("\t", "tabs"), ("|", "bars")):
      if delimiter in header[0]:
        raise DatasetError(f"{csv_path}, line 1: the columns are separated by {name}; "
                           "artclf reads comma-separated files (save as CSV with commas)")


def _check_header_names(csv_path: pathlib.Path, header: list[str]) -> None:
  """Refuses empty, space-padded and repeated column names (a repeated column would
  silently give every row the last one's value)."""
  problems = [f"column {i + 1} has no name" for i, name in enumerate(header) if not name.strip()]
  problems += [f"column {name!r} has spaces around its name" for name in header
               if name.strip() and name != name.strip()]
  seen = set()
  for name in header:
    if name.strip() and name.strip() in seen:
      problems.append(f"column {name.strip()!r} appears more than once")
    seen.add(name.strip())
  if problems:
    raise DatasetError(f"{csv_path}, line 1: {'; '.join(problems)}; every column needs one "
                       "unique name")


_CONTROL = re.compile("\r(?!\n)|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _check_characters(csv_path: pathlib.Path, text: str) -> None:
  """Refuses a bare carriage return or a control character, naming the line."""
  found = _CONTROL.search(text)
  if found:
    line = text.count("\n", 0, found.start()) + 1
    what = ("a carriage return (CR) without a line feed" if found.group() == "\r" else
            f"the control character 0x{ord(found.group()):02x}")
    raise DatasetError(f"{csv_path}, line {line}: {what}; labels.csv must be plain text with "
                       "one row per line (save it again as CSV UTF-8)")


def _read_rows(csv_path: pathlib.Path,
               splits: tuple[str, ...]) -> tuple[list[Example], tuple[str, ...]]:
  text = read_text(csv_path)
  _check_characters(csv_path, text)
  with io.StringIO(text, newline="") as f:
    reader = csv.DictReader(f, strict=True)
    try:
      return _validated_rows(csv_path, reader, splits)
    except csv.Error as error:
      raise DatasetError(f"{csv_path}, line {reader.reader.line_num}: {error} (a quote left "
                         "open?)") from None


def _validated_rows(csv_path: pathlib.Path, reader: csv.DictReader,
                    splits: tuple[str, ...]) -> tuple[list[Example], tuple[str, ...]]:
  header = reader.fieldnames or []
  _check_delimiter(csv_path, header)
  _check_header_names(csv_path, header)
  missing = [c for c in REQUIRED_COLUMNS if c not in header]
  if missing:
    raise DatasetError(
        f"{csv_path}, line 1: missing required column(s) {', '.join(missing)}; "
        f"the header is {', '.join(header) or '(empty)'}")
  metadata_columns = tuple(c for c in header if c not in REQUIRED_COLUMNS)
  examples = []
  first_line_of = {}
  row_start = 2  # The header is line 1; csv line_num counts quoted newlines.
  for row in reader:
    line = row_start
    row_start = reader.line_num + 1
    example = _example(csv_path, line, row, len(header), splits, metadata_columns)
    if example.image in first_line_of:
      raise DatasetError(f"{csv_path}, line {line}: duplicate image {example.image!r} "
                         f"(already on line {first_line_of[example.image]})")
    first_line_of[example.image] = line
    examples.append(example)
  return examples, metadata_columns


def _example(csv_path: pathlib.Path, line: int, row: dict, width: int, splits: tuple[str, ...],
             metadata_columns: tuple[str, ...]) -> Example:
  """One row, checked: its length, image path (inside the folder, present) and split."""
  where = f"{csv_path}, line {line}"
  if None in row or any(row[c] is None for c in REQUIRED_COLUMNS):
    raise DatasetError(f"{where}: expected {width} fields, got a row of a different length")
  image = _normalise_image_path(row["image"], where)
  split = row["split"].strip()
  if split not in splits:
    raise DatasetError(f"{where}: split {split!r} is not one of {', '.join(splits)}")
  if not (csv_path.parent / image).is_file():
    raise DatasetError(f"{where}: image file {image!r} not found in {csv_path.parent}")
  if not _inside(csv_path.parent, csv_path.parent / image):
    raise DatasetError(f"{where}: image {image!r} is a link to a file outside "
                       f"{csv_path.parent}; copy the file into the dataset folder")
  return Example(line=line, image=image, split=split,
                 metadata={c: row[c] for c in metadata_columns})


def _normalise_image_path(raw: str, where: str) -> str:
  path = raw.strip().replace("\\", "/")
  if not path:
    raise DatasetError(f"{where}: empty image path")
  normalised = posixpath.normpath(path)
  # Paths must stay inside the dataset folder so that it can be moved whole.
  if posixpath.isabs(normalised) or normalised.split("/")[0] == "..":
    raise DatasetError(f"{where}: image path {raw!r} is not inside the dataset folder")
  return normalised


def _inside(folder: pathlib.Path, path: pathlib.Path) -> bool:
  """Whether `path`, links resolved, lies inside `folder` (links resolved too)."""
  return path.resolve().is_relative_to(folder.resolve())


def _find_bad_images(source_dir: pathlib.Path, examples: list[Example]) -> list[BadImage]:
  bad = []
  for example in examples:
    try:
      images.decode_image((source_dir / example.image).read_bytes())
    except images.ImageDecodeError as e:
      bad.append(BadImage(line=example.line, image=example.image, reason=str(e)))
  return bad
