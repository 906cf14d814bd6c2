"""Training: the loss, the step, sharding, resume after SIGKILL, divergence, the CPU main job."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest
from flax import nnx

from artclf import scheme as scheme_lib
from artclf import mesh as mesh_lib
from artclf.models import classifier as model_lib
from artclf.train import losses, steps, trainer
from artclf.train import optimizer as optimizer_lib
from configs import cpu_quick, tiny
from tests.data import fixtures as data_fixtures

from tests.conftest import REPO_ROOT
TASK_WEIGHTS = {task: 1.0 for task in scheme_lib.DEFAULT.tasks}


@pytest.fixture(scope="module")
def synthetic_data_dir(tmp_path_factory):
  return data_fixtures.build_synthetic(tmp_path_factory.mktemp("synthetic"), num_train=24,
                                       num_val=10)


def _tiny_config(data_dir, **overrides):
  config = tiny.get_config()
  config.data.data_dir = str(data_dir)
  config.data.max_examples = 0
  for key, value in overrides.items():
    target = config
    *parents, leaf = key.split(".")
    for parent in parents:
      target = target[parent]
    target[leaf] = value
  return config


def _fixed_batch(batch_size=8, image_size=32, seed=0):
  rng = np.random.default_rng(seed)
  batch = {"image": rng.normal(0, 50, (batch_size, image_size, image_size, 3)).astype(np.float32)}
  for task in scheme_lib.DEFAULT.tasks:
    batch[task] = rng.integers(0, 3, batch_size).astype(np.int32)
  return batch


def _step_fn(model, trainable, mesh, learning_rate=1e-2, start_stage=0, class_weights=None,
             ema_decay=0.0, frozen_below=0):
  schedule = optimizer_lib.learning_rate_schedule(learning_rate, 10, 0.9)
  tx = optax.adam(schedule)
  is_trainable = optimizer_lib.trainable_filter(trainable, model.num_stages)
  graphdef, state = steps.init_train_state(model, is_trainable, tx, jax.random.PRNGKey(0),
                                           ema_decay=ema_decay)
  step = steps.jit_train_step(mesh, graphdef=graphdef, tx=tx, schedule=schedule,
                              task_weights=TASK_WEIGHTS, class_weights=class_weights,
                              label_smoothing=0.0, start_stage=start_stage,
                              frozen_below=frozen_below, ema_decay=ema_decay)
  return step, mesh_lib.put_replicated(state, mesh)


def test_one_step_reduces_the_loss_on_a_fixed_batch():
  model = model_lib.ArtClassifier(model_lib.ModelSpec(heads=scheme_lib.DEFAULT.heads, trunk="tiny", dropout=0.0), rngs=nnx.Rngs(0))
  mesh = mesh_lib.make_mesh()
  step, state = _step_fn(model, "all", mesh, learning_rate=1e-3)
  batch = mesh_lib.to_global(_fixed_batch(), mesh)
  state, first = step(state, batch)
  state, second = step(state, batch)
  assert float(second["loss"]) < float(first["loss"])
  assert int(state.step) == 2


def test_frozen_parameters_do_not_change():
  model = model_lib.ArtClassifier(model_lib.ModelSpec(heads=scheme_lib.DEFAULT.heads, trunk="tiny"), rngs=nnx.Rngs(0))
  stem_before = np.array(model.nets["shared"].trunk.stem_conv.kernel.get_value())
  top_before = np.array(model.nets["shared"].trunk.stages[-1][0].conv_a.kernel.get_value())
  mesh = mesh_lib.make_mesh()
  step, state = _step_fn(model, "last:1", mesh)
  state, _ = step(state, mesh_lib.to_global(_fixed_batch(), mesh))
  nnx.update(model, state.trainable, state.frozen, state.batch_stats)
  np.testing.assert_array_equal(model.nets["shared"].trunk.stem_conv.kernel.get_value(), stem_before)
  assert not np.allclose(model.nets["shared"].trunk.stages[-1][0].conv_a.kernel.get_value(),
                         top_before)


def test_unknown_rows_leave_the_head_loss_unchanged():
  rng = np.random.default_rng(0)
  logits = jnp.asarray(rng.normal(size=(6, 3)), jnp.float32)
  targets = jnp.asarray([0, 2, 1, 1, 0, 2])
  weights = jnp.asarray([0.5, 1.0, 2.0])
  full = losses.masked_cross_entropy(logits[:4], targets[:4], weights, 0.1)
  # Rows 4 and 5 unknown: they must not count, whatever their logits.
  masked = losses.masked_cross_entropy(logits, targets.at[4:].set(scheme_lib.UNKNOWN), weights, 0.1)
  np.testing.assert_allclose(masked, full, rtol=1e-6)
  # ... while counting them does change the loss.
  assert not np.isclose(losses.masked_cross_entropy(logits, targets, weights, 0.1), full)
  # A batch without any known label gives zero loss, not NaN.
  assert float(losses.masked_cross_entropy(logits, jnp.full((6,), scheme_lib.UNKNOWN))) == 0.0


def test_class_weights_weight_rows_by_their_class():
  logits = jnp.zeros((2, 3)).at[0, 0].set(2.0)
  targets = jnp.asarray([0, 1])
  per_row = optax.softmax_cross_entropy(logits, jax.nn.one_hot(targets, 3))
  weighted = losses.masked_cross_entropy(logits, targets, jnp.asarray([1.0, 3.0, 1.0]))
  np.testing.assert_allclose(weighted, (per_row[0] + 3 * per_row[1]) / 4, rtol=1e-6)


def test_the_ordinal_loss_costs_more_the_further_the_wrong_class():
  confident = lambda c: jnp.full((1, 3), -20.0).at[0, c].set(20.0)
  late = jnp.asarray([2])
  costs = [float(losses.masked_ordinal_loss(confident(c), late)) for c in range(3)]
  assert costs[2] == pytest.approx(0.0, abs=1e-6)
  assert costs[1] == pytest.approx(1.0, abs=1e-4) and costs[0] == pytest.approx(2.0, abs=1e-4)
  # Unknown rows do not count; the task's weight in ordinal_weights adds it to its loss.
  logits = jnp.concatenate([confident(0), confident(1)])
  targets = jnp.asarray([2, scheme_lib.UNKNOWN])
  assert float(losses.masked_ordinal_loss(logits, targets)) == pytest.approx(2.0, abs=1e-4)
  batch = {"period": targets}
  plain, _ = losses.total_loss({"period": logits}, batch, {"period": 1.0})
  ordinal, _ = losses.total_loss({"period": logits}, batch, {"period": 1.0},
                                 ordinal_weights={"period": 0.5})
  assert float(ordinal - plain) == pytest.approx(1.0, abs=1e-4)


def test_ordinal_weights_for_a_task_the_run_lacks_are_refused():
  config = tiny.get_config()
  config.loss.ordinal_weights = {"dynasty": 1.0}
  with pytest.raises(ValueError, match="ordinal_weights names dynasty"):
    trainer.ordinal_weights_from(scheme_lib.DEFAULT, config.loss)
  config.loss.ordinal_weights = {"period": 2}
  assert trainer.ordinal_weights_from(scheme_lib.DEFAULT, config.loss) == {"period": 2.0}


def test_trainable_filters_pick_stages():
  assert optimizer_lib.first_trainable_stage("heads", 5) == 5
  assert optimizer_lib.first_trainable_stage("last:2", 5) == 3
  assert optimizer_lib.first_trainable_stage("all", 5) == 0
  with pytest.raises(ValueError, match="trainable"):
    optimizer_lib.first_trainable_stage("some", 5)
  with pytest.raises(ValueError, match="5 stages"):
    optimizer_lib.first_trainable_stage("last:9", 5)


def test_sharded_step_over_8_devices_equals_1_device():
  """Runs in a fresh interpreter: the device count is fixed when JAX starts."""
  script = textwrap.dedent("""
      import jax, numpy as np, optax
      from flax import nnx
      from artclf.models import classifier as model_lib
      from artclf import mesh as mesh_lib
      from artclf import scheme as scheme_lib
      from artclf.train import steps, optimizer as optimizer_lib
      from tests.train.test_trainer import _fixed_batch, _step_fn
      assert len(jax.devices()) == 8, jax.devices()
      results = []
      for devices in (jax.devices()[:1], jax.devices()):
        mesh = mesh_lib.make_mesh(devices)
        model = model_lib.ArtClassifier(model_lib.ModelSpec(heads=scheme_lib.DEFAULT.heads, trunk="tiny", dropout=0.0),
                                        rngs=nnx.Rngs(0))
        step, state = _step_fn(model, "all", mesh)
        for i in range(3):
          state, metrics = step(state, mesh_lib.to_global(_fixed_batch(16, seed=i), mesh))
        assert len(state.trainable["nets"]["shared"]["head"]["heads"]["culture"]["kernel"].get_value().sharding.device_set) == len(devices)
        results.append((float(metrics["loss"]), jax.tree.map(np.asarray, nnx.to_pure_dict(state.trainable))))
      (loss1, params1), (loss8, params8) = results
      np.testing.assert_allclose(loss8, loss1, rtol=1e-5)
      jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), params8, params1)
      print("SHARDED_OK", loss1, loss8)
      """)
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
             PYTHONPATH=str(REPO_ROOT))
  result = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "SHARDED_OK" in result.stdout


def _latest_params(workdir) -> dict:
  manager = ocp.CheckpointManager(pathlib.Path(workdir) / "checkpoints",
                                  item_names=("state", "data", "meta"))
  step = manager.latest_step()
  state = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
  manager.close()
  return step, state.state


def _complete_checkpoints(checkpoint_dir: pathlib.Path) -> list[int]:
  """Steps of the finished checkpoints (orbax renames a '<step>.orbax-checkpoint-tmp' folder)."""
  if not checkpoint_dir.exists():
    return []
  return [int(p.name) for p in checkpoint_dir.iterdir() if p.name.isdigit()]


def _train_command(config_overrides, workdir):
  return [sys.executable, "-m", "artclf.train", "--config=configs/tiny.py",
          f"--workdir={workdir}"] + [f"--config.{k}={v}" for k, v in config_overrides.items()]


def test_resume_after_sigkill_matches_an_uninterrupted_run(synthetic_data_dir, tmp_path):
  overrides = {"data.data_dir": synthetic_data_dir, "data.max_examples": 0,
               "phase1.epochs": 4, "phase2.epochs": 2, "checkpoint_every_steps": 2,
               "model.dropout": 0.3}
  env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
  straight = tmp_path / "straight"
  subprocess.run(_train_command(overrides, straight), cwd=REPO_ROOT, env=env, check=True,
                 capture_output=True, timeout=600)

  interrupted = tmp_path / "interrupted"
  process = subprocess.Popen(_train_command(overrides, interrupted), cwd=REPO_ROOT, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  # Kill it mid-run: once phase 2 has a checkpoint (3 steps per epoch, 12 in phase 1).
  deadline = time.time() + 300
  checkpoint_dir = interrupted / "checkpoints"
  while time.time() < deadline and process.poll() is None:
    done = _complete_checkpoints(checkpoint_dir)
    if any(step > 12 for step in done):
      break
    time.sleep(0.05)
  assert process.poll() is None, "the run finished before it could be interrupted"
  process.send_signal(signal.SIGKILL)
  process.wait()
  killed_at = max(_complete_checkpoints(checkpoint_dir))
  assert killed_at < 18

  subprocess.run(_train_command(overrides, interrupted), cwd=REPO_ROOT, env=env, check=True,
                 capture_output=True, timeout=600)
  step_a, params_a = _latest_params(straight)
  step_b, params_b = _latest_params(interrupted)
  assert step_a == step_b == 18
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
               params_a, params_b)
  # The resumed run's log reads like the uninterrupted one's: each epoch once, the killed
  # epoch's training loss averaged over all of its steps, the same steps logged.
  def log_of(workdir):
    return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  straight_log, resumed_log = log_of(straight), log_of(interrupted)
  epochs = lambda log, split: [r for r in log if r.get("split") == split]
  for split in ("train", "val"):
    a, b = epochs(straight_log, split), epochs(resumed_log, split)
    assert [r["epoch"] for r in b] == [r["epoch"] for r in a] == [1, 2, 3, 4, 5, 6]
    for x, y in zip(a, b):
      for key in ("loss", "mean_balanced_accuracy", "culture_accuracy"):
        if key in x:
          assert y[key] == pytest.approx(x[key], rel=1e-5), (split, x["epoch"], key)
  steps_logged = lambda log: [r["step"] for r in log if "steps_per_sec" in r]
  assert steps_logged(resumed_log) == steps_logged(straight_log)


def test_divergence_stops_with_a_message_and_keeps_the_last_good_checkpoint(synthetic_data_dir,
                                                                            tmp_path):
  # A healthy first phase, so there is a good checkpoint; then an absurd learning rate.
  healthy = _tiny_config(synthetic_data_dir, **{"phase1.epochs": 1, "phase2.epochs": 0})
  healthy.checkpoint_every_steps = 1000
  trainer.train_and_evaluate(healthy, tmp_path / "healthy")
  good_step, good_params = _latest_params(tmp_path / "healthy")
  config = _tiny_config(synthetic_data_dir, **{"phase1.epochs": 1, "phase2.epochs": 2,
                                               "phase2.trainable": "heads"})
  config.checkpoint_every_steps = 1000
  config.phase2.learning_rate = float("inf")
  with pytest.raises(trainer.TrainingDiverged, match="NaN or infinite.*last good checkpoint"):
    trainer.train_and_evaluate(config, tmp_path / "run")
  step, params = _latest_params(tmp_path / "run")
  assert step == good_step
  assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(params))
  jax.tree.map(np.testing.assert_array_equal, params, good_params)


def test_nonfinite_step_leaves_the_state_unchanged():
  model = model_lib.ArtClassifier(model_lib.ModelSpec(heads=scheme_lib.DEFAULT.heads, trunk="tiny", dropout=0.0), rngs=nnx.Rngs(0))
  mesh = mesh_lib.make_mesh()
  step, state = _step_fn(model, "all", mesh)
  before = jax.tree.map(np.array, nnx.to_pure_dict(state.trainable))
  batch = _fixed_batch()
  batch["image"][0, 0, 0, 0] = np.nan
  state, metrics = step(state, mesh_lib.to_global(batch, mesh))
  assert int(metrics["nonfinite"]) == 1
  jax.tree.map(np.testing.assert_array_equal, before, nnx.to_pure_dict(state.trainable))


@pytest.mark.slow
def test_cpu_quick_runs_end_to_end_on_a_subset_of_the_shared_set(shared_data_dir, tmp_path):
  """The README's main job, shrunk: real ImageNet weights, real images, cached features."""
  config = cpu_quick.get_config()
  config.data.source_dir = str(shared_data_dir)
  config.data.data_dir = str(tmp_path / "data")
  config.data.max_examples = 64
  config.feature_cache.num_views = 1
  config.phase1.epochs = 3
  summary = trainer.train_and_evaluate(config, tmp_path / "run")
  assert summary["best_step"] is not None
  assert 0.0 <= summary[config.selection_metric] <= 1.0
  log = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
  val = [r for r in log if r.get("split") == "val"]
  assert [r["epoch"] for r in val] == [1, 2, 3]
  assert (tmp_path / "run" / "config.json").exists()
  assert any((tmp_path / "run" / "tensorboard").iterdir())


