r"""Builds the Egyptian, Greek and Roman dataset from the museums' open-access APIs.

  python -m artclf.museums.harvest --out=/data/museum_art [--sources=met,cleveland,aic] \
      [--limit=N] [--image_size=512]

Writes the ancient_art folder format (see /work/shared/data/ancient_art/README.md and
docs/harvest.md): `images/<museum>/<object_id>.jpg` and `labels.csv` with the columns
`LABEL_COLUMNS`, plus `drops.csv` (every record left out, with its reason) and
`manifest.jsonl` (what a second run needs to skip verified images).

Steps: list public-domain records with an image from each source
(`artclf.museums.sources`), label them (`artclf.museums.rules`; drops logged),
cap series of alike titled objects, download and store the images concurrently
(`artclf.museums.http_client`, `artclf.museums.image_store`), drop duplicate pictures, assign
splits by a stable hash of the object ID and write labels.csv atomically.

Splits: u = (first 4 bytes of sha256(object_id) as a big-endian integer) / 2**32;
u < 0.15 -> val, u < 0.30 -> test, else train (about 70/15/15). An object keeps its split
when others are added or removed, and across rebuilds.
"""

import collections
import concurrent.futures
import csv
import dataclasses
import hashlib
import io
import os
import re
import sys
import threading
import time

from absl import logging

from artclf.labels import CLASSES, TASKS
from artclf.museums import rules, sources
from artclf.museums import image_store as image_store_lib
from artclf.museums.http_client import HttpClient, HttpError
from artclf.museums.record import MuseumRecord

LABEL_COLUMNS = ("image", "object_id", "museum", "title", "object_name", "date_text",
                 "begin_year", "end_year", "culture", "medium", "period", "split",
                 "license", "source_url")
DROP_COLUMNS = ("object_id", "museum", "title", "reason")
SOURCES = ("met", "cleveland", "aic")
VAL_FRACTION = 0.15
TEST_FRACTION = 0.15



@dataclasses.dataclass(frozen=True)
class BuildConfig:
  """Everything `build` needs; the flags of `python -m artclf.museums` fill it in."""
  out: str
  sources: tuple[str, ...] = SOURCES
  limit: int | None = None
  image_size: int = 512
  max_image_pixels: int = 100_000_000
  workers: int = 8
  max_concurrency: int = 4
  timeout: float = 30.0
  retries: int = 5
  backoff: float = 1.0
  max_retry_after: float = 300.0
  series_max: int = 10
  series_keep: int = 3
  dedupe_perceptual: bool = True
  met_url: str = "https://collectionapi.metmuseum.org/public/collection/v1"
  cleveland_url: str = "https://openaccess-api.clevelandart.org/api"
  aic_url: str = "https://api.artic.edu/api/v1"
  aic_iiif_url: str = "https://www.artic.edu/iiif/2"
  met_rate: float = 40.0
  cleveland_rate: float = 5.0
  aic_rate: float = 0.9
  aic_iiif_rate: float = 0.9
  user_agent: str = "artclf-museums/0.1 (dataset builder)"


@dataclasses.dataclass
class Row:
  """One kept object on its way to labels.csv."""
  record: MuseumRecord
  labels: rules.Labelled
  image: image_store_lib.StoredImage | None = None


class DropLog:
  """Every record left out, with its reason (logged, counted and written to drops.csv)."""

  def __init__(self):
    self._lock = threading.Lock()
    self.rows: list[tuple[str, str, str, str]] = []

  def __call__(self, museum: str, object_id: str, title: str, reason: str) -> None:
    # drops.csv holds them all; on the console only with --verbosity=1 (there are
    # tens of thousands: most Met records are not public domain or have no image).
    logging.debug("drop %s %s (%s): %s", museum, object_id, title[:60], reason)
    with self._lock:
      self.rows.append((object_id, museum, title, reason))

  def counts(self) -> collections.Counter:
    return collections.Counter((museum, reason) for _, museum, _, reason in self.rows)


class Progress:
  """A single status line on stderr, redrawn at most twice a second."""

  def __init__(self, stream=sys.stderr, interval: float = 0.5):
    self.counts = collections.Counter()
    self._stream = stream
    self._interval = interval
    self._last = 0.0
    self._lock = threading.Lock()

  def add(self, key: str, n: int = 1) -> None:
    with self._lock:
      self.counts[key] += n
      now = time.monotonic()
      if now - self._last >= self._interval:
        self._last = now
        self._draw()

  def _draw(self) -> None:
    parts = " ".join(f"{k}={v}" for k, v in sorted(self.counts.items()))
    self._stream.write(f"\r[museums] {parts}\x1b[K")
    self._stream.flush()

  def close(self) -> None:
    with self._lock:
      self._draw()
      self._stream.write("\n")
      self._stream.flush()


