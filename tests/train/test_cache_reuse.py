"""The main job's work done once: heads on cached pooled vectors, and the calibration and
familiarity fits reading the last phase's cache instead of running the trunk again."""

import json

import jax
import numpy as np
import optax
import pytest
from flax import nnx

from artclf import mesh as mesh_lib
from artclf import scheme as scheme_lib
from artclf.data import transforms
from artclf.models import classifier as model_lib
from artclf.train import phase_data, steps, trainer
from artclf.train import optimizer as optimizer_lib
from artclf.train import timings as timings_lib
from configs import tiny
from tests.data import fixtures as data_fixtures

TASKS = scheme_lib.DEFAULT.tasks


@pytest.fixture(scope="module")
def synthetic_data_dir(tmp_path_factory):
  return data_fixtures.build_synthetic(tmp_path_factory.mktemp("synthetic"), num_train=24,
                                       num_val=10)


def _heads_only_config(data_dir, cache_dir):
  config = tiny.get_config()
  config.data.data_dir = str(data_dir)
  config.data.max_examples = 0
  config.data.augment.update(random_crop=False, horizontal_flip=False, max_rotation_deg=0.0,
                             brightness=0.0, contrast=0.0)
  config.model.use_se = False
  config.model.dropout = 0.0
  config.feature_cache.update(enabled="always", dir=str(cache_dir))
  config.phase1.epochs = 3
  config.phase2.epochs = 0
  return config


def _one_step(model, start_stage, inputs):
  tx = optax.adam(1e-2)
  graphdef, state = steps.init_train_state(
      model, optimizer_lib.trainable_filter("heads", model.num_stages), tx, jax.random.PRNGKey(0))
  mesh = mesh_lib.make_mesh()
  step = steps.jit_train_step(mesh, graphdef=graphdef, tx=tx, schedule=lambda _: 1e-2,
                              task_weights={t: 1.0 for t in TASKS}, class_weights=None,
                              label_smoothing=0.0, start_stage=start_stage,
                              frozen_below=model.num_stages)
  state, metrics = step(mesh_lib.put_replicated(state, mesh), mesh_lib.to_global(inputs, mesh))
  return float(metrics["loss"]), jax.device_get(nnx.to_pure_dict(state.trainable))


def test_heads_train_the_same_on_pooled_vectors_as_on_feature_maps():
  spec = model_lib.ModelSpec(heads=scheme_lib.DEFAULT.heads, trunk="tiny", use_se=False)
  new_model = lambda: model_lib.ArtClassifier(spec, rngs=nnx.Rngs(0))
  model = new_model()
  assert model.pooled_stage == model.num_stages + 1
  assert model_lib.ArtClassifier(
      model_lib.ModelSpec(heads=spec.heads, trunk="tiny"), rngs=nnx.Rngs(0)).pooled_stage is None
  rng = np.random.default_rng(0)
  images = rng.normal(0, 50, (8, 32, 32, 3)).astype(np.float32)
  labels = {t: rng.integers(0, 3, 8).astype(np.int32) for t in TASKS}
  maps = np.asarray(model.features(images)["shared"])
  pooled = np.asarray(model.features(images, end_stage=model.pooled_stage)["shared"])
  assert pooled.shape == (8, maps.shape[-1])
  np.testing.assert_allclose(pooled, maps.mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)
  loss_maps, params_maps = _one_step(new_model(), model.num_stages,
                                     {"features": {"shared": maps}, **labels})
  loss_pooled, params_pooled = _one_step(new_model(), model.pooled_stage,
                                         {"features": {"shared": pooled}, **labels})
  assert loss_pooled == pytest.approx(loss_maps, rel=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
               params_maps, params_pooled)


def test_a_heads_only_phase_without_se_caches_pooled_vectors():
  config = tiny.get_config()
  config.feature_cache.enabled = "always"
  plans = phase_data.plan_phases(config, 5, "cpu", pooled_stage=6)
  assert [(p.first_trainable, p.start_stage) for p in plans] == [(5, 6), (0, 0)]  # all: images
  config.phase2.trainable = "last:1"
  plans = phase_data.plan_phases(config, 5, "cpu", pooled_stage=6)
  assert [p.start_stage for p in plans] == [6, 4]
  assert [p.start_stage for p in phase_data.plan_phases(config, 5, "cpu")] == [5, 4]


def test_final_fits_read_the_cache_and_equal_the_fits_on_images(synthetic_data_dir, tmp_path,
                                                                 monkeypatch):
  config = _heads_only_config(synthetic_data_dir, tmp_path / "cache")
  image_views = []
  real_loader = transforms.eval_view_loader
  monkeypatch.setattr(transforms, "eval_view_loader",
                      lambda *a, **k: image_views.append(1) or real_loader(*a, **k))
  summary = trainer.train_and_evaluate(config, tmp_path / "cached")
  assert not image_views  # neither the trunk nor the images were needed again
  monkeypatch.setattr(phase_data.CachedData, "eval_view_rows", lambda self, split: None)
  trainer.train_and_evaluate(config, tmp_path / "images")
  assert image_views  # the reference run did read them
  assert set(summary["seconds"]) == {"dataset", "weights", "caching", "heads",
                                     "calibration+familiarity", "total"}
  assert sum(v for k, v in summary["seconds"].items() if k != "total") <= (
      summary["seconds"]["total"] + 0.1)
  fits = [np.load(tmp_path / run / "familiarity.npz") for run in ("cached", "images")]
  assert sorted(fits[0].files) == sorted(fits[1].files)
  for name in fits[0].files:
    if fits[0][name].dtype.kind == "f":
      np.testing.assert_allclose(fits[0][name], fits[1][name], rtol=1e-4, atol=1e-5)
    else:
      np.testing.assert_array_equal(fits[0][name], fits[1][name])
  temperatures = [json.loads((tmp_path / run / "calibration.json").read_text())["temperatures"]
                  for run in ("cached", "images")]
  assert temperatures[0] == pytest.approx(temperatures[1], rel=1e-4)


def test_timings_count_a_nested_part_once():
  timings = timings_lib.Timings()
  with timings.part("outer"):
    with timings.part("inner"):
      sum(range(200000))
  figures = timings.summary()
  assert set(figures) == {"outer", "inner", "total"}
  assert figures["outer"] + figures["inner"] <= figures["total"] + 0.1
  assert "inner" in timings.line() and timings.line().startswith("total ")


def test_checkpoints_leave_the_frozen_trunk_out_and_a_run_resumes_and_finishes(
    synthetic_data_dir, tmp_path):
  config = _heads_only_config(synthetic_data_dir, tmp_path / "cache")
  config.phase1.epochs = 2
  workdir = tmp_path / "run"
  trainer.train_and_evaluate(config, workdir)
  step, meta = trainer.checkpoints.RunCheckpoints(workdir).latest_meta()
  assert len(meta["frozen_digest"]) == 64
  config.phase1.epochs = 3  # the same run, one epoch longer: resumes inside phase 1
  summary = trainer.train_and_evaluate(config, workdir)
  log = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert [r["epoch"] for r in log if r.get("split") == "val"] == [1, 2, 3]
  # Started again once finished, it trains nothing more.
  again = trainer.train_and_evaluate(config, workdir)
  log = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert [r["epoch"] for r in log if r.get("split") == "val"] == [1, 2, 3]
  assert again["best_step"] == summary["best_step"]
