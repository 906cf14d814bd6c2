"""The frozen-feature baseline: ImageNet ResNet50 features + one logistic regression per task.

  python bench/linear_probe.py [--preprocessing=crop256] [--C=1] [--data_dir=data]

Reproduces, with artclf's own trunk, the baseline that issue 6 asks artclf to beat: the
2048-d global-average-pooled features of the Keras ImageNet ResNet50 at 224 px, then one
class-balanced multinomial logistic regression per task (L2, C=1, as scikit-learn's
defaults with class_weight='balanced'), fitted on train+val, scored on test with
`artclf.eval.metrics`. Also prints the always-majority answer.

--preprocessing chooses how an image becomes the 224 x 224 input (see PREPROCESSING);
the features of each choice are cached under their own key. The reference's figures
are reproduced by the default crop256 view with --C=1e-4 (docs/results.md).
"""

import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from absl import app, flags  # noqa: E402

from artclf import runtime  # noqa: E402
from bench import common  # noqa: E402
from artclf.eval.linear_probe import fit_logistic_regression  # noqa: E402

_SOURCE_DIR = flags.DEFINE_string("source_dir", "../shared/data/ancient_art", "labels.csv folder.")
_DATA_DIR = flags.DEFINE_string("data_dir", "data", "Built dataset folder.")
_CACHE_DIR = flags.DEFINE_string("cache_dir", "checkpoints/feature_cache", "Feature cache.")
# Issue 6 states C=1, but its figures come out (within one test image) only with C=1e-4
# on the crop256 features: see docs/results.md.
_C = flags.DEFINE_float("C", 1.0, "Inverse L2 strength, as scikit-learn's C; 1e-4 "
                        "reproduces issue 6's reference figures.")
_STANDARDIZE = flags.DEFINE_bool("standardize", False, "Standardise features first.")

# How an image becomes the trunk's 224 x 224 input (then caffe normalisation). Most of
# the shared set's images are already 224 x 224 letterboxed JPEGs (Getty's are up to 512
# px), which both resize224 variants pass through unchanged.
PREPROCESSING = {
    "crop256": "shorter side to 256 (bilinear), centre crop 224: artclf's evaluation view",
    "resize224": "the whole image resized to 224 x 224 (bilinear)",
    "resize224_nearest": "the whole image resized to 224 x 224 (nearest), as "
                         "keras.utils.load_img(path, target_size=(224, 224))",
}
_PREPROCESSING = flags.DEFINE_enum("preprocessing", "crop256", list(PREPROCESSING),
                                   "Image to input: " + "; ".join(
                                       f"{k}: {v}" for k, v in PREPROCESSING.items()) + ".")

# Issue 6's table, measured independently of artclf.
REFERENCE = {"accuracy": {"culture": 0.805, "medium": 0.807, "period": 0.380, "mean": 0.664,
                          "all_three": 0.354},
             "balanced": {"culture": 0.766, "medium": 0.779, "period": 0.504, "mean": 0.683}}


def probe_view(image_bytes: bytes, preprocessing: str):
  """Encoded image -> float32 caffe-normalised [224, 224, 3] input, by `preprocessing`."""
  import numpy as np
  from PIL import Image

  from artclf.data import images, transforms

  if preprocessing == "crop256":
    return transforms.preprocess_example(image_bytes, train=False)
  resample = {"resize224": Image.Resampling.BILINEAR,
              "resize224_nearest": Image.Resampling.NEAREST}[preprocessing]
  image = images.decode_image(image_bytes)
  if image.size != (224, 224):
    image = image.resize((224, 224), resample)
  return transforms.caffe_normalize(np.asarray(image, np.uint8))


