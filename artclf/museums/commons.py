"""Reader of Wikimedia Commons: free photographs of the gazetteer's monuments.

For each monument (`artclf.museums.gazetteer`) it walks the monument's category through the
MediaWiki Action API (https://www.mediawiki.org/wiki/API:Main_page):

1. `action=query&list=categorymembers&cmtype=subcat|file` lists a category's files and
   subcategories (500 a request), following `continue` (API:Continue: the answer's
   `continue` object is merged into the next request until an answer has none).
   Subcategories are entered breadth-first to `depth` levels; one already seen (a loop, or
   a second path to it), another monument's category, or one whose name the gazetteer's
   filters exclude is not entered.
2. The files, in a stable order (sha256 of the title), are asked for in batches of 50 with
   `prop=imageinfo&iiprop=url|size|mime|extmetadata&iiurlwidth=<thumb_width>`, until the
   per-monument cap of usable photographs is reached.
3. A file is kept if it is a JPEG photograph of a usable size whose `extmetadata` names a
   free licence (`artclf.museums.licences`); its `credit` is the attribution that licence
   asks for. A file listed under two monuments of different sites is left out.

Every request carries `maxlag=5` (Manual:Maxlag_parameter). A maxlag answer is HTTP 200 with
`{"error": {"code": "maxlag", "lag": ...}}` and a `Retry-After` header; the reader waits that
long and asks again. 429s and 5xx are retried by `HttpClient` (Retry-After honoured).
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import urllib.parse
from typing import Callable, Iterator

from absl import logging

from artclf.museums import gazetteer, licences, rules
from artclf.museums.http_client import HttpClient, parse_retry_after
from artclf.museums.record import MuseumRecord

DropFn = Callable[[str, str, str, str], None]

MUSEUM = "commons"
API_DEFAULTS = {"action": "query", "format": "json", "formatversion": "2", "maxlag": "5"}
EXTMETADATA_FIELDS = ("LicenseShortName", "LicenseUrl", "Artist", "Credit",
                      "AttributionRequired", "UsageTerms")
MEMBERS_PER_REQUEST = 500
FILES_PER_REQUEST = 50
PHOTO_MIME_TYPES = ("image/jpeg",)
MIN_SHORT_SIDE = 400  # Pixels; smaller files are thumbnails, icons or crops.
MAX_LAG_WAITS = 5


class MediaWikiError(Exception):
  """An API error answer other than a maxlag that was waited out."""


@dataclasses.dataclass
class CommonsStats:
  """What the walk saw besides the files themselves (printed after the build)."""
  categories: int = 0
  categories_reached_twice: int = 0      # Loops in the category graph, or diamonds.
  other_monument_categories: int = 0
  excluded_subcategories: collections.Counter = dataclasses.field(
      default_factory=collections.Counter)
  maxlag_waits: int = 0
  files_beyond_cap: int = 0
  empty_monuments: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class Photo:
  """One kept photograph: its record, its monument's labels and split group."""
  record: MuseumRecord
  labels: rules.Labelled
  group: str


# --- The API ------------------------------------------------------------------------------


def api_get(client: HttpClient, api_url: str, params: dict,
            stats: CommonsStats | None = None) -> dict:
  """One API answer; waits out maxlag answers (Retry-After, else the reported lag)."""
  query = {**API_DEFAULTS, **params}
  for attempt in range(MAX_LAG_WAITS + 1):
    answer, headers = client.get_json_with_headers(api_url, query)
    error = answer.get("error") if isinstance(answer, dict) else None
    if not error:
      if not isinstance(answer, dict):
        raise MediaWikiError(f"answer is not a JSON object ({api_url})")
      return answer
    if error.get("code") != "maxlag" or attempt == MAX_LAG_WAITS:
      raise MediaWikiError(f"{error.get('code')}: {error.get('info')} ({api_url})")
    wait = parse_retry_after(headers.get("Retry-After"))
    if wait is None:
      wait = max(5.0, float(error.get("lag") or 0))
    if stats is not None:
      stats.maxlag_waits += 1
    client.pause(min(wait, client.max_retry_after))
  raise AssertionError("unreachable")


def query_all(client: HttpClient, api_url: str, params: dict,
              stats: CommonsStats | None = None) -> Iterator[dict]:
  """Every answer of a query, merging each answer's `continue` into the next request."""
  continuation, seen = {}, set()
  while True:
    answer = api_get(client, api_url, {**params, **continuation}, stats)
    yield answer
    continuation = answer.get("continue") or {}
    if not continuation:
      return
    key = tuple(sorted(continuation.items()))
    if key in seen:
      raise MediaWikiError(f"the API repeats continue={continuation} ({api_url})")
    seen.add(key)


