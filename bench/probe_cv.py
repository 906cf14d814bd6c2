"""Cross-validated linear probes: screen design choices with less noise than the val split.

  PYTHONPATH=. python bench/probe_cv.py [--variants=gap4,gap3+gap4] [--image_size=224]
      [--C=3e-4,1e-3] [--folds=5] [--period_per_culture] [--shift_check]

The val split has 196 images, and a model's mean balanced accuracy on it moves by 3-5
points from one epoch to the next, so it cannot tell apart choices worth a point or two.
This bench fits one class-balanced logistic regression per task on frozen ImageNet
ResNet50 features (as `bench/linear_probe.py`, features standardised on the fitted rows)
and scores it by K-fold cross-validation over train+val (1190 images), printing the mean
over folds with its standard error. It never reads the test split.

Feature variants, joined with '+': gap4 (the trunk's 2048-d global average pool, what
artclf's heads see), gap3 (the 1024-d pool of conv4, mid-level texture). --image_size
sets the evaluation view (shorter side to image_size * 256 / 224, centre crop).

--period_per_culture also fits the period task per culture and mixes the three fits by
the predicted culture probabilities (period boundaries are defined per culture).

--shift_check asks how much the photographic gap between museums costs: it fits on
train, then scores val as is and val re-rendered with the test museum's photometry
(mean grey 108 -> 83, colour saturation x 10.6 / 16.9: the image statistics in
docs/results.md), each with the features standardised on the training rows or on the
scored set's own statistics (a simple test-time feature alignment).
"""

import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from absl import app, flags  # noqa: E402

from artclf import runtime  # noqa: E402
from bench import common  # noqa: E402
from artclf.eval.linear_probe import fit_logistic_regression  # noqa: E402

_DATA_DIR = flags.DEFINE_string("data_dir", "data", "Built dataset folder.")
_SOURCE_DIR = flags.DEFINE_string("source_dir", "../shared/data/ancient_art", "labels.csv folder.")
_CACHE_DIR = flags.DEFINE_string("cache_dir", "checkpoints/feature_cache", "Feature cache.")
_VARIANTS = flags.DEFINE_list("variants", ["gap4", "gap3+gap4"], "Feature variants to compare.")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 224, "Evaluation view size.")
_C = flags.DEFINE_list("C", ["3e-4", "1e-3"], "Inverse L2 strengths (on standardised features).")
_FOLDS = flags.DEFINE_integer("folds", 5, "Cross-validation folds over train+val.")
_PERIOD_PER_CULTURE = flags.DEFINE_bool("period_per_culture", False,
                                        "Also score a period fit per culture.")
_SHIFT_CHECK = flags.DEFINE_bool("shift_check", False,
                                 "Score val with the test museum's photometry instead of CV.")

# The test museum's photometry relative to the Met's (docs/results.md, image statistics).
GREY_SCALE = 83 / 108
SATURATION_SCALE = 10.6 / 16.9


def photometric_shift(view):
  """uint8 RGB view -> the same view darker and less saturated, like Cleveland's photographs."""
  import numpy as np

  x = view.astype(np.float32)
  grey = x.mean(-1, keepdims=True)
  x = (grey + (x - grey) * SATURATION_SCALE) * GREY_SCALE
  return np.clip(x, 0, 255).round().astype(np.uint8)


def pooled_features(data_dir, requests, image_size: int, cache_dir: str):
  """[({'gap3': [n, 1024], 'gap4': [n, 2048]} float32, {task: labels})], cached.

  One entry per (split, shifted) in `requests`; `shifted` applies `photometric_shift`.
  The trunk is loaded and compiled once for all of them.
  """
  import jax
  import numpy as np
  from flax import nnx

  from artclf.data import balance, feature_cache, tfds_builder, transforms
  from artclf.models import imagenet

  view_config = transforms.AugmentConfig(image_size=image_size,
                                      resize_size=round(image_size * 256 / 224))
  graphdef, state = nnx.split(imagenet.load_imagenet_classifier().trunk)
  frozen = [np.asarray(x) for x in jax.tree.leaves(nnx.to_pure_dict(state))]

  @jax.jit
  def pools(state, images):
    trunk = nnx.merge(graphdef, state)
    conv4 = trunk(images, end_stage=4)
    return {"gap3": conv4.mean((1, 2)), "gap4": trunk(conv4, start_stage=4).mean((1, 2))}

  def compute(source, shifted: bool, batch_size=32):
    parts = []
    for start in range(0, len(source), batch_size):
      count = min(batch_size, len(source) - start)
      batch = np.zeros((batch_size, image_size, image_size, 3), np.float32)
      for i in range(count):
        view = transforms.preprocess_example(source[start + i]["image"], train=False,
                                          config=view_config, normalize=False)
        batch[i] = transforms.caffe_normalize(photometric_shift(view) if shifted else view)
      parts.append({k: np.asarray(v)[:count] for k, v in pools(state, batch).items()})
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

  results = []
  for split, shifted in requests:
    source = tfds_builder.open_split(data_dir, split)
    key = feature_cache.cache_key({"probe": "gap3+gap4", "image_size": image_size, "shifted": shifted,
                              "data": feature_cache.source_digest(source)}, frozen)
    pooled = feature_cache.load_or_compute(cache_dir, key,
                                      lambda source=source, shifted=shifted: compute(source, shifted))
    results.append(({k: np.asarray(v, np.float32) for k, v in pooled.items()},
                    balance.read_split_labels(source)))
  return results