def probe_features(data_dir, splits, preprocessing: str, cache_dir: str | None,
                   batch_size: int = 32):
  """[(float32 [n, 2048] pooled ImageNet features, {task: labels})] of each split, cached."""
  import jax
  import numpy as np
  from flax import nnx

  from artclf.data import balance, feature_cache, tfds_builder
  from artclf.models import imagenet

  graphdef, state = nnx.split(imagenet.load_imagenet_classifier().trunk)
  pooled = jax.jit(lambda s, x: nnx.merge(graphdef, s)(x).mean(axis=(1, 2)))
  frozen = [np.asarray(x) for x in jax.tree.leaves(nnx.to_pure_dict(state))]
  results = []
  for split in splits:
    source = tfds_builder.open_split(data_dir, split)

    def compute(source=source):
      parts = []
      for start in range(0, len(source), batch_size):
        count = min(batch_size, len(source) - start)
        batch = np.zeros((batch_size, 224, 224, 3), np.float32)
        for i in range(count):
          batch[i] = probe_view(source[start + i]["image"], preprocessing)
        parts.append(np.asarray(pooled(state, batch))[:count])
      return {"gap": np.concatenate(parts).astype(np.float32)}

    key = feature_cache.cache_key({"probe": "gap2048", "preprocessing": preprocessing,
                              "data": feature_cache.source_digest(source)}, frozen)
    computed = feature_cache.load_or_compute(cache_dir, key, compute)
    results.append((np.asarray(computed["gap"], np.float32),
                    balance.read_split_labels(source)))
  return results


def main(argv):
  del argv
  runtime.configure()
  import jax
  import numpy as np

  from artclf import labels
  from artclf.eval import metrics

  data_dir = pathlib.Path(_DATA_DIR.value)
  common.built_dataset(data_dir, _SOURCE_DIR.value)

  start = time.time()
  (x_train, y_train), (x_val, y_val), (x_test, y_test) = probe_features(
      data_dir, ("train", "val", "test"), _PREPROCESSING.value, _CACHE_DIR.value)
  print(f"features: {time.time() - start:.0f} s")
  x_fit = np.concatenate([x_train, x_val])
  y_fit = {t: np.concatenate([y_train[t], y_val[t]]) for t in labels.TASKS}
  if _STANDARDIZE.value:
    mean, std = x_fit.mean(0), x_fit.std(0) + 1e-6
    x_fit, x_test = (x_fit - mean) / std, (x_test - mean) / std
  probs = {}
  for task in labels.TASKS:
    params = fit_logistic_regression(x_fit, y_fit[task], labels.num_classes(task), _C.value)
    probs[task] = np.asarray(jax.nn.softmax(x_test @ params["w"] + params["b"], axis=-1))
  report = metrics.evaluate_predictions(y_test, probs)
  # Issue 6's "always egyptian, sculpture, late" row (the test split's majority answer).
  constant = {"culture": "egyptian", "medium": "sculpture", "period": "late"}
  majority = {task: np.eye(3)[np.full(len(y_test[task]), labels.class_id(task, constant[task]))]
              for task in labels.TASKS}
  majority_report = metrics.evaluate_predictions(y_test, majority)

  print(f"\nLinear probe ({_PREPROCESSING.value}: {PREPROCESSING[_PREPROCESSING.value]}) "
        f"on the shared test split ({len(x_test)} images, "
        f"{report['all_three']['num_known']} with all three labels known):\n")
  print("| | culture | medium | period | mean | all three |")
  print("|---|---|---|---|---|---|")
  for name, rep, ref in (("artclf probe", report, None), ("issue 6 reference", None, REFERENCE),
                         ("always egyptian, sculpture, late", majority_report, None)):
    if rep is not None:
      acc = [rep["tasks"][t]["accuracy"] for t in labels.TASKS]
      bal = [rep["tasks"][t]["balanced_accuracy"] for t in labels.TASKS]
      print(f"| {name}: accuracy | " + " | ".join(f"{a:.1%}" for a in acc) +
            f" | {rep['mean_accuracy']:.1%} | {rep['all_three']['accuracy']:.1%} |")
      print(f"| {name}: balanced | " + " | ".join(f"{b:.1%}" for b in bal) +
            f" | {rep['mean_balanced_accuracy']:.1%} | |")
    else:
      print(f"| {name}: accuracy | " + " | ".join(f"{ref['accuracy'][t]:.1%}" for t in labels.TASKS) +
            f" | {ref['accuracy']['mean']:.1%} | {ref['accuracy']['all_three']:.1%} |")
      print(f"| {name}: balanced | " + " | ".join(f"{ref['balanced'][t]:.1%}" for t in labels.TASKS) +
            f" | {ref['balanced']['mean']:.1%} | |")


if __name__ == "__main__":
  app.run(main)
