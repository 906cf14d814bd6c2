"""Tests of the Wikimedia Commons source against a local fake of the MediaWiki API.

A `ThreadingHTTPServer` on 127.0.0.1 answers `list=categorymembers` and `prop=imageinfo`
in formatversion=2 shapes (tests/museums/fixtures/README.md cites their origins), two
members a page so that every listing pages with `continue`, and serves tiny JPEG
thumbnails. The category graph has a loop, an excluded subcategory, another monument's
category, a file filed under two sites, a non-free licence, a file without a licence, a
PNG, a maxlag answer and a 429 with Retry-After.
"""

import csv
import hashlib
import http.server
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.parse

import numpy as np
import pytest
from PIL import Image

from artclf.museums import commons, gazetteer, harvest, licences, splits
from artclf.museums.http_client import HttpClient

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

GAZETTEER = """\
# A test gazetteer: four Greek temples of the 5th century BCE on four sites, a Roman arena.
key,name,group,category,culture,begin,end,exclude,rule
# Test dates.
temple_a,Temple A,site_a,Category:Temple A,greek,-450,-440,graffiti,
temple_a2,Temple A2,site_a,Category:Temple A2,greek,-445,-440,,
temple_b,Temple B,site_b,Category:Temple B,greek,-430,-420,,
temple_d,Temple D,site_d,Category:Temple D,greek,-420,-410,,
temple_e,Temple E,site_e,Category:Temple E,greek,-400,-390,,
arena_c,Arena C,site_c,Category:Arena C,roman,70,80,,
"""

# Category -> members, in the order the API lists them.
CATEGORIES = {
    "Category:Temple A": ["File:A1.jpg", "File:A2.jpg", "File:A plan.jpg", "File:A nc.jpg",
                          "File:A nolicence.jpg", "Category:Temple A at night",
                          "Category:People at Temple A", "Category:Temple B",
                          "Category:Graffiti on Temple A"],
    "Category:Temple A at night": ["File:A3.jpg", "Category:Temple A", "Category:Deeper"],
    "Category:Deeper": ["File:A deep.jpg"],
    "Category:People at Temple A": ["File:A crowd.jpg"],
    "Category:Graffiti on Temple A": ["File:A graffiti.jpg"],
    "Category:Temple A2": ["File:A2 east.jpg", "File:A1.jpg"],
    "Category:Temple B": ["File:B1.jpg", "File:B2.jpg", "File:Shared.jpg"],
    "Category:Temple D": ["File:D1.jpg", "File:D2.jpg"],
    "Category:Temple E": ["File:E1.jpg"],
    "Category:Arena C": ["File:C1.jpg", "File:C2.png", "File:Shared.jpg", "File:C pd.jpg"],
}
# File -> (licence short name or None, mime, artist HTML)
FILES = {
    "File:A nc.jpg": ("CC BY-NC 4.0", "image/jpeg", "Nina"),
    "File:A nolicence.jpg": (None, "image/jpeg", "Noel"),
    "File:C2.png": ("CC0", "image/png", "Carl"),
    "File:C1.jpg": ("CC0", "image/jpeg", "Carl"),
    "File:C pd.jpg": ("Public domain", "image/jpeg", "Unknown"),
}
LICENCE_URLS = {"CC BY-SA 4.0": "https://creativecommons.org/licenses/by-sa/4.0",
                "CC BY-NC 4.0": "https://creativecommons.org/licenses/by-nc/4.0",
                "CC0": "http://creativecommons.org/publicdomain/zero/1.0/deed.en"}
USAGE_TERMS = {"CC BY-SA 4.0": "Creative Commons Attribution-Share Alike 4.0",
               "CC BY-NC 4.0": "Creative Commons Attribution-NonCommercial 4.0",
               "CC0": "Creative Commons Zero, Public Domain Dedication",
               "Public domain": "Public domain"}


def _page_id(title: str) -> int:
  return 1000 + sorted(t for members in CATEGORIES.values() for t in members
                       if t.startswith("File:")).index(title)


def _stable_seed(text: str) -> int:
  """A seed of `text` that is the same in every process (unlike the built-in string hash)."""
  return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def _jpeg(seed: int) -> bytes:
  pixels = np.random.default_rng(seed).integers(0, 256, size=(24, 32, 3), dtype=np.uint8)
  buffer = io.BytesIO()
  Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
  return buffer.getvalue()


