"""Readers of the three museum APIs, each turning its answers into `MuseumRecord`s.

Only public-domain / CC0 objects with an image are returned; everything else is reported
through `on_drop(museum, object_id, title, reason)`.

* The Met Collection API (https://metmuseum.github.io): `GET /departments`, then
  `GET /objects?departmentIds=<id>` for the object IDs of "Egyptian Art" and "Greek and
  Roman Art", then `GET /objects/<id>` for each record (`isPublicDomain`,
  `primaryImageSmall`, `objectName`, `culture`, `period`, `dynasty`, `objectDate`,
  `objectBeginDate`, `objectEndDate`, `medium`, `classification`, and the place: `country`
  and `region`; real records often leave `country` empty and name the place in `region`,
  e.g. "Cyprus").
* Cleveland Museum of Art Open Access API (https://openaccess-api.clevelandart.org):
  `GET /artworks/?department=<name>&cc0=1&has_image=1&limit=<n>&skip=<k>` for "Egyptian and
  Ancient Near Eastern Art" and "Greek and Roman Art" (`share_license_status`, `type`,
  `technique`, `culture`, `creation_date`, `creation_date_earliest/latest`, `images.web`).
* Art Institute of Chicago API (https://api.artic.edu/docs): `GET /artworks/search` with
  an Elasticsearch query in `params` (public domain, department "Arts of the Ancient
  Mediterranean and Byzantium"), `fields`, `limit` and `page`; images from the IIIF server
  as `{iiif_url}/{image_id}/full/843,/0/default.jpg`, the size AIC recommends, with the
  `iiif_url` the answer's `config` gives (the flag's value when an answer has none). AIC
  records have no culture field: for ancient objects `artist_display` names the culture
  ("Roman", "Greek, Attic"), so it is read with `style_title`. A search stops at
  `AIC_MAX_RESULTS` (the API refuses pages past 10,000 results).

The fixtures of tests/museums are these APIs' real answer shapes; tests/museums/fixtures/
README.md cites where each was recorded.
"""

import concurrent.futures
import json
import urllib.parse
from typing import Callable, Iterable

from absl import logging

from artclf.museums.http_client import HttpClient, HttpError
from artclf.museums.image_store import safe_component
from artclf.museums.record import MuseumRecord

DropFn = Callable[[str, str, str, str], None]

MET_DEPARTMENTS = ("Egyptian Art", "Greek and Roman Art")
CLEVELAND_DEPARTMENTS = ("Egyptian and Ancient Near Eastern Art", "Greek and Roman Art")
AIC_DEPARTMENT = "Arts of the Ancient Mediterranean and Byzantium"
AIC_FIELDS = ("id", "title", "date_display", "date_start", "date_end", "place_of_origin",
              "medium_display", "artwork_type_title", "classification_title",
              "department_title", "style_title", "artist_display", "is_public_domain",
              "image_id")
AIC_IMAGE_WIDTH = 843
AIC_MAX_RESULTS = 10_000
CC0 = "CC0-1.0"


def _text(value) -> str:
  if value is None:
    return ""
  if isinstance(value, (list, tuple)):
    return "; ".join(_text(v) for v in value if v)
  return " ".join(str(value).split())


def _year(value) -> int | None:
  try:
    return int(value) if value is not None and value != "" else None
  except (TypeError, ValueError):
    return None


def _is_web_url(url: str) -> bool:
  """Only http(s) image URLs are fetched (urllib would also open file:// and ftp://)."""
  return urllib.parse.urlsplit(url).scheme in ("http", "https")


# --- The Met -------------------------------------------------------------------------------


def met_record(obj: dict) -> MuseumRecord:
  period = "; ".join(t for t in (_text(obj.get("period")), _text(obj.get("dynasty"))) if t)
  return MuseumRecord(
      museum="met", object_id="MET_" + safe_component(obj.get("objectID")),
      title=_text(obj.get("title")), object_name=_text(obj.get("objectName")),
      classification=_text(obj.get("classification")),
      department=_text(obj.get("department")), culture=_text(obj.get("culture")),
      place=_text([obj.get("country"), obj.get("region")]), medium=_text(obj.get("medium")),
      period=period,
      date_text=_text(obj.get("objectDate")), begin_year=_year(obj.get("objectBeginDate")),
      end_year=_year(obj.get("objectEndDate")),
      image_url=_text(obj.get("primaryImageSmall") or obj.get("primaryImage")),
      license=CC0)


def met_records(client: HttpClient, base_url: str, on_drop: DropFn, *,
                departments: Iterable[str] = MET_DEPARTMENTS, limit: int | None = None,
                workers: int = 8) -> list[MuseumRecord]:
  base_url = base_url.rstrip("/")
  listing = client.get_json(f"{base_url}/departments").get("departments") or []
  ids_by_name = {d.get("displayName"): d.get("departmentId") for d in listing}
  object_ids = set()
  for name in departments:
    if name not in ids_by_name:
      raise ValueError(f"Met department {name!r} not in /departments: {sorted(ids_by_name)}")
    answer = client.get_json(f"{base_url}/objects", {"departmentIds": ids_by_name[name]})
    object_ids.update(answer.get("objectIDs") or [])
  object_ids = sorted(object_ids, key=lambda i: (0, i, "") if isinstance(i, int)
                      else (1, 0, str(i)))

  def fetch(object_id):
    try:
      return client.get_json(
          f"{base_url}/objects/{urllib.parse.quote(str(object_id), safe='')}")
    except HttpError as e:
      return e

  records = []
  chunk = max(1, workers * 4)
  with concurrent.futures.ThreadPoolExecutor(workers) as pool:
    for start in range(0, len(object_ids), chunk):
      ids = object_ids[start:start + chunk]
      for object_id, obj in zip(ids, pool.map(fetch, ids)):
        oid = "MET_" + safe_component(object_id)
        if isinstance(obj, HttpError):
          on_drop("met", oid, "", f"record not fetched: HTTP {obj.status or 'error'}")
          continue
        record = met_record(obj)
        if not obj.get("isPublicDomain"):
          on_drop("met", oid, record.title, "not public domain")
        elif not record.image_url or not _is_web_url(record.image_url):
          on_drop("met", oid, record.title, "no image")
        else:
          records.append(record)
      if limit is not None and len(records) >= limit:
        break
  return records[:limit] if limit is not None else records


