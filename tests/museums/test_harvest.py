"""Tests of the museum dataset builder against a local fake of the three museum APIs.

A real `http.server.ThreadingHTTPServer` on 127.0.0.1 (port 0) serves JSON in the shapes of
real answers of the Met, Cleveland and AIC APIs (tests/museums/fixtures/, whose README cites
where each shape was recorded) and tiny generated JPEGs, with the failures a real run
meets: 404s, a 429 with Retry-After, a slow answer past the timeout, a truncated image, a
duplicate picture and a path-traversal object ID. Nothing here contacts the internet.
"""

import copy
import csv
import http.server
import io
import json
import os
import threading
import time
import urllib.parse
import zlib

import numpy as np
import pytest
from PIL import Image

from artclf.museums import harvest, image_store
from artclf.museums.http_client import HttpClient, HttpError, TokenBucket, parse_retry_after

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


def fixture(name: str):
  """A real answer shape (tests/museums/fixtures/README.md), a fresh copy each call."""
  with open(os.path.join(FIXTURES, name), encoding="utf-8") as f:
    return json.load(f)


def _jpeg(seed: int, size=(40, 30)) -> bytes:
  """A small noisy picture, different (and differently hashed) for every seed."""
  rng = np.random.default_rng(seed)
  pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
  buffer = io.BytesIO()
  Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
  return buffer.getvalue()


def _met_object(object_id, title, *, department="Egyptian Art", public=True, image=True,
                **fields):
  obj = fixture("met_object.json")
  obj.update({
      "objectID": object_id, "isPublicDomain": public, "title": title,
      "department": department,
      "objectURL": f"https://www.metmuseum.org/art/collection/search/{object_id}"})
  assert set(fields) <= set(obj), set(fields) - set(obj)  # Only fields the real API has.
  obj.update(fields)
  if image:
    obj["primaryImageSmall"] = "{base}/img/met/" + urllib.parse.quote(str(object_id), safe="")
  return obj


MET_OBJECTS = {
    1: _met_object(1, "Statue of the Goddess Sakhmet", objectName="Statue",
                   period="New Kingdom", dynasty="Dynasty 18",
                   objectDate="ca. 1390–1352 B.C.", objectBeginDate=-1390,
                   objectEndDate=-1352, medium="Granodiorite"),
    2: _met_object(2, "Head of a King", public=False, period="Middle Kingdom"),
    # 3 is listed but its record answers 404.
    4: _met_object(4, "Terracotta neck-amphora", department="Greek and Roman Art",
                   objectName="Neck-amphora", culture="Greek, Attic",
                   objectDate="ca. 540 B.C.", medium="Terracotta; black-figure"),
    5: _met_object(5, "Marble portrait of the emperor Augustus",
                   department="Greek and Roman Art", objectName="Head, portrait",
                   culture="Roman", objectDate="ca. A.D. 14–37", medium="Marble"),
    6: _met_object(6, "Bronze statuette of a warrior", department="Greek and Roman Art",
                   objectName="Statuette", culture="Etruscan", objectDate="ca. 500 B.C."),
    7: _met_object(7, "Stela of Amenemhat", objectName="Stela", period="Middle Kingdom"),
    8: _met_object(8, "Shabti of Yuya", objectName="Shabti", period="New Kingdom"),
    9: _met_object(9, "Relief fragment", objectName="Relief", period="Old Kingdom"),
    10: _met_object(10, "Sphinx of Senwosret", objectName="Sphinx", period="Middle Kingdom"),
    "../../evil": _met_object("../../evil", "Figure of Osiris", objectName="Figure",
                              period="Late Period"),
    11: _met_object(11, "Coffin of Nesmin", objectName="Coffin", period="Ptolemaic Period",
                    image=False),
    # As the real record 321412: country empty, the place only in region.
    12: _met_object(12, "Limestone head of a votary", department="Greek and Roman Art",
                    objectName="Head", culture="", region="Cyprus",
                    objectDate="ca. 500 B.C.", medium="Limestone"),
}
# Unsorted, as the real listing is.
MET_DEPARTMENT_IDS = {10: [9, 1, 2, 3, 7, 8, 10, "../../evil", 11], 13: [12, 4, 5, 6]}
# Image behaviours, by object: 7 -> 404, 8 -> 429 once (Retry-After: 1), 9 -> truncated,
# 10 -> slow once (past the client timeout).