def test_cached_phases_train_the_heads_then_the_last_stage(synthetic_data_dir, tmp_path):
  """Both phases on cached features: the trunk output, then the input of the last stage."""
  config = _tiny_config(synthetic_data_dir, **{
      "feature_cache.enabled": "always", "feature_cache.num_views": 2,
      "feature_cache.dir": str(tmp_path / "cache"), "phase1.epochs": 2, "phase2.epochs": 1,
      "phase2.trainable": "last:1"})
  summary = trainer.train_and_evaluate(config, tmp_path / "run")
  assert summary["best_step"] is not None
  # One cache entry per (split, cut point): train and val for each phase; the evaluation
  # views (val) kept per photograph, one context per cut point.
  def entries():
    return len(list((tmp_path / "cache").iterdir())) - 1 + len(list((tmp_path / "cache" / "photos").iterdir()))
  assert entries() == 4
  log = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
  assert [r["phase"] for r in log if r.get("split") == "val"] == [1, 1, 2]
  # A second run over the same data reuses every cached entry.
  trainer.train_and_evaluate(config, tmp_path / "run2")
  assert entries() == 4


def test_final_fit_on_train_plus_val_keeps_the_last_epoch(synthetic_data_dir, tmp_path):
  config = _tiny_config(synthetic_data_dir, **{
      "data.train_split": "train+val", "selection_metric": "last", "phase1.epochs": 3,
      "phase2.epochs": 0, "phase1.early_stopping_patience": 0})
  summary = trainer.train_and_evaluate(config, tmp_path / "run")
  last_step, _ = _latest_params(tmp_path / "run")
  assert summary["best_step"] == last_step > 0
  log = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
  assert len([r for r in log if r.get("split") == "val"]) == 3


