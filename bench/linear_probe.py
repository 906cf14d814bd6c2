"""The frozen-feature baseline: ImageNet features + one class-balanced logistic regression per task.

  PYTHONPATH=. python bench/linear_probe.py [--trunks=resnet50,efficientnet_lite0] \
      [--C=1e-4,3e-4,1e-3] [--fit=train] [--standardize]

The features are the trunks' global-average-pooled outputs of each image's evaluation view
(`artclf.data.transforms.eval_view`, through `bench/feature_bank.py`: cached, computed by
the one inference loop); several trunks are concatenated. One multinomial logistic
regression per task (`artclf.eval.linear_probe`: scikit-learn's objective with
class_weight='balanced') is fitted on --fit and scored on val and test with
`artclf.eval.metrics`. Choose C on the val rows (with --fit=train), never on test.
Issue 14's reference: resnet50, C=1e-4, --fit=train+val, --standardize.
"""

from __future__ import annotations

import time

from absl import app, flags

from artclf import runtime
from artclf import scheme as scheme_lib
from bench import common

_TRUNKS = flags.DEFINE_list("trunks", ["resnet50"], "Trunks whose features are concatenated.")
_C = flags.DEFINE_list("C", ["1e-4", "3e-4", "1e-3"], "Inverse L2 strengths.")
_FIT = flags.DEFINE_string("fit", "train", "The split (or expression, train+val) to fit on.")
_STANDARDIZE = flags.DEFINE_bool("standardize", True, "Standardise features on the fitted rows.")
_DATA_DIR = flags.DEFINE_string("data_dir", "data", "Built dataset folder.")
_SOURCE_DIR = flags.DEFINE_string("source_dir", "../shared/data/ancient_art", "labels.csv folder.")
_CACHE_DIR = flags.DEFINE_string("cache_dir", "checkpoints/feature_cache", "Feature cache.")


def features(data_dir, split: str):
  import numpy as np  # pylint: disable=import-outside-toplevel
  from bench import feature_bank  # pylint: disable=import-outside-toplevel
  banks = [feature_bank.pooled(data_dir, split, trunk, cache_dir=_CACHE_DIR.value)
           for trunk in _TRUNKS.value]
  return np.concatenate([b["features"][0] for b in banks], 1), banks[0]["labels"]


def main(argv):
  del argv
  runtime.configure()
  import jax  # pylint: disable=import-outside-toplevel
  import ml_collections  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  from artclf import scheme as scheme_lib  # pylint: disable=import-outside-toplevel
  from artclf.data import dataset  # pylint: disable=import-outside-toplevel
  from artclf.eval import metrics  # pylint: disable=import-outside-toplevel
  from artclf.eval.linear_probe import fit_logistic_regression  # pylint: disable=import-outside-toplevel

  data_dir = dataset.ensure_built(ml_collections.ConfigDict(
      dict(source_dir=_SOURCE_DIR.value, data_dir=_DATA_DIR.value)))
  start = time.time()
  fit_x, fit_y = features(data_dir, _FIT.value)
  scored = {split: features(data_dir, split) for split in ("val", "test")}
  print(f"features ({'+'.join(_TRUNKS.value)}): {time.time() - start:.0f} s")
  mean, std = (fit_x.mean(0), fit_x.std(0) + 1e-6) if _STANDARDIZE.value else (0.0, 1.0)
  print(f"| trunks | C | fit | split | " + " | ".join(common.HEADLINE) + " |")
  print("|---" * (4 + len(common.HEADLINE)) + "|")
  for c in (float(value) for value in _C.value):
    start = time.time()
    heads = {task: fit_logistic_regression((fit_x - mean) / std, fit_y[task],
                                           scheme_lib.DEFAULT.num_classes(task), c, iterations=300)
             for task in scheme_lib.DEFAULT.tasks}
    for split, (x, y) in scored.items():
      probs = {task: np.asarray(jax.nn.softmax(((x - mean) / std) @ heads[task]["w"] +
                                               heads[task]["b"], -1)) for task in scheme_lib.DEFAULT.tasks}
      figures = common.headline(metrics.evaluate_predictions(y, probs, scheme_lib.DEFAULT))
      print(f"| {'+'.join(_TRUNKS.value)} | {c:g} | {_FIT.value} | {split} | " +
            " | ".join(f"{100 * figures[k]:.1f}" for k in common.HEADLINE) + " |", flush=True)
    print(f"(fitted in {time.time() - start:.1f} s)")


if __name__ == "__main__":
  app.run(main)
