"""Evaluates a trained model on a split: python -m artclf.evaluate --workdir=DIR [--split=test]

Uses the run's best checkpoint; prints per-task confusion matrices, accuracies with
counts, their mean, all-three-correct, balanced accuracy, macro-F1 and calibration, and
writes them to WORKDIR/eval_<split>/ (see `artclf.eval.evaluation`).
"""

from absl import app, flags

from artclf import runtime

_WORKDIR = flags.DEFINE_string("workdir", None, "A training workdir.", required=True)
_SPLIT = flags.DEFINE_string("split", "test", "The split to evaluate.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Built dataset folder (default: the run's).")
_CALIBRATION_SPLIT = flags.DEFINE_string(
    "calibration_split", "val", "Split to fit the temperatures on ('' to skip calibration).")
_TTA = flags.DEFINE_bool("tta", False, "Average each image with its horizontal mirror.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Default: WORKDIR/eval_<split>.")
_GROUP_BY = flags.DEFINE_string(
    "group_by", None, "A labels.csv column (museum, ...): every metric per group, and the "
    "shortcut report (how well the group can be told from the model's features within a class).")
_SELECT = flags.DEFINE_string(
    "select", None, "Evaluate only the records matching column=value (or column=a|b), such as "
    "museum=met: a source held out of training (see python -m artclf.crossval).")


def main(argv) -> int:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  runtime.configure()
  from artclf.eval import evaluation  # After runtime.configure(): it starts JAX.
  try:
    evaluation.evaluate(_WORKDIR.value, _SPLIT.value, _DATA_DIR.value, _CALIBRATION_SPLIT.value,
                        _TTA.value, _OUTPUT_DIR.value, group_by=_GROUP_BY.value,
                        select=_SELECT.value)
  except (FileNotFoundError, ValueError) as error:
    return runtime.report_error(error)
  return 0


if __name__ == "__main__":
  app.run(main)