CLEVELAND_ITEMS = {
    "Egyptian and Ancient Near Eastern Art": [
        {"id": 101, "title": "Fragment of a Lintel: Hapiu's Female Musicians",
         "type": "Sculpture", "culture": ["Egypt, Late Period, Dynasty 30"],
         "creation_date": "380–343 BCE", "creation_date_earliest": -380,
         "creation_date_latest": -343, "technique": "limestone, painted",
         "share_license_status": "CC0"},
        {"id": 102, "title": "Bull", "type": "Sculpture", "culture": ["Iran, Achaemenid"],
         "creation_date": "500s BCE", "share_license_status": "CC0"},
        {"id": 103, "title": "Statue of Sakhmet (same photograph as the Met's)",
         "type": "Sculpture", "culture": ["Egypt, New Kingdom"],
         "creation_date": "c. 1390–1352 BCE", "share_license_status": "CC0"},
    ],
    "Greek and Roman Art": [
        {"id": 201, "title": "Lekythos (Oil Jar)", "type": "Vessels",
         "culture": ["Greece, Attica, Athens"], "creation_date": "c. 440 BCE",
         "technique": "terracotta, white-ground", "share_license_status": "CC0"},
        {"id": 202, "title": "Portrait of a Man", "type": "Sculpture",
         "culture": ["Roman Empire"], "creation_date": "AD 500–600",
         "share_license_status": "CC0"},
        {"id": 203, "title": "Head of Hermes", "type": "Sculpture",
         "culture": ["Greece"], "creation_date": "c. 300 BCE",
         "share_license_status": "Copyrighted"},
    ],
}

CLEVELAND_FIELDS = set(fixture("cleveland_artwork.json"))

AIC_ITEMS = [
    {"id": 301, "title": "Hydria (Water Jar)", "date_display": "about 515–500 BCE",
     "date_start": -515, "date_end": -500, "place_of_origin": "Athens",
     "medium_display": "Terracotta, decorated in the black-figure technique",
     "artwork_type_title": "Vessel", "is_public_domain": True, "image_id": "img-301"},
    {"id": 302, "title": "Denarius (Coin) Portraying Emperor Hadrian",
     "date_display": "125–128 CE", "date_start": 125, "date_end": 128,
     "place_of_origin": "Rome", "medium_display": "Silver", "artwork_type_title": "Coin",
     "is_public_domain": True, "image_id": "img-302"},
    {"id": 303, "title": "Statuette of a Seated Girl", "date_display": "330–320 BCE",
     "place_of_origin": "Greece", "medium_display": "Terracotta",
     "artwork_type_title": "Sculpture", "is_public_domain": True, "image_id": "img-303"},
    {"id": 304, "title": "Mosaic Fragment with a Peacock", "date_display": "500–600 CE",
     "place_of_origin": "Syria", "style_title": "Byzantine",
     "medium_display": "Stone tesserae", "is_public_domain": True, "image_id": "img-304"},
    {"id": "../../evil2", "title": "Statuette of Aphrodite", "date_display": "2nd century BCE",
     "place_of_origin": "Greece", "medium_display": "Terracotta", "is_public_domain": True,
     "image_id": "../../../etc/passwd"},
    {"id": 306, "title": "Statue of a Youth", "date_display": "1st century CE",
     "place_of_origin": "Rome", "is_public_domain": False, "image_id": "img-306"},
    {"id": 307, "title": "Amulet of Isis", "date_display": "664–332 BCE",
     "place_of_origin": "Egypt", "medium_display": "Faience", "is_public_domain": True,
     "image_id": "img-307"},
    # The culture only in artist_display, as AIC's ancient records have it.
    {"id": 308, "title": "Portrait Head of a Man", "date_display": "100–150 CE",
     "artist_display": "Roman", "medium_display": "Marble", "is_public_domain": True,
     "image_id": "img-308"},
]
AIC_DEPARTMENT = "Arts of the Ancient Mediterranean and Byzantium"