def _pages(answer: dict) -> list[dict]:
  """query.pages as a list (formatversion=2 gives a list, formatversion=1 a dict by ID)."""
  pages = (answer.get("query") or {}).get("pages") or []
  return list(pages.values()) if isinstance(pages, dict) else list(pages)


def category_members(client: HttpClient, api_url: str, category: str,
                     stats: CommonsStats) -> tuple[list[str], list[str]]:
  """(subcategory titles, file titles) of one category, all pages of the listing."""
  subcategories, files = [], []
  params = {"list": "categorymembers", "cmtitle": category, "cmtype": "subcat|file",
            "cmprop": "ids|title|type", "cmlimit": MEMBERS_PER_REQUEST}
  for answer in query_all(client, api_url, params, stats):
    for member in (answer.get("query") or {}).get("categorymembers") or []:
      kind, title = member.get("type"), member.get("title") or ""
      if kind == "subcat" or member.get("ns") == 14:
        subcategories.append(title)
      elif kind == "file" or member.get("ns") == 6:
        files.append(title)
  return subcategories, files


def monument_files(client: HttpClient, api_url: str, monument: gazetteer.Monument,
                   depth: int, monument_categories: set[str],
                   stats: CommonsStats) -> list[str]:
  """File titles under a monument's category, its subcategories to `depth` levels."""
  queue = collections.deque([(monument.category, 0)])
  visited, files, seen_files = {monument.category}, [], set()
  while queue:
    category, level = queue.popleft()
    stats.categories += 1
    subcategories, members = category_members(client, api_url, category, stats)
    for title in members:
      if title not in seen_files:
        seen_files.add(title)
        files.append(title)
    if level >= depth:
      continue
    for sub in subcategories:
      if sub in visited:
        stats.categories_reached_twice += 1
        continue
      visited.add(sub)
      if sub in monument_categories:
        stats.other_monument_categories += 1  # Walked as its own monument.
        continue
      word = gazetteer.subcategory_excluded(monument, sub)
      if word:
        stats.excluded_subcategories[word] += 1
        continue
      queue.append((sub, level + 1))
  return files


def file_pages(client: HttpClient, api_url: str, titles: list[str], thumb_width: int,
               stats: CommonsStats) -> dict[str, dict]:
  """title -> page with `imageinfo`, for up to FILES_PER_REQUEST titles."""
  params = {"prop": "imageinfo", "titles": "|".join(titles),
            "iiprop": "url|size|mime|extmetadata", "iiurlwidth": thumb_width,
            "iiextmetadatafilter": "|".join(EXTMETADATA_FIELDS),
            "iiextmetadatalanguage": "en"}
  pages: dict[str, dict] = {}
  for answer in query_all(client, api_url, params, stats):
    # A long answer may be cut: a page's imageinfo can come in a later continuation.
    for page in _pages(answer):
      merged = pages.setdefault(page.get("title") or "", {})
      merged.update({k: v for k, v in page.items() if k != "imageinfo"})
      if page.get("imageinfo"):
        merged["imageinfo"] = page["imageinfo"]
  return pages


# --- Files -> records -----------------------------------------------------------------------


def _meta(info: dict, field: str) -> str:
  value = ((info.get("extmetadata") or {}).get(field) or {}).get("value")
  return "" if value is None else str(value)


def _usable_image(info: dict) -> str | None:
  """Why a file is not a usable photograph, or None."""
  mime = info.get("mime") or ""
  if mime not in PHOTO_MIME_TYPES:
    return f"not a JPEG photograph: {mime or 'no MIME type'}"
  if min(int(info.get("width") or 0), int(info.get("height") or 0)) < MIN_SHORT_SIDE:
    return f"smaller than {MIN_SHORT_SIDE} px"
  url = info.get("thumburl") or info.get("url") or ""
  if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
    return "no image URL"
  return None