def _fixture(name):
  with open(os.path.join(FIXTURES, name), encoding="utf-8") as f:
    return json.load(f)


class FakeCommons:
  """State and answers of the fake API; counts requests by kind."""

  def __init__(self, image_delay: float = 0.0):
    self.base = ""
    self.lock = threading.Lock()
    self.hits: dict[str, int] = {}
    self.image_delay = image_delay
    self.maxlag_left = 0      # This many categorymembers requests are answered maxlag,
    self.throttle_left = 0    # and this many imageinfo requests 429,
    self.retry_after = "2"    # with this Retry-After.

  def count(self, key: str) -> int:
    with self.lock:
      self.hits[key] = self.hits.get(key, 0) + 1
      return self.hits[key]

  def images_served(self) -> int:
    return sum(n for k, n in self.hits.items() if k.startswith("/thumb/"))

  def _members(self, query) -> dict:
    members = CATEGORIES.get(query["cmtitle"], [])
    start = int(query.get("cmcontinue", "0"))
    listed = [{"pageid": _page_id(t) if t.startswith("File:") else 50,
               "ns": 6 if t.startswith("File:") else 14, "title": t,
               "type": "file" if t.startswith("File:") else "subcat"}
              for t in members[start:start + 2]]
    answer = {"batchcomplete": True, "query": {"categorymembers": listed}}
    if start + 2 < len(members):  # As siznax/wptools tests/category_cmcontinue.py.
      answer = {"continue": {"cmcontinue": str(start + 2), "continue": "-||"}, **answer}
      del answer["batchcomplete"]
    return answer

  def _page(self, title: str) -> dict:
    page = _fixture("commons_imageinfo_page.json")
    licence, mime, artist = FILES.get(title, ("CC BY-SA 4.0", "image/jpeg", "Ann"))
    name = urllib.parse.quote(title[5:].replace(" ", "_"))
    page.update(pageid=_page_id(title), title=title)
    info = page["imageinfo"][0]
    info.update(mime=mime, url=f"{self.base}/orig/{name}",
                thumburl=f"{self.base}/thumb/{name}",
                descriptionurl=f"https://commons.wikimedia.org/wiki/{title.replace(' ', '_')}")
    meta = info["extmetadata"]
    meta["Artist"]["value"] = f'<a href="//commons.wikimedia.org/wiki/User:{artist}">{artist}</a>'
    if licence is None:
      for key in ("LicenseShortName", "LicenseUrl", "UsageTerms", "AttributionRequired"):
        del meta[key]
    else:
      meta["LicenseShortName"]["value"] = licence
      meta["UsageTerms"]["value"] = USAGE_TERMS[licence]
      meta["AttributionRequired"]["value"] = "true" if "BY" in licence else "false"
      if licence in LICENCE_URLS:
        meta["LicenseUrl"]["value"] = LICENCE_URLS[licence]
      else:
        del meta["LicenseUrl"]
    return page

  def answer(self, path: str, query: dict):
    """(status, headers, body, delay) for one GET."""
    js = lambda obj, headers={}: (200, {"Content-Type": "application/json", **headers},
                                  json.dumps(obj).encode(), 0)
    if path == "/w/api.php":
      assert query["format"] == "json" and query["maxlag"] == "5"
      if query.get("list") == "categorymembers":
        self.count("categorymembers")
        with self.lock:
          lagged, self.maxlag_left = self.maxlag_left > 0, self.maxlag_left - 1
        if lagged:  # Manual:Maxlag_parameter: HTTP 200, error body, Retry-After.
          return js({"error": {"code": "maxlag", "info": "Waiting for db1: 7 seconds lagged",
                               "host": "db1", "lag": 7,
                               "*": "See https://www.mediawiki.org/w/api.php"}},
                    {"Retry-After": self.retry_after, "X-Database-Lag": "7"})
        return js(self._members(query))
      if query.get("prop") == "imageinfo":
        assert query["iiprop"] == "url|size|mime|extmetadata" and query["iiurlwidth"]
        self.count("imageinfo")
        with self.lock:
          throttled, self.throttle_left = self.throttle_left > 0, self.throttle_left - 1
        if throttled:
          return 429, {"Retry-After": self.retry_after}, b"Too many requests", 0
        titles = query["titles"].split("|")
        assert len(titles) <= commons.FILES_PER_REQUEST
        return js({"batchcomplete": True,
                   "query": {"pages": [self._page(t) for t in titles]}})
    if path.startswith("/thumb/"):
      n = self.count(path)
      # Seeded from a stable digest of the path: the built-in string hash changes with every
      # process (PYTHONHASHSEED), and two photographs could then get the same pixels.
      return 200, {"Content-Type": "image/jpeg"}, _jpeg(_stable_seed(path) + n * 0), \
          self.image_delay
    return 404, {}, b"no such path", 0