def test_head_l2_penalises_the_se_and_head_kernels_only():
  model = model_lib.ArtClassifier(model_lib.ModelSpec(heads=scheme_lib.DEFAULT.heads, trunk="tiny"), rngs=nnx.Rngs(0))
  params = nnx.state(model, nnx.Param)
  net = model.nets["shared"]
  expected = sum(float(jnp.sum(layer.kernel.value ** 2)) for layer in
                 [net.head.se.reduce, net.head.se.expand, *net.head.heads.values()])
  assert float(losses.head_kernel_norm(params)) == pytest.approx(expected, rel=1e-5)
  # The gradient of the penalty reaches no trunk parameter and no bias.
  grads = jax.grad(losses.head_kernel_norm)(params)
  for path, grad in jax.tree_util.tree_leaves_with_path(grads):
    name = jax.tree_util.keystr(path)
    touched = bool(jnp.any(grad != 0))
    assert touched == ("head" in name and "kernel" in name), name


def test_selection_window_picks_the_best_mean_of_the_last_epochs(synthetic_data_dir, tmp_path):
  config = _tiny_config(synthetic_data_dir, **{
      "selection_window": 3, "phase1.epochs": 6, "phase2.epochs": 0,
      "phase1.learning_rate": 3e-2, "familiarity.enabled": False})
  summary = trainer.train_and_evaluate(config, tmp_path / "run")
  log = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
  val = [r for r in log if r.get("split") == "val"]
  values = [r["mean_balanced_accuracy"] for r in val]
  windowed = [np.mean(values[max(0, i - 2):i + 1]) for i in range(len(values))]
  best = int(np.argmax(windowed))  # the first epoch with the best windowed mean
  assert summary["mean_balanced_accuracy"] == pytest.approx(windowed[best])
  assert summary["best_step"] == val[best]["step"]


