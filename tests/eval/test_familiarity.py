"""The familiarity score: Mahalanobis distances, the validation reference, AUROC, saving."""

import itertools

import ml_collections
import numpy as np
import pytest

from artclf import scheme as scheme_lib
from artclf.eval import familiarity


def _settings(**changes):
  settings = dict(enabled=True, method="mahalanobis", shrinkage=0.1, min_class_count=3,
                  val_pass_rate=0.95)
  settings.update(changes)
  return ml_collections.ConfigDict(settings)


def _clusters(rng, rows_per_class=40, dims=16):
  """Two well separated (culture, medium, period) combinations in `dims` dimensions."""
  centres = np.zeros((2, dims))
  centres[1, 0] = 10.0
  which = np.repeat([0, 1], rows_per_class)
  pooled = centres[which] + rng.normal(size=(len(which), dims))
  label_ids = {"culture": which, "medium": np.ones_like(which), "period": np.zeros_like(which)}
  return pooled, label_ids


def test_distances_match_the_dense_inverse_of_the_shrunk_covariance():
  rng = np.random.default_rng(0)
  pooled, label_ids = _clusters(rng, rows_per_class=10, dims=30)  # fewer rows than dimensions
  gaussians = familiarity.fit_gaussians(pooled, label_ids, shrinkage=0.2, min_class_count=3)
  means = np.stack([pooled[label_ids["culture"] == k].mean(0) for k in (0, 1)])
  residuals = pooled - means[label_ids["culture"]]
  covariance = residuals.T @ residuals / len(pooled)
  shrunk = 0.8 * covariance + 0.2 * np.trace(covariance) / 30 * np.eye(30)
  precision = np.linalg.inv(shrunk)
  queries = rng.normal(size=(5, 30)) * 3
  expected = np.min([np.einsum("nd,de,ne->n", queries - m, precision, queries - m)
                     for m in means], axis=0) / 30
  np.testing.assert_allclose(gaussians.distances(queries), expected, rtol=1e-6)


def test_far_points_score_lower_and_validation_passes_at_the_set_rate():
  rng = np.random.default_rng(1)
  train_pooled, train_labels = _clusters(rng)
  val_pooled, val_labels = _clusters(rng, rows_per_class=100)
  logits = lambda n: {task: np.zeros((n, 3)) for task in scheme_lib.DEFAULT.tasks}
  fitted = familiarity.fit(_settings(),
                           {"pooled": train_pooled, "labels": train_labels, "logits": logits(80)},
                           {"pooled": val_pooled, "labels": val_labels, "logits": logits(200)})
  val_scores = fitted.familiarity(fitted.raw(logits(200), val_pooled))
  assert abs(fitted.unfamiliar(val_scores).mean() - 0.05) <= 0.01
  far = val_pooled[:20] + 8.0 * rng.normal(size=(20, 16))
  far_scores = fitted.familiarity(fitted.raw(logits(20), far))
  assert fitted.unfamiliar(far_scores).mean() >= 0.9
  assert np.all((far_scores >= 0) & (far_scores <= 1))


def test_joint_classes_drop_small_combinations_and_keep_unknown_labels_as_a_value():
  label_ids = {"culture": np.array([0, 0, 0, 1, 1, 2, 2]),
               "medium": np.array([2, 2, 2, 2, 2, -1, -1]),
               "period": np.array([1, 1, 1, 1, 1, 0, 0])}
  ids = familiarity.joint_class_ids(label_ids, min_count=2)
  assert ids.tolist() == [0, 0, 0, 1, 1, 2, 2]
  assert familiarity.joint_class_ids(label_ids, min_count=3).tolist() == [0, 0, 0, -1, -1, -1, -1]


def test_a_tiny_training_set_falls_back_to_one_gaussian():
  rng = np.random.default_rng(2)
  pooled = rng.normal(size=(6, 4))
  label_ids = {task: np.arange(6) % 3 for task in scheme_lib.DEFAULT.tasks}
  gaussians = familiarity.fit_gaussians(pooled, label_ids, shrinkage=0.5, min_class_count=5)
  np.testing.assert_allclose(gaussians.means, pooled.mean(0, keepdims=True))


@pytest.mark.parametrize("changes, message", [
    (dict(method="knn"), "unknown familiarity.method"),
    (dict(shrinkage=0.0), "shrinkage"),
    (dict(val_pass_rate=1.0), "val_pass_rate")])
def test_bad_settings_are_refused_by_name(changes, message):
  settings = _settings(**changes)
  with pytest.raises(ValueError, match=message):
    familiarity.check_settings(settings.method, settings.shrinkage, settings.val_pass_rate)


def test_energy_and_max_probability_rank_confident_logits_higher():
  confident = {task: np.array([[8.0, 0.0, 0.0]]) for task in scheme_lib.DEFAULT.tasks}
  unsure = {task: np.array([[0.1, 0.0, 0.0]]) for task in scheme_lib.DEFAULT.tasks}
  for method in ("energy", "max_probability"):
    assert (familiarity.raw_scores(method, confident, None)[0] >
            familiarity.raw_scores(method, unsure, None)[0])


def test_auroc_equals_the_pairwise_definition_with_ties():
  rng = np.random.default_rng(3)
  inside = rng.integers(0, 6, 25).astype(float)
  outside = rng.integers(0, 4, 17).astype(float)
  pairs = [1.0 if a > b else 0.5 if a == b else 0.0 for a, b in itertools.product(inside, outside)]
  assert familiarity.auroc(inside, outside) == pytest.approx(np.mean(pairs))
  assert familiarity.auroc(np.array([2.0, 3.0]), np.array([0.0, 1.0])) == 1.0


def test_saved_scorer_gives_the_same_scores(tmp_path):
  rng = np.random.default_rng(4)
  pooled, label_ids = _clusters(rng)
  logits = {task: rng.normal(size=(80, 3)) for task in scheme_lib.DEFAULT.tasks}
  split = {"pooled": pooled, "labels": label_ids, "logits": logits}
  fitted = familiarity.fit(_settings(), split, split)
  fitted.best_step, fitted.settings = 7, '{"method": "mahalanobis"}'
  fitted.save(tmp_path / familiarity.FAMILIARITY_FILE)
  loaded = familiarity.Familiarity.load(tmp_path / familiarity.FAMILIARITY_FILE)
  assert (loaded.best_step, loaded.settings, loaded.method) == (7, fitted.settings, "mahalanobis")
  np.testing.assert_allclose(loaded.raw(logits, pooled), fitted.raw(logits, pooled))