class _Handler(http.server.BaseHTTPRequestHandler):
  fake: FakeCommons = None

  def do_GET(self):
    split = urllib.parse.urlsplit(self.path)
    status, headers, body, delay = self.fake.answer(
        urllib.parse.unquote(split.path), dict(urllib.parse.parse_qsl(split.query)))
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
      pass

  def log_message(self, *args):
    pass


def _serve(fake: FakeCommons):
  handler = type("Handler", (_Handler,), {"fake": fake})
  server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
  server.daemon_threads = True
  fake.base = f"http://127.0.0.1:{server.server_address[1]}"
  threading.Thread(target=server.serve_forever, daemon=True).start()
  return server


@pytest.fixture
def fake_commons():
  fake = FakeCommons()
  server = _serve(fake)
  yield fake
  server.shutdown()
  server.server_close()


@pytest.fixture
def gazetteer_file(tmp_path):
  path = tmp_path / "monuments.csv"
  path.write_text(GAZETTEER, encoding="utf-8")
  return str(path)


def _config(fake, out, gazetteer_path, **overrides) -> harvest.BuildConfig:
  values = dict(out=str(out), sources=("commons",), commons_url=fake.base + "/w/api.php",
                gazetteer=gazetteer_path, commons_rate=1000.0, commons_image_rate=1000.0,
                commons_depth=2, commons_per_monument=40, image_size=32, workers=2,
                timeout=2.0, retries=2, backoff=0.01, max_retry_after=5.0,
                user_agent="artclf-tests/1.0 (test@example.org)")
  values.update(overrides)
  return harvest.BuildConfig(**values)


def _read_csv(path):
  with open(path, newline="", encoding="utf-8") as f:
    return list(csv.DictReader(f))


def _build(config):
  return harvest.build(config, progress_stream=io.StringIO())


# --- The whole build ------------------------------------------------------------------------


def test_build_reads_every_page_and_keeps_free_photographs(fake_commons, gazetteer_file,
                                                           tmp_path, capsys):
  out = tmp_path / "out"
  fake_commons.maxlag_left = fake_commons.throttle_left = 1
  fake_commons.retry_after = "0"  # Waits are timed in the tests below.
  _build(_config(fake_commons, out, gazetteer_file))
  rows = {r["title"]: r for r in _read_csv(out / "labels.csv")}
  drops = {r["title"]: r["reason"] for r in _read_csv(out / "drops.csv")}
  # Files on the second and later pages of a listing (continue) are there; A3 comes
  # through a subcategory, "A deep" from depth 2.
  assert {"A1.jpg", "A2.jpg", "A3.jpg", "A deep.jpg", "A2 east.jpg", "B1.jpg", "B2.jpg",
          "D1.jpg", "D2.jpg", "E1.jpg", "C1.jpg", "C pd.jpg"} == set(rows)
  a1 = rows["A1.jpg"]
  assert (a1["object_id"], a1["museum"], a1["culture"], a1["medium"], a1["period"]) == (
      "WMC_temple_a", "commons", "greek", "architecture", "middle")
  assert (a1["begin_year"], a1["end_year"], a1["date_text"]) == ("-450", "-440",
                                                                 "450 BCE-440 BCE")
  assert rows["C1.jpg"]["period"] == "middle" and rows["C1.jpg"]["culture"] == "roman"
  assert a1["license"] == "CC-BY-SA-4.0" and rows["C1.jpg"]["license"] == "CC0-1.0"
  assert rows["C pd.jpg"]["license"] == "public-domain"
  assert a1["source_url"].startswith(fake_commons.base + "/thumb/")
  with Image.open(out / a1["image"]) as image:
    assert max(image.size) <= 32
  # Left out, each with its reason.
  assert drops["A nc.jpg"] == "not a free licence: CC BY-NC 4.0"
  assert drops["A nolicence.jpg"] == "no licence in extmetadata"
  assert drops["A plan.jpg"] == "not a photograph by its name: plan"
  assert drops["C2.png"] == "not a JPEG photograph: image/png"
  assert drops["Shared.jpg"] == "filed under monuments of two sites: temple_b, arena_c"
  assert "A crowd.jpg" not in rows and "A graffiti.jpg" not in rows  # Excluded subcats.
  # A file under two monuments of one site goes to the first; Temple B's category, a
  # subcategory of Temple A, is walked once, as its own monument.
  assert rows["A1.jpg"]["object_id"] == "WMC_temple_a"
  assert rows["B1.jpg"]["object_id"] == "WMC_temple_b"
  printed = capsys.readouterr().out
  assert "| commons | not a free licence: CC BY-NC 4.0 | 1 |" in printed
  assert "| commons | no licence in extmetadata | 1 |" in printed  # Counted.
  assert "| monument | culture | period | site | split | photographs |" in printed
  assert "1 reached twice (loops)" in printed and "1 maxlag waits" in printed
  assert fake_commons.hits["imageinfo"] == 1 + 6  # One 429, retried; one batch a monument.


