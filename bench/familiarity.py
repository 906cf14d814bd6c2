"""How well each familiarity method tells the test split from photos unlike the training set.

  python -m bench.familiarity --workdir=checkpoints/cpu_quick
  python -m bench.familiarity --workdir=/tmp/no_paintings --left_out="medium=painting"

Unfamiliar sets: scikit-image's sample photographs (a cat, an astronaut, coffee, a rocket,
...: nothing like the training set), and with --left_out, the shared set's records of a
class the run in --workdir was trained without (config.data.exclude), from every split.
For each method (artclf.eval.familiarity.METHODS) it prints the AUROC between the test
split (the run's own classes) and each set, and the share of each set flagged, with the
threshold set on the run's validation split to pass val_pass_rate of it. The method the
run saved (familiarity.npz) is marked; its flag rates are what predict reports.
"""

from __future__ import annotations

import numpy as np
from absl import app, flags

from artclf import runtime

_WORKDIR = flags.DEFINE_string("workdir", None, "A training workdir.", required=True)
_LEFT_OUT = flags.DEFINE_string(
    "left_out", "", "The run's config.data.exclude rule (such as medium=painting): its records "
    "are scored as an unfamiliar set.")

SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "cat", "immunohistochemistry",
                  "hubble_deep_field", "retina", "colorwheel", "logo", "camera", "moon",
                  "page", "text", "brick", "grass", "gravel", "coins", "horse", "clock")


def skimage_views(trained) -> np.ndarray:
  from skimage import data  # pylint: disable=import-outside-toplevel
  from artclf.serve import predict  # pylint: disable=import-outside-toplevel
  views = []
  for name in SKIMAGE_PHOTOS:
    picture = getattr(data, name)()
    if picture.dtype == bool:
      picture = picture.astype(np.uint8) * 255
    views.append(trained.view(predict.read_input(picture)))
  return np.stack(views)


def split_views(trained, data_dir, split: str, rule: str, matching: bool) -> np.ndarray:
  from artclf.data import dataset  # pylint: disable=import-outside-toplevel
  source = dataset.filtered(dataset.open_split(data_dir, split), rule, keep_matching=matching)
  return np.stack([trained.view(source[i]["image"]) for i in range(len(source))])


def main(argv) -> None:
  del argv
  runtime.configure()
  from artclf.data import dataset  # pylint: disable=import-outside-toplevel
  from artclf.eval import familiarity  # pylint: disable=import-outside-toplevel
  from artclf.run import trained as trained_lib  # pylint: disable=import-outside-toplevel
  trained = trained_lib.load(_WORKDIR.value, batch_size=32)
  if trained.familiarity is None:
    raise SystemExit(f"{_WORKDIR.value} has no {familiarity.FAMILIARITY_FILE}: train it again")
  data_dir = dataset.ensure_built(trained.config.data)
  rule = _LEFT_OUT.value
  sets = {"val": split_views(trained, data_dir, "val", rule, False),
          "test": split_views(trained, data_dir, "test", rule, False),
          "skimage photos": skimage_views(trained)}
  if rule:
    sets[f"left out: {rule}"] = np.concatenate(
        [split_views(trained, data_dir, s, rule, True) for s in ("train", "val", "test")])
  outputs = {name: trained.outputs(views) for name, views in sets.items()}
  print(f"| method | " + " | ".join(f"AUROC test vs {n} | flagged {n}" for n in sets
                                    if n not in ("val", "test")) + " | flagged test |")
  print("|---" * (2 * (len(sets) - 2) + 2) + "|")
  for method in familiarity.METHODS:
    if method == "mahalanobis" and trained.familiarity.gaussians is None:
      continue
    scores = {name: familiarity.raw_scores(method, out["logits"], out["pooled"],
                                           trained.familiarity.gaussians)
              for name, out in outputs.items()}
    threshold = np.quantile(scores["val"], 1.0 - trained.familiarity.val_pass_rate)
    cells = []
    for name in sets:
      if name not in ("val", "test"):
        cells += [f"{familiarity.auroc(scores['test'], scores[name]):.3f}",
                  f"{np.mean(scores[name] < threshold):.0%} of {len(scores[name])}"]
    saved = " (saved)" if method == trained.familiarity.method else ""
    print(f"| {method}{saved} | " + " | ".join(cells) +
          f" | {np.mean(scores['test'] < threshold):.1%} of {len(scores['test'])} |")


if __name__ == "__main__":
  app.run(main)