class FakeMuseums:
  """State and answers of the fake APIs; counts every request by path."""

  def __init__(self):
    self.base = ""
    self.hits: dict[str, int] = {}
    self.lock = threading.Lock()
    self.images = {}  # Image path -> JPEG bytes.
    for key in MET_OBJECTS:
      self.images["/img/met/" + str(key)] = _jpeg(zlib.crc32(str(key).encode()))
    self.images["/img/cle/101"] = _jpeg(101)
    self.images["/img/cle/103"] = self.images["/img/met/1"]  # The same photograph.
    self.images["/img/cle/201"] = _jpeg(201)
    self.images["/img/cle/202"] = _jpeg(202)
    for item in AIC_ITEMS:
      self.images[f"/aic/iiif/{item['image_id']}/full/843,/0/default.jpg"] = _jpeg(
          zlib.crc32(str(item["id"]).encode()) + 1)

  def count(self, path: str) -> int:
    with self.lock:
      self.hits[path] = self.hits.get(path, 0) + 1
      return self.hits[path]

  def image_requests(self) -> int:
    return sum(n for p, n in self.hits.items() if p.startswith(("/img/", "/aic/iiif/")))

  def answer(self, path: str, query: dict):
    """(status, headers, body, delay_s) for one GET."""
    n = self.count(path)
    js = lambda obj: (200, {"Content-Type": "application/json"},
                      json.dumps(obj).replace("{base}", self.base).encode(), 0)
    if path == "/met/departments":
      return js(fixture("met_departments.json"))
    if path == "/met/objects":
      ids = MET_DEPARTMENT_IDS[int(query["departmentIds"])]
      return js({"total": len(ids), "objectIDs": ids})
    if path.startswith("/met/objects/"):
      key = path[len("/met/objects/"):]
      key = int(key) if key.isdigit() else key
      if key not in MET_OBJECTS:
        return 404, {}, b'{"message": "Not a valid object"}', 0
      return js(MET_OBJECTS[key])
    if path == "/cle/artworks/":
      items = CLEVELAND_ITEMS[query["department"]]
      assert query["cc0"] == "1" and query["has_image"] == "1"
      skip = int(query["skip"])
      page = []
      for fields in items[skip:skip + 2]:  # The fake serves at most 2 per page: pagination.
        item = fixture("cleveland_artwork.json")
        assert set(fields) <= CLEVELAND_FIELDS, set(fields) - CLEVELAND_FIELDS
        item.update(copy.deepcopy(fields))
        item["department"] = fields.get("department", query["department"])
        for size in ("web", "print"):
          item["images"][size]["url"] = f"{{base}}/img/cle/{item['id']}"
        page.append(item)
      return js({"info": {"total": len(items), "parameters": dict(query)}, "data": page})
    if path == "/aic/artworks/search":
      params = json.loads(query["params"])
      assert {"term": {"is_public_domain": True}} in params["query"]["bool"]["must"]
      page, limit = int(query["page"]), 4  # The fake serves 4 per page.
      fields = query["fields"].split(",")
      items = []
      for item in AIC_ITEMS[(page - 1) * limit:page * limit]:
        item = {**{f: None for f in fields}, "department_title": AIC_DEPARTMENT, **item}
        items.append({"_score": 1.0, **{f: item[f] for f in fields}})
      answer = fixture("aic_search.json")
      answer["pagination"] = {"total": len(AIC_ITEMS), "limit": limit,
                              "offset": (page - 1) * limit,
                              "total_pages": -(-len(AIC_ITEMS) // limit), "current_page": page}
      answer["data"] = items
      answer["config"]["iiif_url"] = self.base + "/aic/iiif"
      return js(answer)
    if path in self.images:
      data = self.images[path]
      if path == "/img/met/7":
        return 404, {}, b"not found", 0
      if path == "/img/met/8" and n == 1:
        return 429, {"Retry-After": "1"}, b"slow down", 0
      if path == "/img/met/9":
        return 200, {"Content-Type": "image/jpeg"}, data[:len(data) // 2], 0
      if path == "/img/met/10" and n == 1:
        return 200, {"Content-Type": "image/jpeg"}, data, 1.0
      return 200, {"Content-Type": "image/jpeg"}, data, 0
    return 404, {}, b"no such path", 0


class _Handler(http.server.BaseHTTPRequestHandler):
  fake: FakeMuseums = None

  def do_GET(self):
    split = urllib.parse.urlsplit(self.path)
    path = urllib.parse.unquote(split.path)
    query = dict(urllib.parse.parse_qsl(split.query))
    status, headers, body, delay = self.fake.answer(path, query)
    if delay:
      time.sleep(delay)
    try:
      self.send_response(status)
      for key, value in headers.items():
        self.send_header(key, value)
      self.send_header("Content-Length", str(len(body)))
      self.end_headers()
      self.wfile.write(body)
    except (BrokenPipeError, ConnectionResetError):
      pass  # The client gave up waiting (the timeout test).

  def log_message(self, *args):
    pass


@pytest.fixture
def fake_server():
  fake = FakeMuseums()
  handler = type("Handler", (_Handler,), {"fake": fake})
  server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
  server.daemon_threads = True
  fake.base = f"http://127.0.0.1:{server.server_address[1]}"
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  yield fake
  server.shutdown()
  server.server_close()


def _config(fake: FakeMuseums, out, **overrides) -> harvest.BuildConfig:
  values = dict(
      out=str(out), met_url=fake.base + "/met", cleveland_url=fake.base + "/cle",
      # The answers' config.iiif_url wins over the flag (AIC builds image URLs from it).
      aic_url=fake.base + "/aic", aic_iiif_url=fake.base + "/not-the-iiif", image_size=32,
      workers=4, max_concurrency=4, timeout=0.4, retries=2, backoff=0.01,
      max_retry_after=5.0, met_rate=1000.0, cleveland_rate=1000.0, aic_rate=1000.0,
      aic_iiif_rate=1000.0)
  values.update(overrides)
  return harvest.BuildConfig(**values)


def _read_csv(path):
  with open(path, newline="", encoding="utf-8") as f:
    return list(csv.DictReader(f))


def _build(config):
  return harvest.build(config, progress_stream=io.StringIO())


# --- The whole command ------------------------------------------------------------------


def test_build_all_sources(fake_server, tmp_path, capsys):
  out = tmp_path / "out"
  _build(_config(fake_server, out))
  rows = {r["object_id"]: r for r in _read_csv(out / "labels.csv")}
  drops = {r["object_id"]: r["reason"] for r in _read_csv(out / "drops.csv")}

  with open(out / "labels.csv", encoding="utf-8") as f:
    assert f.readline().strip() == ",".join(harvest.LABEL_COLUMNS)
  # Happy path, one per source, with labels from the README rules.
  expected = {
      "MET_1": ("met", "egyptian", "sculpture", "middle"),
      "MET_4": ("met", "greek", "painting", "early"),
      "MET_5": ("met", "roman", "sculpture", "middle"),
      "MET_8": ("met", "egyptian", "sculpture", "middle"),  # After a 429 + Retry-After.
      "MET_10": ("met", "egyptian", "sculpture", "middle"),  # After a timeout.
      "CLE_101": ("cle", "egyptian", "architecture", "late"),
      "CLE_201": ("cle", "greek", "painting", "middle"),
      "CHI_301": ("aic", "greek", "painting", "early"),
      "CHI_302": ("aic", "roman", "", "middle"),
      "CHI_303": ("aic", "greek", "sculpture", ""),      # 330-320 BCE straddles 323.
      "CHI_307": ("aic", "egyptian", "", "late"),
      "CHI_308": ("aic", "roman", "sculpture", "middle"),  # Culture from artist_display.
  }
  for object_id, (museum, culture, medium, period) in expected.items():
    row = rows[object_id]
    assert (row["museum"], row["culture"], row["medium"], row["period"]) == (
        museum, culture, medium, period), object_id
    assert row["image"] == f"images/{museum}/{object_id}.jpg"
    assert row["license"] == "CC0-1.0" and row["credit"] == ""
    assert row["split"] in ("train", "val", "test")
    assert row["split"] == harvest.assign_split(object_id)
    assert row["source_url"].startswith(fake_server.base)
    with Image.open(out / row["image"]) as image:
      assert image.mode == "RGB" and max(image.size) <= 32
  assert rows["CLE_101"]["begin_year"] == "-380" and rows["CLE_101"]["end_year"] == "-343"

  # Every other record is dropped with its reason.
  assert drops["MET_2"] == "not public domain"
  assert drops["MET_3"] == "record not fetched: HTTP 404"
  assert drops["MET_6"].startswith("not Egyptian/Greek/Roman: etruscan")
  assert drops["MET_7"] == "image not fetched: HTTP 404"
  assert drops["MET_9"].startswith("image unusable")
  assert drops["MET_11"] == "no image"
  assert drops["CLE_102"].startswith("not Egyptian")
  assert drops["CLE_103"].startswith("duplicate picture")  # Same photo as MET_1.
  assert drops["CLE_202"].startswith("dated 476 CE or later")
  assert drops["CLE_203"] == "not CC0"
  assert drops["CHI_304"].startswith("post-antique period: byzantine")
  assert drops["CHI_306"] == "not public domain"
  assert drops["MET_12"] == "not Egyptian/Greek/Roman: cyprus"  # Read from region.
  assert set(rows) | set(drops) >= set(expected)
  assert not set(rows) & set(drops)

  # Every listed image exists; the counts table is printed.
  for row in rows.values():
    assert (out / row["image"]).is_file()
  printed = capsys.readouterr().out
  assert "| museum | records seen | kept | dropped |" in printed
  assert "| culture | train | val | test | total |" in printed


def test_path_traversal_ids_stay_inside_out(fake_server, tmp_path):
  out = tmp_path / "a" / "out"
  _build(_config(fake_server, out))
  rows = {r["object_id"]: r for r in _read_csv(out / "labels.csv")}
  traversal = [r for oid, r in rows.items() if "evil" in oid]
  assert len(traversal) == 2  # The Met and the AIC record, both kept, both renamed.
  root = os.path.realpath(out / "images")
  for row in traversal:
    assert "/" not in row["object_id"] and not row["object_id"].startswith(".")
    path = os.path.realpath(out / row["image"])
    assert os.path.commonpath([path, root]) == root and os.path.isfile(path)
  # Nothing was written next to or above the output folder.
  assert sorted(os.listdir(tmp_path)) == ["a"]
  assert sorted(os.listdir(tmp_path / "a")) == ["out"]
  written = {p.name for p in out.rglob("*") if p.is_file()}
  assert not any(name.startswith("evil") for name in written)


def test_second_run_resumes_without_downloading(fake_server, tmp_path):
  out = tmp_path / "out"
  _build(_config(fake_server, out))
  first_images = fake_server.image_requests()
  labels_first = (out / "labels.csv").read_bytes()
  mtimes = {p: p.stat().st_mtime_ns for p in (out / "images").rglob("*.jpg")}
  assert first_images > 0

  _build(_config(fake_server, out))
  # Only the two images that failed last time (a 404 and a truncated one) are asked for.
  assert fake_server.image_requests() - first_images == 2
  assert (out / "labels.csv").read_bytes() == labels_first
  assert {p: p.stat().st_mtime_ns for p in (out / "images").rglob("*.jpg")} == mtimes
  assert not list(out.rglob("*.part"))  # No temporary files left behind.


def test_resume_redownloads_a_corrupted_file(fake_server, tmp_path):
  out = tmp_path / "out"
  _build(_config(fake_server, out, sources=("cleveland",)))
  before = fake_server.image_requests()
  (out / "images" / "cle" / "CLE_101.jpg").write_bytes(b"garbage")
  _build(_config(fake_server, out, sources=("cleveland",)))
  assert fake_server.image_requests() - before == 1  # Only the corrupted one.
  with Image.open(out / "images" / "cle" / "CLE_101.jpg") as image:
    image.load()


def test_limit_caps_records_per_source(fake_server, tmp_path):
  out = tmp_path / "out"
  _build(_config(fake_server, out, sources=("met", "aic"), limit=2))
  listed = [r for r in _read_csv(out / "labels.csv")]
  assert 1 <= sum(r["museum"] == "met" for r in listed) <= 2
  assert 1 <= sum(r["museum"] == "aic" for r in listed) <= 2


def test_unknown_source_is_refused(fake_server, tmp_path):
  with pytest.raises(ValueError, match="unknown source"):
    _build(_config(fake_server, tmp_path / "out", sources=("louvre",)))


# --- The HTTP client --------------------------------------------------------------------


def test_client_honours_retry_after(fake_server):
  client = HttpClient(rate=1000, timeout=2, retries=2, backoff=0.01)
  start = time.monotonic()
  body = client.get(fake_server.base + "/img/met/8")
  assert body == fake_server.images["/img/met/8"]
  assert time.monotonic() - start >= 0.9  # Waited the Retry-After second.
  assert client.requests == 2 and client.retried == 1


def test_client_does_not_retry_404(fake_server):
  client = HttpClient(rate=1000, timeout=2, retries=3, backoff=0.01)
  with pytest.raises(HttpError) as error:
    client.get(fake_server.base + "/img/met/7")
  assert error.value.status == 404 and client.requests == 1


def test_client_gives_up_on_a_slow_server(fake_server):
  client = HttpClient(rate=1000, timeout=0.3, retries=0, backoff=0.01)
  with pytest.raises(HttpError) as error:
    client.get(fake_server.base + "/img/met/10")
  assert error.value.status is None  # A network error: the timeout.


def test_client_refuses_too_long_retry_after(fake_server):
  client = HttpClient(rate=1000, timeout=2, retries=2, backoff=0.01, max_retry_after=0.5)
  with pytest.raises(HttpError) as error:
    client.get(fake_server.base + "/img/met/8")
  assert error.value.status == 429


def test_token_bucket_limits_rate():
  bucket = TokenBucket(rate=50, burst=1)
  start = time.monotonic()
  for _ in range(11):
    bucket.acquire()
  assert time.monotonic() - start >= 10 / 50 * 0.9


def test_parse_retry_after():
  assert parse_retry_after("3") == 3.0
  assert parse_retry_after(None) is None
  assert parse_retry_after("soon") is None
  assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0


# --- Images, names, splits ----------------------------------------------------------------


def test_decode_refuses_bombs_and_truncated_data():
  big = io.BytesIO()
  Image.new("RGB", (400, 300)).save(big, format="PNG")
  with pytest.raises(image_store.ImageError, match="exceeds the limit"):
    image_store.decode_image(big.getvalue(), max_pixels=100_000)
  data = _jpeg(1)
  with pytest.raises(image_store.ImageError):
    image_store.decode_image(data[:len(data) // 2], max_pixels=10**8)
  with pytest.raises(image_store.ImageError):
    image_store.decode_image(b"<html>not an image</html>", max_pixels=10**8)


def test_decode_converts_to_rgb_and_resize_keeps_aspect():
  rgba = io.BytesIO()
  Image.new("RGBA", (200, 100), (10, 20, 30, 0)).save(rgba, format="PNG")
  image = image_store.decode_image(rgba.getvalue(), max_pixels=10**8)
  assert image.mode == "RGB" and image.getpixel((0, 0)) == (255, 255, 255)
  assert image_store.resize_longer_side(image, 50).size == (50, 25)
  assert image_store.resize_longer_side(image, 500).size == (200, 100)  # Never enlarged.


@pytest.mark.parametrize("raw", ["../../evil", "..", "/etc/passwd", "a/../../b", "", "x" * 300,
                                 "ok_123.4"])
def test_safe_component_stays_a_plain_name(raw, tmp_path):
  name = image_store.safe_component(raw)
  assert name and "/" not in name and not name.startswith(".") and len(name) <= 100
  store = image_store.ImageStore(str(tmp_path))
  path = store.absolute_path(store.relative_path("met", "MET_" + name))
  assert path.startswith(os.path.realpath(tmp_path / "images") + os.sep)


def test_absolute_path_refuses_escapes(tmp_path):
  store = image_store.ImageStore(str(tmp_path))
  with pytest.raises(ValueError):
    store.absolute_path("images/../../evil.jpg")


def test_splits_are_stable_and_proportioned():
  ids = [f"MET_{i}" for i in range(4000)]
  splits = [harvest.assign_split(i) for i in ids]
  assert splits == [harvest.assign_split(i) for i in ids]
  fractions = {s: splits.count(s) / len(ids) for s in ("train", "val", "test")}
  assert abs(fractions["val"] - 0.15) < 0.03 and abs(fractions["test"] - 0.15) < 0.03
