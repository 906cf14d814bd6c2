"""The JSON API and the page's files, through FastAPI's test client, on a tiny trained model."""

import asyncio
import base64
import csv
import hashlib
import io
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


def small_limits():
  settings = serve_config.get_config()
  settings.max_file_bytes = 200_000
  settings.max_request_bytes = 600_000
  settings.max_pixels = 1_000_000
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
  with TestClient(app_lib.create_app(model, small_limits())) as test_client:
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
  assert health["workdir"] == str(served_workdir.resolve())
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
    async with httpx2.AsyncClient(transport=transport, base_url="http://test") as session:
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
  with TestClient(app_lib.create_app(model, serve_config.get_config())) as strict:
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