def assign_split(object_id: str) -> str:
  """train / val / test from a stable hash of the object ID (see module docstring)."""
  u = int.from_bytes(hashlib.sha256(object_id.encode()).digest()[:4], "big") / 2**32
  if u < VAL_FRACTION:
    return "val"
  if u < VAL_FRACTION + TEST_FRACTION:
    return "test"
  return "train"


def _id_sort_key(object_id: str):
  """MET_9 before MET_10: numbers compare as numbers."""
  return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", object_id)]


def cap_series(rows: list[Row], series_max: int, keep: int, drops: DropLog) -> list[Row]:
  """Of any title shared by more than `series_max` objects of one museum keeps `keep`."""
  groups = collections.defaultdict(list)
  for row in rows:
    title = re.sub(r"\W+", " ", row.record.title.lower()).strip()
    groups[(row.record.museum, title)].append(row)
  dropped = set()
  for (museum, title), members in groups.items():
    if title and len(members) > series_max:
      members.sort(key=lambda r: _id_sort_key(r.record.object_id))
      for row in members[keep:]:
        dropped.add(row.record.object_id)
        drops(museum, row.record.object_id, row.record.title,
              f"series of more than {series_max} alike titled objects ({keep} kept)")
  return [r for r in rows if r.record.object_id not in dropped]


def drop_duplicates(rows: list[Row], perceptual: bool, drops: DropLog) -> list[Row]:
  """Keeps one row per picture: the first by source order, then object ID."""
  kept, seen = [], {}
  for row in rows:
    keys = [("pixels", row.image.pixel_sha256)]
    if perceptual:
      keys.append(("dhash", row.image.dhash))
    first = next((seen[k] for k in keys if k in seen), None)
    if first is not None:
      drops(row.record.museum, row.record.object_id, row.record.title,
            f"duplicate picture (same {'pixels' if keys[0] in seen else 'dhash'} "
            f"as {first})")
      continue
    for k in keys:
      seen[k] = row.record.object_id
    kept.append(row)
  return kept


def _csv_bytes(columns, rows) -> bytes:
  buffer = io.StringIO()
  writer = csv.writer(buffer, lineterminator="\n")
  writer.writerow(columns)
  writer.writerows(rows)
  return buffer.getvalue().encode("utf-8")


def label_row(row: Row) -> list:
  r, l = row.record, row.labels
  return [row.image.path, r.object_id, r.museum, r.title, r.object_name, r.date_text,
          "" if l.begin_year is None else l.begin_year,
          "" if l.end_year is None else l.end_year, l.culture, l.medium, l.period,
          assign_split(r.object_id), r.license, r.source_url]


def format_tables(rows: list[Row], drops: DropLog) -> str:
  """Counts per source and per label, and drop reasons, as Markdown tables."""
  out = ["| museum | records seen | kept | dropped |", "|---|---:|---:|---:|"]
  kept_by_museum = collections.Counter(r.record.museum for r in rows)
  dropped_by_museum = collections.Counter(m for _, m, _, _ in drops.rows)
  for museum in sorted(set(kept_by_museum) | set(dropped_by_museum)):
    kept, dropped = kept_by_museum[museum], dropped_by_museum[museum]
    out.append(f"| {museum} | {kept + dropped} | {kept} | {dropped} |")
  for task in TASKS:
    out += ["", f"| {task} | train | val | test | total |", "|---|---:|---:|---:|---:|"]
    counts = collections.Counter(
        (getattr(r.labels, task), assign_split(r.record.object_id)) for r in rows)
    for name in ("",) + CLASSES[task]:
      n = [counts[(name, s)] for s in ("train", "val", "test")]
      out.append(f"| {name or '(empty)'} | {n[0]} | {n[1]} | {n[2]} | {sum(n)} |")
  out += ["", "| museum | drop reason | n |", "|---|---|---:|"]
  for (museum, reason), n in sorted(drops.counts().items(), key=lambda kv: (kv[0][0], -kv[1])):
    out.append(f"| {museum} | {reason} | {n} |")
  return "\n".join(out)


def _client(config: BuildConfig, rate: float, **extra_headers) -> HttpClient:
  return HttpClient(
      rate=rate, max_concurrency=config.max_concurrency, timeout=config.timeout,
      retries=config.retries, backoff=config.backoff,
      max_retry_after=config.max_retry_after, user_agent=config.user_agent, headers=extra_headers)