def variant(pooled: dict, name: str):
  import numpy as np
  return np.concatenate([pooled[part] for part in name.split("+")], axis=1)


def fit_and_predict(x, y: dict, fit_rows, x_eval, c: float, period_per_culture: bool,
                    eval_statistics: bool = False) -> dict:
  """{task: probabilities on x_eval} of per-task probes fitted on x[fit_rows]."""
  import jax
  import numpy as np

  from artclf import labels

  mean, std = x[fit_rows].mean(0), x[fit_rows].std(0) + 1e-6
  z = (x - mean) / std
  if eval_statistics:  # test-time alignment: the scored set's own mean and spread
    z_eval = (x_eval - x_eval.mean(0)) / (x_eval.std(0) + 1e-6)
  else:
    z_eval = (x_eval - mean) / std

  def fit(task, rows):
    params = fit_logistic_regression(z, y[task], labels.num_classes(task), c, iterations=300,
                                     rows=rows)
    return np.asarray(jax.nn.softmax(z_eval @ params["w"] + params["b"], axis=-1))

  probs = {task: fit(task, fit_rows) for task in labels.TASKS}
  if period_per_culture:
    mixed = 0.0
    for culture in range(labels.num_classes("culture")):
      mixed = mixed + probs["culture"][:, culture:culture + 1] * fit(
          "period", fit_rows & (y["culture"] == culture))
    probs["period_per_culture"] = mixed
  return probs


def scores(y: dict, probs: dict) -> dict:
  from artclf import labels
  from artclf.eval import metrics

  out = common.headline(metrics.evaluate_predictions({t: y[t] for t in labels.TASKS},
                                                     {t: probs[t] for t in labels.TASKS}))
  if "period_per_culture" in probs:
    swapped = dict(probs, period=probs["period_per_culture"])
    out["period_balanced_per_culture"] = scores(
        y, {t: swapped[t] for t in labels.TASKS})["period_balanced"]
  return out


def main(argv):
  del argv
  runtime.configure()
  import numpy as np

  data_dir = pathlib.Path(_DATA_DIR.value)
  common.built_dataset(data_dir, _SOURCE_DIR.value)
  start = time.time()
  requests = [("train", False), ("val", False)] + [("val", True)] * _SHIFT_CHECK.value
  (train, y_train), (val, y_val), *shifted_val = pooled_features(
      data_dir, requests, _IMAGE_SIZE.value, _CACHE_DIR.value)
  print(f"features: {time.time() - start:.0f} s")
  columns = common.HEADLINE
  if _PERIOD_PER_CULTURE.value:
    columns += ("period_balanced_per_culture",)

  if _SHIFT_CHECK.value:
    shifted = shifted_val[0][0]
    print(f"\nFitted on train, scored on val ({_IMAGE_SIZE.value} px):\n")
    print("| variant | C | val | standardised by | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 4) + "|")
    for name in _VARIANTS.value:
      x_train = variant(train, name)
      every_row = np.ones(len(x_train), bool)
      for c in map(float, _C.value):
        for scored, x_eval in (("as is", variant(val, name)), ("test photometry", variant(shifted, name))):
          for own in (False, True):
            probs = fit_and_predict(x_train, y_train, every_row, x_eval, c,
                                    _PERIOD_PER_CULTURE.value, eval_statistics=own)
            row = scores(y_val, probs)
            print(f"| {name} | {c:g} | {scored} | {'val itself' if own else 'train'} | " +
                  " | ".join(f"{row[k]:.1%}" for k in columns) + " |", flush=True)
    return

  x_all = {k: np.concatenate([train[k], val[k]]) for k in train}
  y_all = {t: np.concatenate([y_train[t], y_val[t]]) for t in y_train}
  fold_of = np.random.default_rng(0).permutation(len(x_all["gap4"])) % _FOLDS.value
  print(f"\n{_FOLDS.value}-fold cross-validation over train+val ({len(fold_of)} images, "
        f"{_IMAGE_SIZE.value} px); mean over folds, +- its standard error:\n")
  print("| variant | C | " + " | ".join(columns) + " |")
  print("|---" * (len(columns) + 2) + "|")
  for name in _VARIANTS.value:
    x = variant(x_all, name)
    for c in map(float, _C.value):
      per_fold = []
      for fold in range(_FOLDS.value):
        held_out = fold_of == fold
        probs = fit_and_predict(x, y_all, ~held_out, x[held_out], c, _PERIOD_PER_CULTURE.value)
        per_fold.append(scores({t: v[held_out] for t, v in y_all.items()}, probs))
      cells = []
      for k in columns:
        values = np.array([f[k] for f in per_fold])
        cells.append(f"{values.mean():.1%} +- {values.std(ddof=1) / np.sqrt(len(values)):.1%}")
      print(f"| {name} | {c:g} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
  app.run(main)
