r"""Builds the Egyptian, Greek and Roman dataset from open-access APIs.

  python -m artclf.museums --out=/data/museum_art [--sources=met,cleveland,aic,commons] \
      [--limit=N] [--image_size=512] [--dry_run]

Writes the ancient_art folder format (see /work/shared/data/ancient_art/README.md and
docs/museums.md): `images/<museum>/<image_key>.jpg` and `labels.csv` with the columns
`LABEL_COLUMNS`, plus `drops.csv` (every record left out, with its reason),
`manifest.jsonl` (what a second run needs to skip verified images) and `ATTRIBUTION.md`
(the credit of every image that is not CC0).

Steps: list usable records from each source (`artclf.museums.sources` for the museums,
`artclf.museums.commons` for the monuments of `artclf.museums.gazetteer`), label them
(`artclf.museums.rules`, or the gazetteer for monuments; drops logged), cap series of alike
titled museum objects, assign splits by object group (`artclf.museums.splits`), download and
store the images concurrently (`artclf.museums.http_client`, `artclf.museums.image_store`),
drop duplicate pictures and write the tables atomically. `--dry_run` stops after the
splits and prints the label tables without fetching an image or writing a file.
"""

from __future__ import annotations

import collections
import concurrent.futures
import csv
import dataclasses
import io
import os
import re
import sys
import threading
import time

from absl import logging

from artclf.museums import commons, gazetteer, report, rules, sources, splits
from artclf.museums import image_store as image_store_lib
from artclf.museums.http_client import HttpClient, HttpError
from artclf.museums.record import MuseumRecord

LABEL_COLUMNS = ("image", "object_id", "museum", "title", "object_name", "date_text",
                 "begin_year", "end_year", "culture", "medium", "period", "split",
                 "license", "source_url", "credit")
DROP_COLUMNS = ("object_id", "museum", "title", "reason")
SOURCES = ("met", "cleveland", "aic")          # The default: the museums, as before.
KNOWN_SOURCES = SOURCES + ("commons",)
MUSEUM_SOURCES = SOURCES
ATTRIBUTION_FILE = "ATTRIBUTION.md"
# Wikimedia's User-Agent policy asks for a name, version and a way to reach the operator.
DEFAULT_USER_AGENT = ("artclf-museums/0.2 (ancient-art dataset builder of the artclf "
                      "classifier; add your e-mail or URL with --user_agent) Python-urllib")


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
  commons_url: str = "https://commons.wikimedia.org/w/api.php"
  commons_rate: float = 1.0        # API requests/s, in series (Wikimedia's API etiquette).
  commons_image_rate: float = 1.0  # Thumbnail downloads/s from upload.wikimedia.org.
  commons_depth: int = 2
  commons_per_monument: int = 40
  commons_thumb_width: int = 960
  gazetteer: str = gazetteer.GAZETTEER_FILE
  dry_run: bool = False
  user_agent: str = DEFAULT_USER_AGENT


@dataclasses.dataclass
class Row:
  """One kept photograph on its way to labels.csv."""
  record: MuseumRecord
  labels: rules.Labelled
  image: image_store_lib.StoredImage | None = None
  group: str = ""   # Split group: the object for museums, the site for monuments.
  split: str = ""

  def __post_init__(self):
    self.group = self.group or self.record.object_id


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


assign_split = splits.hashed_split  # The museums' rule, by object ID.


def assign_splits(rows: list[Row]) -> None:
  """Sets every row's split: museum objects by hash, monument sites stratified."""
  commons_rows = [r for r in rows if r.record.museum == commons.MUSEUM]
  strata = splits.group_strata(
      [(r.group, (r.labels.culture, r.labels.period)) for r in commons_rows])
  site_splits = splits.stratified_splits(strata)
  for row in rows:
    if row.record.museum == commons.MUSEUM:
      row.split = site_splits[row.group]
    else:
      row.split = splits.hashed_split(row.record.object_id)


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
          row.split, r.license, r.source_url, r.credit]


format_tables = report.format_tables


def _client(config: BuildConfig, rate: float, max_concurrency: int | None = None,
            **extra_headers) -> HttpClient:
  return HttpClient(
      rate=rate, max_concurrency=max_concurrency or config.max_concurrency,
      timeout=config.timeout, retries=config.retries, backoff=config.backoff,
      max_retry_after=config.max_retry_after, user_agent=config.user_agent,
      headers=extra_headers)


def list_records(config: BuildConfig, source: str,
                 drops: DropLog) -> tuple[list[MuseumRecord], HttpClient]:
  """A museum's usable records and the client to fetch its images with."""
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
  raise ValueError(f"unknown source {source!r}; expected one of {', '.join(KNOWN_SOURCES)}")


def museum_rows(config: BuildConfig, source: str, drops: DropLog) -> tuple[list[Row], HttpClient]:
  """A museum's records, labelled by the rules, series capped."""
  records, client = list_records(config, source, drops)
  rows = []
  for record in records:
    labels = rules.derive_labels(record)
    if labels.kept:
      rows.append(Row(record, labels))
    else:
      drops(record.museum, record.object_id, record.title, labels.drop_reason)
  rows.sort(key=lambda r: _id_sort_key(r.record.object_id))
  return cap_series(rows, config.series_max, config.series_keep, drops), client