def list_records(config: BuildConfig, source: str,
                 drops: DropLog) -> tuple[list[MuseumRecord], HttpClient]:
  """The source's usable records and the client to fetch its images with."""
  if source == "met":
    client = _client(config, config.met_rate)
    return sources.met_records(client, config.met_url, drops, limit=config.limit,
                                      workers=config.workers), client
  if source == "cleveland":
    client = _client(config, config.cleveland_rate)
    return sources.cleveland_records(client, config.cleveland_url, drops,
                                            limit=config.limit), client
  if source == "aic":
    api = _client(config, config.aic_rate, **{"AIC-User-Agent": config.user_agent})
    records = sources.aic_records(api, config.aic_url, config.aic_iiif_url, drops,
                                         limit=config.limit)
    iiif = _client(config, config.aic_iiif_rate, **{"AIC-User-Agent": config.user_agent})
    return records, iiif
  raise ValueError(f"unknown source {source!r}; expected one of {', '.join(SOURCES)}")


def fetch_image(row: Row, client: HttpClient, store: image_store_lib.ImageStore,
                progress: Progress) -> str | None:
  """Stores the row's image (or finds it stored); returns a drop reason on failure."""
  r = row.record
  row.image = store.verified(r.image_key, r.source_url)
  if row.image is not None:
    progress.add("skipped")
    return None
  try:
    data = client.get(r.source_url)
    row.image = store.save(r.museum, r.image_key, r.source_url, data)
  except HttpError as e:
    progress.add("failed")
    return f"image not fetched: HTTP {e.status}" if e.status else "image not fetched: network"
  except image_store_lib.ImageError as e:
    progress.add("failed")
    logging.info("image of %s unusable: %s", r.object_id, e)
    return "image unusable (truncated, too large or not an image)"
  progress.add("downloaded")
  return None


def build(config: BuildConfig, progress_stream=sys.stderr) -> list[Row]:
  """The whole pipeline (module docstring); returns the rows written to labels.csv."""
  for source in config.sources:
    if source not in SOURCES:
      raise ValueError(f"unknown source {source!r}; expected {', '.join(SOURCES)}")
  out_dir = config.out
  os.makedirs(out_dir, exist_ok=True)
  store = image_store_lib.ImageStore(out_dir, config.image_size, config.max_image_pixels)
  drops, progress = DropLog(), Progress(progress_stream)
  failed_sources = []
  rows_by_source: dict[str, tuple[list[Row], HttpClient]] = {}
  for source in config.sources:
    try:
      records, client = list_records(config, source, drops)
    except (HttpError, ValueError, KeyError, TypeError, AttributeError) as e:
      # One museum being down should not cost the others' work.
      logging.error("source %s failed while listing records: %s", source, e)
      failed_sources.append(source)
      continue
    progress.add(f"listed_{source}", len(records))
    rows = []
    for record in records:
      labels = rules.derive_labels(record)
      if labels.kept:
        rows.append(Row(record, labels))
      else:
        drops(record.museum, record.object_id, record.title, labels.drop_reason)
    rows.sort(key=lambda r: _id_sort_key(r.record.object_id))
    rows = cap_series(rows, config.series_max, config.series_keep, drops)
    rows_by_source[source] = (rows, client)

  kept = []
  with concurrent.futures.ThreadPoolExecutor(config.workers) as pool:
    for source, (rows, client) in rows_by_source.items():
      futures = [pool.submit(fetch_image, row, client, store, progress) for row in rows]
      for row, future in zip(rows, futures):
        reason = future.result()
        if reason:
          drops(row.record.museum, row.record.object_id, row.record.title, reason)
        else:
          kept.append(row)
  progress.close()
  store.compact_manifest()

  kept = drop_duplicates(kept, config.dedupe_perceptual, drops)
  image_store_lib.atomic_write(os.path.join(out_dir, "labels.csv"),
                _csv_bytes(LABEL_COLUMNS, [label_row(r) for r in kept]))
  drop_rows = sorted(drops.rows, key=lambda d: (d[1], _id_sort_key(d[0])))
  image_store_lib.atomic_write(os.path.join(out_dir, "drops.csv"), _csv_bytes(DROP_COLUMNS, drop_rows))
  print(format_tables(kept, drops))
  print(f"\n{len(kept)} rows in {os.path.join(out_dir, 'labels.csv')}; every drop with its "
        f"reason in {os.path.join(out_dir, 'drops.csv')}")
  if failed_sources:
    print(f"WARNING: sources that failed and are missing: {', '.join(failed_sources)}")
  return kept
