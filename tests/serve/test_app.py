"""The JSON API and the page's files, through FastAPI's test client, on a tiny trained model."""

import asyncio
import base64
import csv
import hashlib
import io
import json
import re

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="the app extra is not installed (pip install -e .[app])")
httpx2 = pytest.importorskip("httpx2", reason="the test client needs httpx2 (pip install -e .[app-test])")
from fastapi.testclient import TestClient  # noqa: E402

import artclf  # noqa: E402
from artclf.data import labels_csv  # noqa: E402
from artclf.serve import app as app_lib  # noqa: E402
from artclf.serve import export, predict  # noqa: E402
from artclf import scheme as scheme_lib
from configs import serve as serve_config  # noqa: E402
from tests.serve.conftest import jpeg_bytes  # noqa: E402


LOCAL = "http://localhost"  # the Host a page on this machine sends (others are refused)


def small_limits():
  settings = serve_config.get_config()
  settings.max_file_bytes = 200_000
  settings.max_request_bytes = 600_000
  settings.max_pixels = 1_000_000
  settings.max_request_pixels = 2_000_000
  settings.max_json_bytes = 60_000
  settings.max_batch_size = 4
  settings.url_timeout_seconds = 1.0
  settings.url_max_bytes = 200_000
  settings.url_allow_private_hosts = True  # the test image server is on loopback
  settings.overlay_size = 64
  return settings


@pytest.fixture(scope="module")
def model(served_workdir):
  return predict.load_model(served_workdir)


@pytest.fixture(scope="module")
def client(model):
  with TestClient(app_lib.create_app(model, small_limits()), base_url=LOCAL) as test_client:
    yield test_client


def png_bytes(size=(80, 60), seed=0) -> bytes:
  rng = np.random.default_rng(seed)
  buffer = io.BytesIO()
  Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(buffer, "PNG")
  return buffer.getvalue()


def expected(model, data: bytes) -> dict:
  return artclf.predict(Image.open(io.BytesIO(data)), model=model)


def assert_same_prediction(item: dict, reference: dict):
  for task in scheme_lib.DEFAULT.tasks:
    assert item[task]["label"] == reference[task]["label"]
    assert item[task]["probability"] == pytest.approx(reference[task]["probability"], abs=1e-6)
    assert item[task]["distribution"] == pytest.approx(reference[task]["distribution"], abs=1e-6)


def test_health_names_the_model(client, served_workdir):
  health = client.get("/api/health").json()
  assert health["workdir"] == served_workdir.name  # no absolute path: the folder's name
  assert str(served_workdir.parent) not in str(health)
  assert health["config_hash"] == hashlib.sha256((served_workdir / "config.json").read_bytes()).hexdigest()
  assert health["trunk"] == "tiny"
  assert health["classes"] == {task: list(names) for task, names in scheme_lib.DEFAULT.classes.items()}
  assert health["limits"]["max_batch_size"] == 4


def test_predict_returns_what_artclf_predict_returns(client, model):
  photos = {"amphora.jpg": jpeg_bytes(3), "stele.png": png_bytes(seed=4)}
  response = client.post("/api/predict", files=[("files", (name, data)) for name, data in photos.items()])
  assert response.status_code == 200
  results = response.json()["results"]
  assert [item["image"] for item in results] == list(photos)
  threshold = small_limits().low_confidence_threshold
  for item, data in zip(results, photos.values()):
    reference = expected(model, data)
    assert set(reference) <= set(item)  # every field predict returns, passed through
    assert_same_prediction(item, reference)
    assert item["low_confidence"] == [t for t in scheme_lib.DEFAULT.tasks if reference[t]["probability"] < threshold]


@pytest.mark.parametrize("data, message", [
    (b"", "the file is empty"),
    (b"just some notes, not a photo", "unknown or broken image format"),
    (jpeg_bytes(5)[:300], "Truncated File Read"),
])
def test_unreadable_files_are_refused_by_name(client, data, message):
  response = client.post("/api/predict", files=[("files", ("good.jpg", jpeg_bytes(1))),
                                                ("files", ("bad <b>.jpg", data))])
  assert response.status_code == 422
  body = response.json()
  assert body["error"].startswith("bad <b>.jpg: ") and message in body["error"]
  assert [f["file"] for f in body["files"]] == ["bad <b>.jpg"]


def test_several_bad_files_are_all_listed(client):
  response = client.post("/api/predict", files=[("files", ("a.txt", b"text")),
                                                ("files", ("b.jpg", b"\xff\xd8\xff"))])
  assert response.status_code == 422
  assert "2 of 2 files refused; nothing was predicted" in response.json()["error"]