def test_category_loop_is_walked_once(fake_commons):
  monument = gazetteer.Monument("temple_a", "Temple A", "site_a", "Category:Temple A",
                                "greek", -450, -440, exclude=("graffiti",))
  client = HttpClient(rate=1000, retries=1, backoff=0.01, sleep=lambda s: None)
  stats = commons.CommonsStats()
  files = commons.monument_files(client, fake_commons.base + "/w/api.php", monument, 5,
                                 {"Category:Temple A", "Category:Temple B"}, stats)
  assert sorted(files) == sorted(["File:A1.jpg", "File:A2.jpg", "File:A plan.jpg",
                                  "File:A nc.jpg", "File:A nolicence.jpg", "File:A3.jpg",
                                  "File:A deep.jpg"])
  assert stats.categories == 3  # Temple A, at night, Deeper; the loop back is not re-read.
  assert stats.categories_reached_twice == 1 and stats.other_monument_categories == 1
  assert stats.excluded_subcategories == {"people": 1, "graffiti": 1}


def test_depth_limits_the_walk(fake_commons, gazetteer_file, tmp_path):
  out = tmp_path / "out"
  _build(_config(fake_commons, out, gazetteer_file, commons_depth=0))
  titles = {r["title"] for r in _read_csv(out / "labels.csv")}
  assert "A1.jpg" in titles and "A3.jpg" not in titles and "A deep.jpg" not in titles


def test_maxlag_waits_retry_after_and_asks_again(fake_commons):
  fake_commons.maxlag_left = 1
  waits = []
  client = HttpClient(rate=1000, retries=1, backoff=0.01, sleep=waits.append)
  stats = commons.CommonsStats()
  answer = commons.api_get(client, fake_commons.base + "/w/api.php",
                           {"list": "categorymembers", "cmtitle": "Category:Temple E"}, stats)
  assert answer["query"]["categorymembers"][0]["title"] == "File:E1.jpg"
  assert waits == [2.0] and stats.maxlag_waits == 1  # Retry-After, not the 7 s lag.
  assert fake_commons.hits["categorymembers"] == 2


def test_429_with_retry_after_is_waited_out(fake_commons):
  fake_commons.throttle_left, fake_commons.retry_after = 1, "1"
  client = HttpClient(rate=1000, retries=2, backoff=0.01)
  start = time.monotonic()
  pages = commons.file_pages(client, fake_commons.base + "/w/api.php", ["File:A1.jpg"], 960,
                             commons.CommonsStats())
  assert time.monotonic() - start >= 0.9  # Waited the Retry-After second.
  assert pages["File:A1.jpg"]["imageinfo"][0]["mime"] == "image/jpeg"
  assert client.retried == 1 and fake_commons.hits["imageinfo"] == 2


def test_per_monument_cap(fake_commons, gazetteer_file, tmp_path):
  out = tmp_path / "out"
  _build(_config(fake_commons, out, gazetteer_file, commons_per_monument=2))
  rows = _read_csv(out / "labels.csv")
  per_monument = {}
  for row in rows:
    per_monument[row["object_id"]] = per_monument.get(row["object_id"], 0) + 1
  assert per_monument["WMC_temple_a"] == 2 and max(per_monument.values()) == 2