def commons_rows(config: BuildConfig, drops: DropLog,
                 stats: commons.CommonsStats) -> tuple[list[Row], HttpClient]:
  """The gazetteer's monuments' photographs, labelled by their monument."""
  if not re.search(r"@|https?://", config.user_agent):
    logging.warning("--user_agent has no e-mail or URL; Wikimedia asks for a way to "
                    "contact the operator of a bot (User-Agent policy)")
  monuments = gazetteer.load_gazetteer(config.gazetteer)
  # In series: Wikimedia asks API clients not to send requests in parallel.
  api = _client(config, config.commons_rate, max_concurrency=1)
  photos = commons.commons_photos(
      api, config.commons_url, monuments, drops, depth=config.commons_depth,
      per_monument=config.commons_per_monument, thumb_width=config.commons_thumb_width,
      limit=config.limit, stats=stats)
  images = _client(config, config.commons_image_rate, max_concurrency=2)
  return [Row(p.record, p.labels, group=p.group) for p in photos], images


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
    logging.info("image of %s unusable: %s", r.image_key, e)
    return "image unusable (truncated, too large or not an image)"
  progress.add("downloaded")
  return None


def list_rows(config: BuildConfig, drops: DropLog, progress: Progress,
              stats: commons.CommonsStats) -> tuple[dict, list[str]]:
  """source -> (rows, image client) for every source that listed; the failed sources."""
  rows_by_source, failed = {}, []
  for source in config.sources:
    try:
      if source == "commons":
        rows, client = commons_rows(config, drops, stats)
      else:
        rows, client = museum_rows(config, source, drops)
    except gazetteer.GazetteerError:
      raise  # A bad gazetteer is the user's to fix, not a server outage.
    except (HttpError, commons.MediaWikiError, ValueError, KeyError, TypeError,
            AttributeError) as e:
      # One source being down should not cost the others' work.
      logging.error("source %s failed while listing records: %s", source, e)
      failed.append(source)
      continue
    progress.add(f"listed_{source}", len(rows))
    rows_by_source[source] = (rows, client)
  return rows_by_source, failed


def fetch_images(config: BuildConfig, rows_by_source: dict, store, drops: DropLog,
                 progress: Progress) -> list[Row]:
  """Downloads (or finds) every row's image; the rows whose image is stored."""
  kept = []
  with concurrent.futures.ThreadPoolExecutor(config.workers) as pool:
    for rows, client in rows_by_source.values():
      futures = [pool.submit(fetch_image, row, client, store, progress) for row in rows]
      for row, future in zip(rows, futures):
        reason = future.result()
        if reason:
          drops(row.record.museum, row.record.image_key, row.record.title, reason)
        else:
          kept.append(row)
  return kept


def write_outputs(out_dir: str, kept: list[Row], drops: DropLog) -> None:
  """labels.csv, drops.csv and (when an image needs credit) ATTRIBUTION.md, atomically."""
  image_store_lib.atomic_write(os.path.join(out_dir, "labels.csv"),
                               _csv_bytes(LABEL_COLUMNS, [label_row(r) for r in kept]))
  drop_rows = sorted(drops.rows, key=lambda d: (d[1], _id_sort_key(d[0]), d[2]))
  image_store_lib.atomic_write(os.path.join(out_dir, "drops.csv"),
                               _csv_bytes(DROP_COLUMNS, drop_rows))
  attribution = os.path.join(out_dir, ATTRIBUTION_FILE)
  if any(r.record.license != "CC0-1.0" for r in kept):
    image_store_lib.atomic_write(attribution,
                                 report.attribution_markdown(kept).encode("utf-8"))
  elif os.path.exists(attribution):
    os.remove(attribution)  # Left from an earlier build with other sources.


def build(config: BuildConfig, progress_stream=sys.stderr) -> list[Row]:
  """The whole pipeline (module docstring); returns the rows written to labels.csv."""
  for source in config.sources:
    if source not in KNOWN_SOURCES:
      raise ValueError(f"unknown source {source!r}; expected {', '.join(KNOWN_SOURCES)}")
  drops, progress, stats = DropLog(), Progress(progress_stream), commons.CommonsStats()
  rows_by_source, failed_sources = list_rows(config, drops, progress, stats)
  listed = [row for rows, _ in rows_by_source.values() for row in rows]
  assign_splits(listed)
  if config.dry_run:
    progress.close()
    _print_summary(config, listed, drops, stats, failed_sources, written=False)
    return listed
  os.makedirs(config.out, exist_ok=True)
  store = image_store_lib.ImageStore(config.out, config.image_size, config.max_image_pixels)
  kept = fetch_images(config, rows_by_source, store, drops, progress)
  progress.close()
  store.compact_manifest()
  kept = drop_duplicates(kept, config.dedupe_perceptual, drops)
  write_outputs(config.out, kept, drops)
  _print_summary(config, kept, drops, stats, failed_sources, written=True)
  return kept


def _print_summary(config: BuildConfig, rows: list[Row], drops: DropLog,
                   stats: commons.CommonsStats, failed_sources: list[str],
                   written: bool) -> None:
  print(report.format_tables(rows, drops))
  if "commons" in config.sources:
    print("\n" + report.format_commons_stats(stats))
  if written:
    print(f"\n{len(rows)} rows in {os.path.join(config.out, 'labels.csv')}; every drop with "
          f"its reason in {os.path.join(config.out, 'drops.csv')}")
  else:
    print(f"\ndry run: {len(rows)} rows would be built (before image checks and "
          "duplicate removal); no image fetched, nothing written")
  if failed_sources:
    print(f"WARNING: sources that failed and are missing: {', '.join(failed_sources)}")