def test_oversize_files_requests_and_images_get_413(client):
  too_big = client.post("/api/predict", files=[("files", ("huge.jpg", b"\xff" * 250_000))])
  assert too_big.status_code == 413 and too_big.json()["error"].startswith("huge.jpg: 250000 bytes")
  whole = client.post("/api/predict", files=[("files", (f"{i}.jpg", b"\xff" * 190_000)) for i in range(4)])
  assert whole.status_code == 413 and "request is over the limit of 600000 bytes" in whole.json()["error"]
  buffer = io.BytesIO()
  Image.new("RGB", (2000, 1000)).save(buffer, "PNG")  # 2 MP in a few KB: refused from the header
  pixels = client.post("/api/predict", files=[("files", ("wide.png", buffer.getvalue()))])
  assert pixels.status_code == 413 and "exceeds the limit of 1000000 pixels" in pixels.json()["error"]


def test_the_pixels_of_a_whole_request_are_bounded_before_any_decoding(client):
  buffer = io.BytesIO()
  Image.new("RGB", (1000, 900)).save(buffer, "PNG")  # 0.9 MP in a few KB: each one passes
  three = [("files", (f"{i}.png", buffer.getvalue())) for i in range(3)]
  response = client.post("/api/predict", files=three)
  assert response.status_code == 413
  assert "3 images of 2700000 pixels in all; the limit is 2000000 pixels per request" in \
      response.json()["error"]
  assert client.post("/api/predict", files=three[:2]).status_code == 200


def test_the_pixel_budget_makes_a_request_wait_for_room():
  import threading  # pylint: disable=import-outside-toplevel
  from artclf.serve import uploads  # pylint: disable=import-outside-toplevel
  budget, order = uploads.PixelBudget(10), []

  def second_request():
    with budget.reserve(5):
      order.append(("b decodes", budget.used))

  with budget.reserve(8):
    waiting = threading.Thread(target=second_request)
    waiting.start()
    waiting.join(0.2)
    order.append("a released")
  waiting.join(5)
  assert order == ["a released", ("b decodes", 5)] and budget.used == 0


def test_a_body_without_content_length_is_cut_off_at_the_limit(client):
  def chunks():
    boundary = b"--x\r\nContent-Disposition: form-data; name=\"files\"; filename=\"a.jpg\"\r\n\r\n"
    yield boundary
    for _ in range(100):
      yield b"\xff" * 10_000
  response = client.post("/api/predict", content=chunks(),
                         headers={"Content-Type": "multipart/form-data; boundary=x"})
  assert response.status_code == 413


def test_batch_size_and_empty_requests_are_refused(client):
  five = client.post("/api/predict", files=[("files", (f"{i}.jpg", jpeg_bytes(i))) for i in range(5)])
  assert five.status_code == 413 and "5 images in one request; the limit is 4" in five.json()["error"]
  for response in (client.post("/api/predict"), client.post("/api/predict", json={"x": 1}),
                   client.post("/api/predict", files=[("photo", ("a.jpg", jpeg_bytes(1)))])):
    assert response.status_code == 400 and "no image in the request" in response.json()["error"]


def test_garbage_multipart_is_a_400_not_a_500(client):
  response = client.post("/api/predict", content=b"--y\r\nnonsense",
                         headers={"Content-Type": "multipart/form-data; boundary=y"})
  assert 400 <= response.status_code < 500 and "error" in response.json()


def test_concurrent_requests_each_get_their_own_answer(model):
  app = app_lib.create_app(model, small_limits())
  photos = [jpeg_bytes(seed) for seed in range(8)]

  async def send_all():
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url=LOCAL) as session:
      return await asyncio.gather(*[
          session.post("/api/predict", files=[("files", (f"{i}.jpg", data))])
          for i, data in enumerate(photos)])

  responses = asyncio.run(send_all())
  for i, (response, data) in enumerate(zip(responses, photos)):
    assert response.status_code == 200
    item, = response.json()["results"]
    assert item["image"] == f"{i}.jpg"
    assert_same_prediction(item, expected(model, data))