def test_attribution_file_and_credit_column(fake_commons, gazetteer_file, tmp_path):
  out = tmp_path / "out"
  _build(_config(fake_commons, out, gazetteer_file))
  rows = {r["title"]: r for r in _read_csv(out / "labels.csv")}
  credit = rows["A1.jpg"]["credit"]
  assert credit.startswith('"A1.jpg" by Ann; ')  # Artist HTML as text.
  assert "Creative Commons Attribution-Share Alike 4.0" in credit  # UsageTerms.
  assert "https://creativecommons.org/licenses/by-sa/4.0" in credit
  assert "https://commons.wikimedia.org/wiki/File:A1.jpg" in credit and "resized" in credit
  assert rows["C1.jpg"]["credit"] == "" and rows["C pd.jpg"]["credit"] == ""  # Not required.
  text = (out / "ATTRIBUTION.md").read_text(encoding="utf-8")
  for title, row in rows.items():
    if row["license"] != "CC0-1.0":
      line = next(l for l in text.splitlines() if l.startswith(f"| {row['image']} |"))
      assert row["license"] in line and (row["credit"] or "(not required)") in line
  assert "C1.jpg" not in text  # CC0: no credit owed.


def test_dry_run_fetches_no_image_and_writes_nothing(fake_commons, gazetteer_file, tmp_path,
                                                     capsys):
  out = tmp_path / "out"
  rows = _build(_config(fake_commons, out, gazetteer_file, dry_run=True))
  assert len(rows) == 12 and fake_commons.images_served() == 0
  assert not out.exists()
  printed = capsys.readouterr().out
  assert "| culture | train | val | test | total |" in printed
  assert "| greek |" in printed and "dry run: 12 rows would be built" in printed


# --- Splits by monument ------------------------------------------------------------------


def test_photographs_of_one_site_share_a_split(fake_commons, gazetteer_file, tmp_path):
  out = tmp_path / "out"
  rows = _build(_config(fake_commons, out, gazetteer_file))
  split_of_group = {}
  for row in rows:
    assert split_of_group.setdefault(row.group, row.split) == row.split
  written = _read_csv(out / "labels.csv")
  split_of_object = {}
  for row in written:
    assert split_of_object.setdefault(row["object_id"], row["split"]) == row["split"]
  # Four Greek sites of one period: one goes to val, one to test (15% of 4, rounded up).
  greek = {r.group: r.split for r in rows if r.labels.culture == "greek"}
  assert sorted(greek.values()) == ["test", "train", "train", "val"]
  # The lone Roman site stays in train (a stratum of three sites or fewer).
  assert {r.split for r in rows if r.labels.culture == "roman"} == {"train"}
  assert split_of_group["site_a"] == next(r["split"] for r in written
                                          if r["object_id"] == "WMC_temple_a2")


def test_stratified_splits_rule():
  strata = {f"site_{i}": ("greek", "middle") for i in range(20)}
  strata.update({f"small_{i}": ("roman", "late") for i in range(3)})
  result = splits.stratified_splits(strata)
  greek = [result[f"site_{i}"] for i in range(20)]
  assert greek.count("val") == 3 and greek.count("test") == 3  # round(3.0)
  assert {result[f"small_{i}"] for i in range(3)} == {"train"}
  assert result == splits.stratified_splits(dict(reversed(list(strata.items()))))
  # Adding a site to another stratum leaves these splits alone.
  assert {k: v for k, v in splits.stratified_splits(
      {**strata, "x": ("egyptian", "late")}).items() if k != "x"} == result


def test_group_strata_takes_the_most_common():
  assert splits.group_strata([("g", ("greek", "early")), ("g", ("greek", "middle")),
                              ("g", ("greek", "middle")), ("h", ("roman", "late")),
                              ("h", ("roman", "early"))]) == {
      "g": ("greek", "middle"), "h": ("roman", "late")}


# --- Resume after a kill ----------------------------------------------------------------------

_CHILD = """
import io, sys
from artclf.museums import harvest
config = harvest.BuildConfig(
    out=sys.argv[1], sources=("commons",), commons_url=sys.argv[2], gazetteer=sys.argv[3],
    commons_rate=1000.0, commons_image_rate=1000.0, image_size=32, workers=1,
    timeout=5.0, retries=2, backoff=0.01, user_agent="artclf-tests/1.0 (test@example.org)")
harvest.build(config, progress_stream=io.StringIO())
"""