def test_ema_is_the_warmed_up_average_and_what_evaluation_sees():
  model = model_lib.ArtClassifier(model_lib.ModelSpec(heads=scheme_lib.DEFAULT.heads, trunk="tiny", dropout=0.0), rngs=nnx.Rngs(0))
  mesh = mesh_lib.make_mesh()
  decay = 0.5
  is_trainable = optimizer_lib.trainable_filter("heads", model.num_stages)
  graphdef = steps.split_model(model, is_trainable)[0]
  step, state = _step_fn(model, "heads", mesh, ema_decay=decay)
  expected = jax.device_get(state.trainable)
  batch = mesh_lib.to_global(_fixed_batch(), mesh)
  for s in range(3):
    state, _ = step(state, batch)
    d = min(decay, (1 + s) / (10 + s))  # 0.1, 0.18, 0.25: the warm-up, then the decay
    expected = jax.tree.map(lambda e, p: d * e + (1 - d) * p, expected,
                            jax.device_get(state.trainable))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7),
               jax.device_get(state.ema), expected)
  # The average is not the last weights, and it is what the evaluated model holds.
  assert not np.allclose(jax.tree.leaves(state.ema)[0], jax.tree.leaves(state.trainable)[0])
  evaluated = nnx.state(steps.merge_model(graphdef, state), nnx.All(nnx.Param, is_trainable))
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(evaluated), jax.device_get(state.ema))


