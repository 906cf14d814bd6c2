"""A collection's own labels: a fourth task and a class the shared set lacks, end to end; a
class without training images refused before any compute; and a run saved before schemes
were configurable, which loads and predicts exactly as it did."""

import csv
import io
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import artclf
from artclf import scheme as scheme_lib
from artclf.data import dataset
from artclf.run import trained as trained_lib
from artclf.train import trainer
from configs import tiny
from tests.conftest import REPO_ROOT

FOUR_TASKS = "culture,medium,period,museum"
CULTURES = ["egyptian", "etruscan", "greek", "roman"]  # etruscan: not in the default scheme
MUSEUMS = ["aic", "cle", "met"]


def _photo(seed: int, size=(48, 40)) -> Image.Image:
  rng = np.random.default_rng(seed)
  y, x = np.mgrid[0:size[1], 0:size[0]]
  pixels = np.stack([x * 255 // size[0], y * 255 // size[1],
                     np.full_like(x, (61 * seed) % 256)], -1)
  return Image.fromarray(np.clip(pixels + rng.integers(0, 30, pixels.shape), 0, 255)
                         .astype(np.uint8))


def write_collection(folder, num_train=24, num_val=8, num_test=8) -> None:
  """A labels.csv folder whose culture column has an etruscan class and whose museum
  column can be a fourth task."""
  (folder / "photos").mkdir(parents=True)
  rows = [["image", "culture", "medium", "period", "museum", "split"]]
  total = num_train + num_val + num_test
  for i in range(total):
    name = f"photos/{i:03d}.jpg"
    _photo(i).save(folder / name, quality=90)
    split = "train" if i < num_train else "val" if i < num_train + num_val else "test"
    medium = ["painting", "sculpture", "architecture", ""][(i // 3) % 4]
    rows.append([name, CULTURES[i % 4], medium, ["early", "middle", "late"][(i // 2) % 3],
                 MUSEUMS[(i // 3) % 3], split])
  with open(folder / "labels.csv", "w", newline="") as f:
    csv.writer(f).writerows(rows)


@pytest.fixture(scope="module")
def four_task_run(tmp_path_factory):
  """A tiny run trained from the command line, as the README documents it."""
  root = tmp_path_factory.mktemp("four_tasks")
  write_collection(root / "collection")
  workdir = root / "run"
  _run_module("artclf.train", "--config=configs/tiny.py", f"--workdir={workdir}",
              f"--config.data.source_dir={root / 'collection'}",
              f"--config.data.data_dir={root / 'data'}", "--config.data.max_examples=0",
              f"--config.tasks={FOUR_TASKS}", "--config.classes.culture=",
              "--config.phase2.epochs=0")
  return workdir


def _run_module(module, *args) -> subprocess.CompletedProcess:
  result = subprocess.run([sys.executable, "-m", module, *args], cwd=REPO_ROOT,
                          env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)), capture_output=True,
                          text=True, timeout=900, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  return result


def test_the_scheme_is_resolved_from_config_and_data_and_saved(four_task_run):
  config = json.loads((four_task_run / "config.json").read_text())
  assert config["tasks"] == FOUR_TASKS
  assert config["classes"]["culture"] == ",".join(CULTURES)  # from the data, sorted
  assert config["classes"]["period"] == "early,middle,late"  # as the config gives it
  assert config["classes"]["museum"] == ",".join(MUSEUMS)
  trained = trained_lib.load(four_task_run)
  assert trained.scheme.tasks == tuple(FOUR_TASKS.split(","))
  assert {t: n for t, n in trained.scheme.heads} == {"culture": 4, "medium": 3, "period": 3,
                                                     "museum": 3}
  # The training log has a loss and an accuracy per task, whatever the tasks.
  records = [json.loads(line) for line in (four_task_run / "metrics.jsonl").read_text().splitlines()]
  assert any("train/museum_loss" in r or "museum_loss" in r for r in records)
  assert any(r.get("split") == "val" and "museum_accuracy" in r for r in records)
  # Calibration and familiarity were fitted for every head.
  calibration = json.loads((four_task_run / "calibration.json").read_text())
  assert set(calibration["temperatures"]) == set(FOUR_TASKS.split(","))
  assert trained.familiarity is not None


def test_evaluate_reports_every_task(four_task_run):
  _run_module("artclf.evaluate", f"--workdir={four_task_run}", "--split=test")
  report = json.loads((four_task_run / "eval_test" / "report.json").read_text())
  assert list(report["tasks"]) == FOUR_TASKS.split(",")
  assert list(report["tasks"]["culture"]["per_class"]) == CULTURES
  assert report["all_tasks"]["name"] == "all four"
  assert (four_task_run / "eval_test" / "confusion_museum.png").exists()
  summary = (four_task_run / "eval_test" / "results.md").read_text()
  assert "all four correct" in summary and "| museum balanced accuracy |" in summary


def test_predict_from_python_and_the_cli_has_every_task(four_task_run, tmp_path):
  photo = tmp_path / "photo.jpg"
  _photo(99).save(photo)
  result = artclf.predict(str(photo), workdir=four_task_run)
  assert set(result) >= {"culture", "medium", "period", "museum", "familiarity"}
  assert list(result["culture"]["distribution"]) == CULTURES
  _run_module("artclf.predict", f"--workdir={four_task_run}", f"--output={tmp_path / 'out.csv'}",
              str(photo))
  row = next(csv.DictReader(open(tmp_path / "out.csv")))
  assert row["museum"] == result["museum"]["label"]
  assert float(row["museum_probability"]) == pytest.approx(result["museum"]["probability"],
                                                           abs=1e-5)
  assert {f"museum_p_{m}" for m in MUSEUMS} <= set(row)
  assert {f"culture_p_{c}" for c in CULTURES} <= set(row)


def test_the_api_serves_and_exports_the_runs_scheme(four_task_run):
  pytest.importorskip("fastapi", reason="the app extra is not installed")
  pytest.importorskip("httpx2", reason="the test client needs httpx2")
  from fastapi.testclient import TestClient  # pylint: disable=import-outside-toplevel
  from artclf.serve import app as app_lib  # pylint: disable=import-outside-toplevel
  from configs import serve as serve_config  # pylint: disable=import-outside-toplevel
  client = TestClient(app_lib.create_app(trained_lib.load(four_task_run),
                                         serve_config.get_config()), base_url="http://localhost")
  health = client.get("/api/health").json()
  assert health["tasks"] == FOUR_TASKS.split(",")
  assert health["classes"]["culture"] == CULTURES and health["classes"]["museum"] == MUSEUMS
  buffer = io.BytesIO()
  _photo(5).save(buffer, "JPEG")
  predicted = client.post("/api/predict", files=[("files", ("a.jpg", buffer.getvalue(),
                                                            "image/jpeg"))]).json()["results"][0]
  assert predicted["museum"]["label"] in MUSEUMS
  labels = {"culture": "etruscan", "medium": "", "period": "late", "museum": "cle"}
  per_task = {task: predicted[task] for task in health["tasks"]}
  response = client.post("/api/export", json={"rows": [
      {"image": "a.jpg", "labels": labels, "predicted": per_task,
       "familiarity": predicted["familiarity"], "unfamiliar": predicted["unfamiliar"]}]})
  assert response.status_code == 200, response.text
  row = next(csv.DictReader(io.StringIO(response.text)))
  assert (row["culture"], row["museum"]) == ("etruscan", "cle")
  assert row["predicted_museum"] == predicted["museum"]["label"]
  bad = client.post("/api/export", json={"rows": [
      {"image": "a.jpg", "labels": {**labels, "museum": "louvre"}, "predicted": per_task}]})
  assert bad.status_code == 422 and "museum must be one of aic, cle, met" in bad.json()["error"]


def _config_for(folder, data_dir, **overrides):
  config = tiny.get_config()
  config.data.source_dir, config.data.data_dir = str(folder), str(data_dir)
  config.data.max_examples = 0
  for key, value in overrides.items():
    *parents, leaf = key.split(".")
    node = config
    for parent in parents:
      node = node[parent]
    node[leaf] = value
  return config


def test_a_label_outside_the_configured_classes_is_named_in_one_line(tmp_path):
  write_collection(tmp_path / "collection")
  config = _config_for(tmp_path / "collection", tmp_path / "data")  # culture: the default three
  with pytest.raises(ValueError) as raised:
    trainer.open_data(config, dataset.ensure_built(config.data))
  message = str(raised.value)
  where = f"{tmp_path / 'collection' / 'labels.csv'}, line "
  assert message.startswith(where)
  line = int(message[len(where):].split(":")[0])  # the named line holds that label
  assert (tmp_path / "collection" / "labels.csv").read_text().splitlines()[line - 1].split(
      ",")[1] == "etruscan"
  assert ": column culture: culture 'etruscan' is not one of the run's classes " \
         "(egyptian, greek, roman)" in message
  assert "config.classes.culture" in message and "\n" not in message


def test_a_class_or_task_without_training_labels_is_named_before_any_compute(tmp_path):
  write_collection(tmp_path / "collection")
  config = _config_for(tmp_path / "collection", tmp_path / "data",
                       **{"classes.culture": "egyptian,etruscan,greek,nubian,roman"})
  data_dir = dataset.ensure_built(config.data)
  with pytest.raises(ValueError, match=r"no image of the train split is labelled culture=nubian"):
    trainer.open_data(config, data_dir)
  no_labels = _config_for(tmp_path / "collection", tmp_path / "data",
                          **{"tasks": "culture,medium,period,material"})
  with pytest.raises(ValueError, match=r"has no column 'material'.*config.tasks"):
    trainer.open_data(no_labels, data_dir)


def test_an_unknown_task_weight_is_refused():
  scheme = scheme_lib.LabelScheme(("museum",), (("a", "b"),))
  loss = tiny.get_config().loss
  with pytest.raises(ValueError, match="task_weights names culture, medium, period"):
    trainer.task_weights_from(scheme, loss)
  loss.task_weights = {"museum": 2.0}
  assert trainer.task_weights_from(scheme, loss) == {"museum": 2.0}


def test_a_run_saved_before_schemes_loads_and_predicts_exactly_as_before(tmp_path):
  """tests/fixtures/run_before_schemes was trained and its predictions recorded with the
  code of commit 3bb575c (before this change), by its make.py."""
  workdir = tmp_path / "run"
  shutil.copytree(REPO_ROOT / "tests" / "fixtures" / "run_before_schemes", workdir)
  trained = trained_lib.load(workdir)
  assert trained.scheme == scheme_lib.DEFAULT
  rng = np.random.default_rng(7)  # the pictures make.py predicted
  pictures = [rng.integers(0, 256, (40 + 9 * i, 56, 3), dtype=np.uint8) for i in range(3)]
  expected = json.loads((workdir / "expected_predictions.json").read_text())
  results = artclf.predict(pictures, model=trained)
  for got, want in zip(results, expected):
    assert set(got) == set(want)
    for task in scheme_lib.DEFAULT.tasks:
      assert got[task]["label"] == want[task]["label"]
      for name, p in want[task]["distribution"].items():
        assert got[task]["distribution"][name] == pytest.approx(p, abs=1e-6)
    assert got["familiarity"] == pytest.approx(want["familiarity"], abs=1e-6)
    assert got["unfamiliar"] == want["unfamiliar"]
