"""How much a run's figures move with its seed, and whether averaging runs helps.

  python bench/run_spread.py --workdirs=DIR1,DIR2,... [--split=val]

Train one config several times with different seeds first, e.g.
  for s in 0 1 2 3 4; do python -m artclf.train --config=configs/cpu_quick.py \
      --workdir=checkpoints/seed$s --config.seed=$s; done
then pass the workdirs. For each run, the best checkpoint is scored on the split with
`artclf.eval.metrics`, as `python -m artclf.evaluate` scores it (probabilities without the
temperatures: they do not change a prediction). The bench prints every run, the spread of
the headline figures over the runs, and the ensemble that averages their probabilities.
Screen with --split=val; score test only to report what was chosen. With
--split=train+val+test --select=museum=met and the crossval runs that held the Met out,
it scores their ensemble on the held-out source.
"""

from __future__ import annotations

import pathlib
import statistics
import sys
import time
from typing import Sequence

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from artclf import scheme as scheme_lib
from bench.common import HEADLINE, headline  # noqa: E402

_WORKDIRS = flags.DEFINE_list("workdirs", None, "Training workdirs, comma-separated.")
_SPLIT = flags.DEFINE_string("split", "val", "The split to score.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Built dataset folder (default: each run's).")
_SELECT = flags.DEFINE_string("select", None, "Score only the records matching column=value "
                              "(a source held out of training: see python -m artclf.crossval).")

def average_probabilities(members: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
  """The ensemble's {task: [N, C]} probabilities: the members' mean."""
  if not members:
    raise ValueError("an ensemble needs at least one member")
  return {task: np.mean([m[task] for m in members], axis=0) for task in members[0]}


def spread(values: Sequence[float]) -> dict[str, float]:
  """Mean, sample standard deviation (0 for one value), min and max."""
  return {"mean": statistics.fmean(values),
          "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
          "min": min(values), "max": max(values)}


def split_probabilities(workdir: str, split: str, data_dir: str | None, select: str = ""):
  """({task: probabilities}, {task: label ids}) of a run's best checkpoint on a split (or a
  split expression such as train+val+test), optionally only the records matching `select`."""
  # pylint: disable=import-outside-toplevel  # JAX starts here, after the flags are parsed.
  from artclf.data import dataset, tfds_builder
  from artclf.eval import calibration, evaluation
  from artclf.run import trained as trained_lib
  trained = trained_lib.load(workdir, batch_size=32)
  data_dir = data_dir or dataset.ensure_built(trained.config.data)
  missing = set(split.split("+")) - set(tfds_builder.split_names(data_dir))
  if missing:
    raise ValueError(f"split {split!r} not in {data_dir}")
  source = dataset.filtered(tfds_builder.open_split(data_dir, split), select, keep_matching=True)
  label_ids = dataset.read_labels(source, trained.scheme)
  logits = evaluation.split_outputs(trained, source, flip_tta=False)["logits"]
  return {task: calibration.softmax(value) for task, value in logits.items()}, label_ids


def _row(name: str, figures: dict[str, float]) -> str:
  return f"| {name} | " + " | ".join(f"{100 * figures[k]:.1f}%" for k in figures) + " |"


def main(argv: Sequence[str]) -> int:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not _WORKDIRS.value:
    raise app.UsageError("--workdirs is required")
  from artclf import runtime  # pylint: disable=import-outside-toplevel
  from artclf.eval import metrics
  runtime.configure()
  start = time.time()
  members, reference_labels, rows = [], None, {}
  for workdir in _WORKDIRS.value:
    probs, label_ids = split_probabilities(workdir, _SPLIT.value, _DATA_DIR.value,
                                           _SELECT.value or "")
    if reference_labels is not None and any(
        not np.array_equal(label_ids[t], reference_labels[t]) for t in scheme_lib.DEFAULT.tasks):
      print(f"error: {workdir} was scored on different {_SPLIT.value} records than the "
            "first run; give runs built on the same dataset", file=sys.stderr)
      return 1
    reference_labels = label_ids
    members.append(probs)
    rows[workdir] = headline(metrics.evaluate_predictions(label_ids, probs, scheme_lib.DEFAULT))

  columns = HEADLINE
  print(f"split {_SPLIT.value}, {len(members)} runs, {time.time() - start:.0f} s\n")
  print("| run | " + " | ".join(columns) + " |")
  print("|---" * (len(columns) + 1) + "|")
  for workdir, figures in rows.items():
    print(_row(workdir, figures))
  print(_row("ensemble (mean probability)", headline(metrics.evaluate_predictions(
      reference_labels, average_probabilities(members), scheme_lib.DEFAULT))))
  print("\nSpread over the runs (mean +- sd, min-max):")
  for key in columns:
    s = spread([figures[key] for figures in rows.values()])
    print(f"  {key:24s} {100 * s['mean']:.1f}% +- {100 * s['sd']:.1f}  "
          f"({100 * s['min']:.1f}-{100 * s['max']:.1f})")
  return 0


if __name__ == "__main__":
  app.run(main)