def test_a_run_with_ema_saves_the_average_as_its_model(synthetic_data_dir, tmp_path):
  config = _tiny_config(synthetic_data_dir, **{
      "selection_metric": "last", "phase1.epochs": 2, "phase2.epochs": 0,
      "phase1.ema_decay": 0.9})
  summary = trainer.train_and_evaluate(config, tmp_path / "run")
  last_step, latest = _latest_params(tmp_path / "run")
  assert summary["best_step"] == last_step
  best = ocp.CheckpointManager(tmp_path / "run" / "best", item_names=("state", "meta"))
  saved = best.restore(last_step, args=ocp.args.Composite(state=ocp.args.StandardRestore())).state
  best.close()
  def head(tree):  # the period head's kernel; TrainState leaves restore as {'value': array}
    kernel = tree["nets"]["shared"]["head"]["heads"]["period"]["kernel"]
    return np.asarray(kernel["value"] if isinstance(kernel, dict) else kernel)
  np.testing.assert_array_equal(head(saved), head(latest["ema"]))
  assert not np.allclose(head(saved), head(latest["trainable"]))


def test_frozen_stages_compute_the_same_function_cached_or_not():
  """freeze_bn_stats=False: the cached path and the whole-network path train one model."""
  spec = model_lib.ModelSpec(heads=scheme_lib.DEFAULT.heads, trunk="tiny", dropout=0.0, freeze_bn_stats=False)
  new_model = lambda: model_lib.ArtClassifier(spec, rngs=nnx.Rngs(0))  # the step donates it
  mesh = mesh_lib.make_mesh()
  first = optimizer_lib.first_trainable_stage("last:1", new_model().num_stages)
  batch = _fixed_batch(seed=3)
  frozen_output = new_model().features(batch["image"], end_stage=first)["shared"]
  cached = {"features": {"shared": np.asarray(frozen_output)},
            **{task: batch[task] for task in scheme_lib.DEFAULT.tasks}}

  def one_step(start_stage, frozen_below, inputs):
    step, state = _step_fn(new_model(), "last:1", mesh, start_stage=start_stage,
                           frozen_below=frozen_below)
    state, metrics = step(state, mesh_lib.to_global(inputs, mesh))
    return float(metrics["loss"]), jax.device_get(nnx.to_pure_dict(state.trainable))

  loss_cached, params_cached = one_step(first, first, cached)
  loss_whole, params_whole = one_step(0, first, batch)
  assert loss_whole == pytest.approx(loss_cached, rel=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
               params_whole, params_cached)
  # Without frozen_below the frozen stages would normalise with batch statistics.
  loss_batch_stats, _ = one_step(0, 0, batch)
  assert abs(loss_batch_stats - loss_cached) > 1e-4


