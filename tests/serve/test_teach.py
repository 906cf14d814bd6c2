"""Teach the model from the page's API: corrections kept on the server, a taught run served,
nearest training photos in the answers; on the tiny model trained for tests/serve."""

import io
import json
import pathlib
import time

import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="the app extra is not installed (pip install -e .[app])")
pytest.importorskip("httpx2", reason="the test client needs httpx2 (pip install -e .[app-test])")
from fastapi.testclient import TestClient  # noqa: E402

from artclf.serve import app as app_lib  # noqa: E402
from artclf.serve import predict  # noqa: E402
from configs import serve as serve_config  # noqa: E402
from tests.adapt.conftest import photo  # noqa: E402

RED, BLUE = (220, 40, 40), (40, 40, 220)
LOCAL = "http://localhost"  # a Host the server answers (artclf.serve.host_check)


def settings_for(teach_dir: pathlib.Path):
  settings = serve_config.get_config()
  settings.max_batch_size = 4
  settings.overlay_size = 64
  settings.teach_dir = str(teach_dir)
  settings.teach_holdout_fraction = 0.0
  return settings


@pytest.fixture(scope="module")
def model(served_workdir):
  return predict.load_model(served_workdir)


def correct(client, name: str, data: bytes, **labels):
  return client.post("/api/corrections", files={"file": (name, data, "image/jpeg")},
                     data={"labels": json.dumps(labels)})


def wait_for_teaching(client, seconds: float = 300) -> dict:
  deadline = time.time() + seconds
  while time.time() < deadline:
    state = client.get("/api/teach").json()
    if state["state"] in ("done", "failed"):
      return state
    time.sleep(0.5)
  raise AssertionError(f"teaching did not finish in {seconds} s: {state}")


def test_corrections_survive_a_restart_with_their_photos(model, tmp_path):
  settings = settings_for(tmp_path / "teach")
  data = photo(1, RED)
  with TestClient(app_lib.create_app(model, settings), base_url=LOCAL) as client:
    answer = correct(client, "bust.jpg", data, culture="roman", medium="sculpture")
    assert answer.status_code == 200, answer.text
    assert correct(client, "vase.jpg", photo(2, BLUE), culture="greek").json()["count"] == 2
    refused = correct(client, "bad.jpg", data, culture="chinese")
    assert refused.status_code == 422 and "culture must be one of" in refused.json()["error"]
    assert correct(client, "broken.jpg", b"not a photo", culture="roman").status_code == 422
  with TestClient(app_lib.create_app(model, settings), base_url=LOCAL) as client:  # the server restarted
    saved = client.get("/api/corrections").json()["corrections"]
    assert [item["image"] for item in saved] == ["bust.jpg", "vase.jpg"]
    assert saved[0]["labels"] == {"culture": "roman", "medium": "sculpture", "period": ""}
    assert all(item["pending"] for item in saved)
    assert client.get(f"/api/corrections/{saved[0]['id']}/photo").content == data
    # Set back to unknown everywhere: forgotten; and deleted by id.
    correct(client, "bust.jpg", data, culture="", medium="", period="")
    assert client.delete(f"/api/corrections/{saved[1]['id']}").status_code == 200
    assert client.get("/api/corrections").json()["corrections"] == []
    assert client.delete("/api/corrections/../../etc").status_code == 404
  kept = json.loads((tmp_path / "teach" / "corrections.json").read_text())
  assert all(not pathlib.PurePath(entry["photo"]).is_absolute() for entry in kept.values())


def test_teaching_makes_a_new_run_that_can_be_served_and_switched_back(model, served_workdir,
                                                                       tmp_path):
  settings = settings_for(tmp_path / "teach")
  with TestClient(app_lib.create_app(model, settings), base_url=LOCAL) as client:
    assert client.post("/api/teach").status_code == 200
    assert wait_for_teaching(client)["error"].startswith("no new correction")
    for seed in range(4):
      correct(client, f"red{seed}.jpg", photo(seed, RED), culture="roman")
    assert client.post("/api/teach").json()["state"] == "running"
    state = wait_for_teaching(client)
    assert state["state"] == "done", state
    taught = state["result"]["run"]
    assert state["result"]["base"] == served_workdir.name
    assert state["result"]["summary"]["rows_used"] == 4

    runs = client.get("/api/runs").json()["runs"]
    assert [(r["run"], r["serving"]) for r in runs] == [(served_workdir.name, True),
                                                        (taught, False)]
    assert runs[1]["lineage"][0]["base"] == served_workdir.name
    health = client.post("/api/runs/serve", json={"run": taught}).json()
    assert health["run"] == taught
    assert health["lineage"][0] == {**health["lineage"][0], "run": taught,
                                    "base": served_workdir.name, "rows": 4}
    assert client.get("/api/health").json()["run"] == taught
    assert not any(c["pending"] for c in client.get("/api/corrections").json()["corrections"])
    answer = client.post("/api/predict?neighbours=3",
                         files={"files": ("x.jpg", photo(0, RED), "image/jpeg")})
    nearest = answer.json()["results"][0]["neighbours"][0]  # the taught photo itself
    assert (nearest["image"], nearest["taught"], nearest["labels"]["culture"]) == (
        "red0.jpg", True, "roman")
    assert client.get(nearest["thumbnail"]).headers["content-type"] == "image/jpeg"

    assert client.post("/api/runs/serve", json={"run": "/etc"}).status_code == 404
    assert client.post("/api/runs/serve", json={"run": served_workdir.name}).json()["lineage"] == []
    assert all(c["pending"] for c in client.get("/api/corrections").json()["corrections"])
  # A restarted server lists the taught run again.
  with TestClient(app_lib.create_app(model, settings), base_url=LOCAL) as client:
    assert [r["run"] for r in client.get("/api/runs").json()["runs"]][1] == taught


def test_predict_answers_carry_nearest_training_photos_and_their_thumbnails(model, tmp_path):
  with TestClient(app_lib.create_app(model, settings_for(tmp_path)), base_url=LOCAL) as client:
    files = {"files": ("x.jpg", photo(3, BLUE), "image/jpeg")}
    result, = client.post("/api/predict?neighbours=2", files=files).json()["results"]
    assert len(result["neighbours"]) == 2
    first = result["neighbours"][0]
    assert set(first) >= {"row", "image", "object_id", "museum", "labels", "similarity",
                          "thumbnail"}
    assert not pathlib.PurePath(first["image"]).is_absolute()
    thumbnail = client.get(first["thumbnail"])
    assert thumbnail.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(thumbnail.content)).format == "JPEG"
    default, = client.post("/api/predict", files=files).json()["results"]
    assert len(default["neighbours"]) == serve_config.get_config().neighbours
    assert client.post("/api/predict?neighbours=999", files=files).status_code == 422
    assert client.get("/api/neighbours/100000").status_code == 404
    assert client.get("/api/neighbours/-1").status_code == 404


def test_teach_off_leaves_no_teach_routes(model, tmp_path):
  settings = settings_for(tmp_path / "teach")
  settings.teach = False
  with TestClient(app_lib.create_app(model, settings), base_url=LOCAL) as client:
    assert client.get("/api/health").json()["limits"]["teach"] is False
    assert client.get("/api/corrections").status_code == 404
    assert client.post("/api/teach").status_code in (404, 405)
  assert not (tmp_path / "teach").exists()
