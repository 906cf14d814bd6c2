"""The corrections made on the page, kept on the server as they are made.

  store = teaching.CorrectionStore(teach_dir)
  store.save("bust.jpg", photo_bytes, {"culture": "roman", "medium": ""})  # one per task
  store.listing()                  # [{'id', 'image', 'labels', 'updated'}, ...]
  store.write_csv(path, tasks)     # a labels.csv of them for `artclf.adapt`
  store.mark_taught(ids, "taught-20261202-140501")  # they went into that run

TEACH_DIR/corrections.json lists them; TEACH_DIR/photos/ holds each corrected photo once,
named by the sha256 of its bytes, so a reload of the page or a restart of the server
loses nothing and the same photo corrected twice is one row. Each write replaces the
JSON file atomically. A correction whose labels are all unknown is removed.
"""

from __future__ import annotations

import csv
import hashlib
import json
import pathlib
import threading
import time

from artclf.run import files

CORRECTIONS_FILE = "corrections.json"
PHOTOS_FOLDER = "photos"
# The photo's own suffix when it is an image suffix; others are kept as .jpg (adapt
# decodes the bytes, whatever the name says).
SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp")


class CorrectionStore:
  """The corrections of TEACH_DIR, safe to use from several request threads."""

  def __init__(self, teach_dir: pathlib.Path):
    self.folder = pathlib.Path(teach_dir)
    self._lock = threading.Lock()

  @property
  def _file(self) -> pathlib.Path:
    return self.folder / CORRECTIONS_FILE

  def _read(self) -> dict[str, dict]:
    try:
      return json.loads(self._file.read_text())
    except FileNotFoundError:
      return {}
    except (OSError, ValueError) as error:
      raise ValueError(f"{self._file} cannot be read ({error}); move it away to start "
                       "afresh") from None

  def listing(self) -> list[dict]:
    """Every correction, oldest first: id, image (the name it was uploaded as), labels,
    updated (seconds since the epoch), taught_in (the runs it went into)."""
    with self._lock:
      saved = self._read()
    return sorted(({"id": key, **{k: v for k, v in value.items() if k != "photo"}}
                   for key, value in saved.items()), key=lambda item: item["updated"])

  def save(self, name: str, data: bytes, labels: dict[str, str]) -> str:
    """Keeps the photo and its labels ('' = unknown); returns its id."""
    key = hashlib.sha256(data).hexdigest()[:24]
    suffix = pathlib.PurePath(name).suffix.lower()
    photo = pathlib.Path(PHOTOS_FOLDER) / (key + (suffix if suffix in SUFFIXES else ".jpg"))
    with self._lock:
      saved = self._read()
      if not any(labels.values()):
        saved.pop(key, None)
      else:
        (self.folder / PHOTOS_FOLDER).mkdir(parents=True, exist_ok=True)
        if not (self.folder / photo).exists():
          (self.folder / photo).write_bytes(data)
        previous = saved.get(key, {})
        taught_in = previous.get("taught_in", []) if previous.get("labels") == labels else []
        saved[key] = {"image": name, "labels": dict(labels), "photo": str(photo),
                      "updated": time.time(), "taught_in": taught_in}
      self.folder.mkdir(parents=True, exist_ok=True)
      files.write_json(self._file, saved)
    return key

  def remove(self, key: str) -> bool:
    with self._lock:
      saved = self._read()
      if saved.pop(key, None) is None:
        return False
      files.write_json(self._file, saved)
    return True

  def photo(self, key: str) -> bytes:
    """The corrected photo's bytes (KeyError for an unknown id)."""
    with self._lock:
      entry = self._read()[key]
    return (self.folder / entry["photo"]).read_bytes()

  def write_csv(self, path: pathlib.Path, tasks, exclude_taught_in=()) -> list[str]:
    """Writes the corrections as a labels.csv (absolute photo paths) for `artclf.adapt`,
    leaving out those already taught into one of the runs `exclude_taught_in`; returns
    the ids written (nothing is written when there is none)."""
    with self._lock:
      saved = self._read()
    keys = [key for key, entry in saved.items()
            if not set(entry.get("taught_in", ())) & set(exclude_taught_in)]
    if not keys:
      return []
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as out:
      writer = csv.writer(out)
      writer.writerow(["image", *tasks, "source_name"])
      for key in keys:
        entry = saved[key]
        writer.writerow([str((self.folder / entry["photo"]).resolve()),
                         *(entry["labels"].get(task, "") for task in tasks), entry["image"]])
    return keys

  def photos_of(self, keys) -> list[tuple[str, bytes, dict[str, str]]]:
    """(name, bytes, labels) of these corrections."""
    with self._lock:
      saved = self._read()
    return [(saved[key]["image"], (self.folder / saved[key]["photo"]).read_bytes(),
             saved[key]["labels"]) for key in keys if key in saved]

  def mark_taught(self, keys, run: str) -> None:
    """Records that these corrections went into `run` (a later change clears it)."""
    with self._lock:
      saved = self._read()
      for key in keys:
        if key in saved:
          saved[key]["taught_in"] = sorted(set(saved[key].get("taught_in", [])) | {run})
      files.write_json(self._file, saved)