def test_ema_averages_the_batchnorm_statistics_it_is_evaluated_with():
  spec = model_lib.ModelSpec(heads=scheme_lib.DEFAULT.heads, trunk="tiny", dropout=0.0, freeze_bn_stats=False)
  model = model_lib.ArtClassifier(spec, rngs=nnx.Rngs(0))
  mesh = mesh_lib.make_mesh()
  decay = 0.5
  step, state = _step_fn(model, "all", mesh, ema_decay=decay)
  expected = jax.device_get(state.batch_stats)
  batch = mesh_lib.to_global(_fixed_batch(), mesh)
  for s in range(3):
    state, _ = step(state, batch)
    d = min(decay, (1 + s) / (10 + s))
    expected = jax.tree.map(lambda e, p: d * e + (1 - d) * p, expected,
                            jax.device_get(state.batch_stats))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
               jax.device_get(state.ema_batch_stats), expected)
  # The live statistics moved away from the average, and evaluation uses the average.
  live, averaged = jax.tree.leaves(state.batch_stats)[0], jax.tree.leaves(state.ema_batch_stats)[0]
  assert not np.allclose(live, averaged)
  graphdef = steps.split_model(model, optimizer_lib.trainable_filter("all", model.num_stages))[0]
  evaluated = nnx.state(steps.merge_model(graphdef, state), nnx.BatchStat)
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(evaluated),
               jax.device_get(state.ema_batch_stats))