def test_explain_gives_one_overlay_per_task(client):
  response = client.post("/api/explain", files={"file": ("a.jpg", jpeg_bytes(2, size=(200, 100)))})
  assert response.status_code == 200
  overlays = response.json()["overlays"]
  assert set(overlays) == set(scheme_lib.DEFAULT.tasks)
  for data_url in overlays.values():
    assert data_url.startswith("data:image/png;base64,")
    overlay = Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1])))
    assert overlay.size == (64, 32)  # the picture's shape, at most overlay_size a side
  broken = client.post("/api/explain", files={"file": ("x.jpg", b"nope")})
  assert broken.status_code == 422 and broken.json()["error"].startswith("x.jpg: ")
  two = client.post("/api/explain", files=[("file", ("a.jpg", jpeg_bytes(2))),
                                           ("file", ("b.jpg", jpeg_bytes(3)))])
  assert two.status_code == 400
  assert "explain takes one file, not 2 ('a.jpg', 'b.jpg')" in two.json()["error"]


def test_fetch_returns_the_checked_image(client, image_server):
  response = client.post("/api/fetch", json={"url": f"{image_server}/to-photo"})
  assert response.status_code == 200
  assert response.content == jpeg_bytes(1)
  assert response.headers["content-type"] == "image/jpeg"
  assert response.headers["x-image-name"] == "photo.jpg"


@pytest.mark.parametrize("path, status, message", [
    ("/big.jpg", 413, "over the limit of 200000 bytes"),
    ("/notes.txt", 422, "unknown or broken image format"),
    ("/slow.jpg", 422, "longer than 1 s"),
    ("/missing", 422, "404"),
])
def test_fetch_refuses_bad_urls_with_4xx(client, image_server, path, status, message):
  response = client.post("/api/fetch", json={"url": image_server + path})
  assert response.status_code == status
  assert message in response.json()["error"] and path in response.json()["error"]


def test_fetch_refuses_other_schemes_private_hosts_and_non_json(model, client):
  assert client.post("/api/fetch", json={"url": "file:///etc/passwd"}).status_code == 422
  assert client.post("/api/fetch", json={}).status_code == 422
  # Not JSON: a form post from another site cannot make the server fetch anything.
  form = client.post("/api/fetch", data={"url": "http://example.org/a.jpg"})
  assert 400 <= form.status_code < 500
  with TestClient(app_lib.create_app(model, serve_config.get_config()), base_url=LOCAL) as strict:
    response = strict.post("/api/fetch", json={"url": "http://127.0.0.1:9/photo.jpg"})
  assert response.status_code == 422 and "local or private" in response.json()["error"]


def prediction(label_by_task: dict) -> dict:
  return {task: {"label": label, "probability": 0.5, "distribution": {}}
          for task, label in label_by_task.items()}