def test_resume_after_kill(gazetteer_file, tmp_path):
  fake = FakeCommons(image_delay=0.25)
  server = _serve(fake)
  try:
    out = tmp_path / "out"
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(out), fake.base + "/w/api.php", gazetteer_file],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    manifest = out / "manifest.jsonl"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
      if manifest.exists() and len(manifest.read_text().splitlines()) >= 3:
        break
      time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    assert not (out / "labels.csv").exists()  # Killed before the end.
    stored = len(manifest.read_text().splitlines())
    served_before = fake.images_served()
    assert 3 <= stored < 12

    fake.image_delay = 0
    _build(_config(fake, out, gazetteer_file))
    # Only the images not yet stored are fetched again (one more may have been in flight).
    assert fake.images_served() - served_before <= 12 - stored + 1
    rows = _read_csv(out / "labels.csv")
    assert len(rows) == 12
    for row in rows:
      with Image.open(out / row["image"]) as image:
        image.load()
    assert not list(out.rglob("*.part"))
  finally:
    server.shutdown()
    server.server_close()


# --- Licences and the gazetteer ----------------------------------------------------------


@pytest.mark.parametrize("short_name, expected", [
    ("CC BY-SA 4.0", "CC-BY-SA-4.0"), ("CC BY-SA 3.0 de", "CC-BY-SA-3.0-DE"),
    ("CC BY 2.5", "CC-BY-2.5"), ("CC0", "CC0-1.0"), ("Public domain", "public-domain"),
    ("CC BY-NC 4.0", None), ("CC BY-ND 2.0", None), ("CC BY-NC-SA 3.0", None),
    ("GFDL", None), ("Fair use", None), ("All rights reserved", None), ("", None)])
def test_free_licences(short_name, expected):
  licence = licences.free_licence(short_name, "https://example.org/l")
  assert (licence.spdx if licence else None) == expected


def test_default_gazetteer_is_valid_and_balanced():
  monuments = gazetteer.load_gazetteer()
  assert len(monuments) >= 60
  by_culture = {c: [m for m in monuments if m.culture == c]
                for c in ("egyptian", "greek", "roman")}
  assert max(map(len, by_culture.values())) - min(map(len, by_culture.values())) <= 3
  for culture, group in by_culture.items():
    assert {m.period for m in group} >= {"early", "middle", "late"}, culture
  names = {m.name for m in monuments}
  for expected in ("Parthenon", "Erechtheion", "Temple of Hephaestus", "Colosseum",
                   "Pantheon", "Maison Carrée", "Pont du Gard", "Roman Forum",
                   "Baths of Caracalla", "Leptis Magna", "Luxor Temple",
                   "Theatre of Epidaurus"):
    assert expected in names
  with open(gazetteer.GAZETTEER_FILE, encoding="utf-8") as f:
    lines = f.read().splitlines()
  for i, line in enumerate(lines):
    if line and not line.startswith("#") and not line.startswith("key,"):
      assert lines[i - 1].startswith("# "), f"line {i + 1}: no source comment above"


@pytest.mark.parametrize("row, message", [
    ("x,X,,Category:X,etruscan,-500,-400,,", "culture 'etruscan'"),
    ("x,X,,Category:X,greek,-400,-500,,", "begin -400 is after end -500"),
    ("x,X,,X,greek,-500,-400,,", "lacks the Category: prefix"),
    ("x,X,,Category:X,greek,-500,abc,,", "are not integers"),
    ("x,X,,Category:X,roman,500,600,,", "post-antique"),
    ("x,X,,Category:X,greek", "5 fields, expected 9"),
])
def test_bad_gazetteer_rows_name_file_and_line(tmp_path, row, message):
  path = tmp_path / "bad.csv"
  path.write_text("# c\n" + ",".join(gazetteer.COLUMNS) + "\n# s\n" + row + "\n")
  with pytest.raises(gazetteer.GazetteerError) as error:
    gazetteer.load_gazetteer(str(path))
  assert str(error.value).startswith(f"{path}, line 4: ") and message in str(error.value)


def test_bad_gazetteer_is_one_line_from_the_command(tmp_path):
  path = tmp_path / "bad.csv"
  path.write_text(",".join(gazetteer.COLUMNS) + "\nx,X,,Category:X,hittite,-500,-400,,\n")
  result = subprocess.run(
      [sys.executable, "-m", "artclf.museums", f"--out={tmp_path / 'o'}", "--sources=commons",
       f"--gazetteer={path}", "--dry_run"], cwd=REPO, capture_output=True, text=True,
      timeout=60)
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1] == (
      f"error: {path}, line 2: culture 'hittite' is not one of egyptian, greek, roman")
  assert "Traceback" not in result.stderr