def photo_record(monument: gazetteer.Monument, page: dict) -> tuple[MuseumRecord | None, str]:
  """(record, '') for a usable free photograph, else (None, drop reason)."""
  infos = page.get("imageinfo") or []
  if page.get("missing") is not None or not infos:
    return None, "no imageinfo (file missing or hidden)"
  info = infos[0]
  problem = _usable_image(info)
  if problem:
    return None, problem
  short_name = _meta(info, "LicenseShortName")
  if not short_name.strip():
    return None, "no licence in extmetadata"
  licence = licences.free_licence(short_name, _meta(info, "LicenseUrl"),
                                  _meta(info, "AttributionRequired"))
  if licence is None:
    return None, f"not a free licence: {short_name.strip()}"
  title = _file_name(page.get("title") or "")
  page_url = info.get("descriptionurl") or ""
  credit = licences.attribution(
      licence, artist=_meta(info, "Artist"), credit=_meta(info, "Credit"), title=title,
      page_url=page_url, usage_terms=_meta(info, "UsageTerms"))
  return MuseumRecord(
      museum=MUSEUM, object_id=monument.object_id, image_id=f"WMC_{page.get('pageid')}",
      title=title, object_name=monument.name, classification="architecture",
      culture=monument.culture, date_text=monument.date_text, begin_year=monument.begin,
      end_year=monument.end, image_url=info.get("thumburl") or info.get("url"),
      license=licence.spdx, credit=credit, page_url=page_url), ""


def _file_name(title: str) -> str:
  """'File:Parthenon 1.jpg' -> 'Parthenon 1.jpg'."""
  return title.split(":", 1)[-1]


def _stable_order(titles: list[str]) -> list[str]:
  """A spread of each category, the same on every run (not the oldest uploads first)."""
  return sorted(titles, key=lambda t: hashlib.sha256(t.encode()).hexdigest())


def _assign_files(trees: dict[str, list[str]], by_key: dict[str, gazetteer.Monument]
                  ) -> tuple[dict[str, list[str]], dict[str, str]]:
  """Each file to one monument: (key -> titles, title -> reason it is left out).

  A file under two monuments of one site goes to the first listed (same split, and the
  gazetteer lists a site's monuments together); under monuments of two sites it is left
  out, since it would tie two splits together.
  """
  owners = collections.defaultdict(list)
  for key, titles in trees.items():
    for title in titles:
      if key not in owners[title]:
        owners[title].append(key)
  assigned, left_out = {key: [] for key in trees}, {}
  for title, keys in owners.items():
    if len({by_key[k].group for k in keys}) > 1:
      left_out[title] = f"filed under monuments of two sites: {', '.join(keys)}"
    else:
      assigned[keys[0]].append(title)
  return assigned, left_out


def _monument_photos(client: HttpClient, api_url: str, monument: gazetteer.Monument,
                     titles: list[str], on_drop: DropFn, per_monument: int,
                     thumb_width: int, stats: CommonsStats) -> list[Photo]:
  """Up to `per_monument` usable photographs of one monument, in the stable order."""
  chosen: list[Photo] = []
  titles = _stable_order(titles)
  for start in range(0, len(titles), FILES_PER_REQUEST):
    if len(chosen) >= per_monument:
      stats.files_beyond_cap += len(titles) - start
      break
    batch = titles[start:start + FILES_PER_REQUEST]
    pages = file_pages(client, api_url, batch, thumb_width, stats)
    for title in batch:
      page = pages.get(title, {"title": title})
      record, reason = photo_record(monument, page)
      if record is None:
        on_drop(MUSEUM, f"WMC_{page.get('pageid', '')}", _file_name(title), reason)
      elif len(chosen) < per_monument:
        chosen.append(Photo(record, monument.labels(), monument.group))
      else:
        stats.files_beyond_cap += 1
  return chosen


def commons_photos(client: HttpClient, api_url: str, monuments: list[gazetteer.Monument],
                   on_drop: DropFn, *, depth: int = 2, per_monument: int = 40,
                   thumb_width: int = 960, limit: int | None = None,
                   stats: CommonsStats | None = None) -> list[Photo]:
  """The kept photographs of every monument (see the module docstring)."""
  stats = stats if stats is not None else CommonsStats()
  by_key = {m.key: m for m in monuments}
  categories = {m.category for m in monuments}
  trees = {}
  for monument in monuments:
    titles = monument_files(client, api_url, monument, depth, categories, stats)
    if not titles:
      stats.empty_monuments.append(monument.key)
      logging.warning("monument %s: no files under %s (category missing or empty?)",
                      monument.key, monument.category)
    trees[monument.key] = []
    for title in titles:
      word = gazetteer.file_excluded(title)
      if word:
        on_drop(MUSEUM, "", _file_name(title), f"not a photograph by its name: {word}")
      else:
        trees[monument.key].append(title)
  assigned, left_out = _assign_files(trees, by_key)
  for title, reason in left_out.items():
    on_drop(MUSEUM, "", _file_name(title), reason)
  photos = []
  for monument in monuments:
    photos += _monument_photos(client, api_url, monument, assigned[monument.key], on_drop,
                               per_monument, thumb_width, stats)
    if limit is not None and len(photos) >= limit:
      return photos[:limit]
  return photos