def test_export_writes_labels_csv_rows_that_load_as_a_dataset(client, tmp_path):
  predicted = prediction({"culture": "greek", "medium": "sculpture", "period": "late"})
  rows = [{"image": "a.jpg", "labels": {"culture": "roman", "medium": "sculpture", "period": ""},
           "predicted": predicted},
          {"image": "b.jpg", "labels": {"culture": "greek", "medium": "sculpture", "period": "late"},
           "predicted": predicted, "source_url": "https://example.org/b.jpg"}]
  response = client.post("/api/export", json={"rows": rows})
  assert response.status_code == 200
  assert response.headers["content-type"].startswith("text/csv")
  assert "attachment" in response.headers["content-disposition"]
  table = list(csv.DictReader(io.StringIO(response.text)))
  assert list(table[0]) == export.columns(scheme_lib.DEFAULT.tasks)
  assert (table[0]["culture"], table[0]["period"], table[0]["predicted_culture"]) == ("roman", "", "greek")
  assert table[0]["corrected"] == "culture period" and table[1]["corrected"] == ""
  assert table[0]["culture_probability"] == "0.500000" and table[0]["split"] == ""
  # Beside the photos, with a split filled in, it is a training set.
  for name in ("a.jpg", "b.jpg"):
    (tmp_path / name).write_bytes(jpeg_bytes(1))
  with open(tmp_path / "labels.csv", "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=export.columns(scheme_lib.DEFAULT.tasks))
    writer.writeheader()
    writer.writerows(dict(row, split="train") for row in table)
  dataset = labels_csv.load_dataset(tmp_path)
  assert [e.metadata["culture"] for e in dataset.examples] == ["roman", "greek"]
  assert dataset.examples[0].metadata["period"] == ""


def test_export_neutralises_formulas_and_refuses_unknown_labels(client):
  row = {"image": "=HYPERLINK(\"x\").jpg", "predicted": prediction({t: c[0] for t, c in scheme_lib.DEFAULT.classes.items()}),
         "labels": {t: c[0] for t, c in scheme_lib.DEFAULT.classes.items()}}
  text = client.post("/api/export", json={"rows": [row]}).text
  assert next(csv.DictReader(io.StringIO(text)))["image"] == "'=HYPERLINK(\"x\").jpg"
  bad = dict(row, labels={**row["labels"], "culture": "martian"})
  response = client.post("/api/export", json={"rows": [bad]})
  assert response.status_code == 422 and "culture must be one of" in response.json()["error"]


def test_export_cells_with_control_characters_nan_or_formulas_read_back_as_text(client, tmp_path):
  labels = {t: c[0] for t, c in scheme_lib.DEFAULT.classes.items()}
  predicted = prediction(labels)
  predicted["culture"] = {"label": "=1+1", "probability": float("nan"), "distribution": {}}
  predicted["medium"]["probability"] = float("inf")
  name = "a.jpg\r=1+1+SUM(9)"  # from a fetched URL's path
  body = json.dumps({"rows": [{"image": name, "labels": labels, "predicted": predicted}]})
  response = client.post("/api/export", content=body,
                         headers={"Content-Type": "application/json"})
  assert response.status_code == 200
  assert "\r=" not in response.text and "nan" not in response.text.lower()
  row, = csv.DictReader(io.StringIO(response.text, newline=""))
  assert row["image"] == "a.jpg\ufffd=1+1+SUM(9)" and row["predicted_culture"] == "'=1+1"
  assert row["culture_probability"] == "" and row["medium_probability"] == ""
  assert len(list(csv.reader(io.StringIO(response.text, newline="")))) == 2  # header, one row
  # artclf's own loader reads the export back: as it is, it stops only at the empty split.
  (tmp_path / "labels.csv").write_text(response.text, newline="")
  (tmp_path / row["image"]).write_bytes(jpeg_bytes(1))
  with pytest.raises(labels_csv.DatasetError, match="line 2: split '' is not one of"):
    labels_csv.load_dataset(tmp_path)
  (tmp_path / "labels.csv").write_text(response.text.replace(f"{labels['period']},,",
                                                             f"{labels['period']},train,", 1),
                                       newline="")
  assert labels_csv.load_dataset(tmp_path).examples[0].image == row["image"]


def test_a_json_body_over_its_limit_is_refused_before_parsing(client):
  rows = [{"image": f"{i}.jpg", "labels": {}, "predicted": {}} for i in range(2000)]
  response = client.post("/api/export", content=json.dumps({"rows": rows}),
                         headers={"Content-Type": "application/json"})
  assert response.status_code == 413
  assert "the JSON body is over the limit of 60000 bytes" in response.json()["error"]


def test_invalid_values_are_shortened_in_messages(client):
  labels = {t: c[0] for t, c in scheme_lib.DEFAULT.classes.items()}
  row = {"image": "a.jpg", "labels": dict(labels, culture="x" * 900),
         "predicted": prediction(labels)}
  error = client.post("/api/export", json={"rows": [row]}).json()["error"]
  assert "culture must be one of" in error and "(+840 characters)" in error and len(error) < 300


def test_a_host_header_naming_another_site_is_refused(model, client):
  assert client.get("/api/health").status_code == 200
  with TestClient(app_lib.create_app(model, small_limits()),
                  base_url="http://rebound.example") as other:
    response = other.get("/api/health")
  assert response.status_code == 400 and "rebound.example" in response.json()["error"]
  settings = small_limits()
  settings.allowed_hosts = "rebound.example"
  with TestClient(app_lib.create_app(model, settings), base_url="http://rebound.example") as named:
    assert named.get("/api/health").status_code == 200


def test_the_page_has_a_strict_policy_and_no_inline_script(client):
  page = client.get("/")
  assert page.status_code == 200
  policy = page.headers["content-security-policy"]
  assert "script-src 'self'" in policy and "unsafe-inline" not in policy
  assert page.headers["x-content-type-options"] == "nosniff"
  assert not re.search(r"<script(?![^>]*\bsrc=)", page.text)  # every script is a file
  assert not re.search(r"\son[a-z]+\s*=", page.text)  # no inline event handlers
  script = client.get("/static/app.js").text
  assert "innerHTML" not in script and "insertAdjacentHTML" not in script
  assert client.get("/static/app.css").status_code == 200


def test_unknown_routes_answer_json(client):
  response = client.get("/api/nothing")
  assert response.status_code == 404 and "error" in response.json()