# --- Cleveland -----------------------------------------------------------------------------


def cleveland_record(obj: dict) -> MuseumRecord:
  images = obj.get("images") or {}
  web = images.get("web") or {}
  return MuseumRecord(
      museum="cle", object_id="CLE_" + safe_component(obj.get("id")),
      title=_text(obj.get("title")), classification=_text(obj.get("type")),
      department=_text(obj.get("department")), culture=_text(obj.get("culture")),
      medium=_text(obj.get("technique")), date_text=_text(obj.get("creation_date")),
      begin_year=_year(obj.get("creation_date_earliest")),
      end_year=_year(obj.get("creation_date_latest")), image_url=_text(web.get("url")),
      license=CC0)


def cleveland_records(client: HttpClient, base_url: str, on_drop: DropFn, *,
                      departments: Iterable[str] = CLEVELAND_DEPARTMENTS,
                      limit: int | None = None, page_size: int = 100) -> list[MuseumRecord]:
  base_url = base_url.rstrip("/")
  records, seen = [], set()
  for department in departments:
    skip = 0
    while limit is None or len(records) < limit:
      answer = client.get_json(f"{base_url}/artworks/", {
          "department": department, "cc0": 1, "has_image": 1, "limit": page_size,
          "skip": skip})
      items = answer.get("data") or []
      for obj in items:
        record = cleveland_record(obj)
        if record.object_id in seen:
          continue
        seen.add(record.object_id)
        if _text(obj.get("share_license_status")).upper() != "CC0":
          on_drop("cle", record.object_id, record.title, "not CC0")
        elif not record.image_url or not _is_web_url(record.image_url):
          on_drop("cle", record.object_id, record.title, "no image")
        else:
          records.append(record)
      skip += len(items)
      total = (answer.get("info") or {}).get("total")
      if not items or (total is not None and skip >= int(total)):
        break
  return records[:limit] if limit is not None else records


# --- Art Institute of Chicago --------------------------------------------------------------


def aic_record(obj: dict, iiif_url: str) -> MuseumRecord:
  image_id = _text(obj.get("image_id"))
  # artist_display is "Roman" or "Greek, Attic" for ancient objects: the culture.
  culture = _text([obj.get("style_title"), obj.get("artist_display")])
  image_url = ""
  if image_id:
    image_url = (f"{iiif_url.rstrip('/')}/{urllib.parse.quote(image_id, safe='')}"
                 f"/full/{AIC_IMAGE_WIDTH},/0/default.jpg")
  return MuseumRecord(
      museum="aic", object_id="CHI_" + safe_component(obj.get("id")),
      title=_text(obj.get("title")), classification=_text(obj.get("artwork_type_title")),
      department=_text(obj.get("department_title")), culture=culture,
      place=_text(obj.get("place_of_origin")), medium=_text(obj.get("medium_display")),
      date_text=_text(obj.get("date_display")), begin_year=_year(obj.get("date_start")),
      end_year=_year(obj.get("date_end")), image_url=image_url, license=CC0)


def aic_records(client: HttpClient, base_url: str, iiif_url: str, on_drop: DropFn, *,
                department: str = AIC_DEPARTMENT, limit: int | None = None,
                page_size: int = 100) -> list[MuseumRecord]:
  base_url = base_url.rstrip("/")
  query = {"query": {"bool": {"must": [
      {"term": {"is_public_domain": True}},
      {"match": {"department_title": {"query": department, "operator": "and"}}},
  ]}}}
  records, page, seen = [], 1, set()
  while limit is None or len(records) < limit:
    answer = client.get_json(f"{base_url}/artworks/search", {
        "params": json.dumps(query), "fields": ",".join(AIC_FIELDS), "limit": page_size,
        "page": page})
    items = answer.get("data") or []
    # AIC asks clients to build image URLs from the iiif_url its answers carry.
    answer_iiif = _text((answer.get("config") or {}).get("iiif_url")) or iiif_url
    for obj in items:
      record = aic_record(obj, answer_iiif)
      if record.object_id in seen:
        continue
      seen.add(record.object_id)
      # The search is a relevance match: check the department and licence exactly.
      if record.department != department:
        on_drop("aic", record.object_id, record.title, "other department")
      elif obj.get("is_public_domain") is not True:
        on_drop("aic", record.object_id, record.title, "not public domain")
      elif not record.image_url:
        on_drop("aic", record.object_id, record.title, "no image")
      else:
        records.append(record)
    total_pages = (answer.get("pagination") or {}).get("total_pages")
    if not items or (total_pages is not None and page >= int(total_pages)):
      break
    if (page + 1) * page_size > AIC_MAX_RESULTS:
      logging.warning("AIC search stops at %d results; the rest are not read",
                      AIC_MAX_RESULTS)
      break
    page += 1
  return records[:limit] if limit is not None else records
