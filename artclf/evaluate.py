"""Evaluates a trained model on a split: python -m artclf.evaluate --workdir=DIR [--split=test]

Loads the run (its best checkpoint, scheme, calibration and familiarity), then prints per
task a confusion matrix, accuracies with counts, their mean, all-tasks-correct, balanced
accuracy, macro-F1 and the calibration of the run's temperatures, and writes them to
WORKDIR/eval_<split>/ (see `artclf.eval.evaluation`). `--recalibrate` refits the
temperatures on the validation split (with --tta if given) and saves them to the run.
"""

from absl import app, flags

from artclf import runtime

_WORKDIR = flags.DEFINE_string("workdir", None, "A training workdir.", required=True)
_SPLIT = flags.DEFINE_string("split", "test", "The split to evaluate.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Built dataset folder (default: the run's).")
_TTA = flags.DEFINE_bool("tta", False, "Average each image with its horizontal mirror.")
_RECALIBRATE = flags.DEFINE_bool(
    "recalibrate", False, "Refit the temperatures on --calibration_split (with --tta if given) "
    "and save them to the run's calibration.json before evaluating (training fits them "
    "without TTA).")
_CALIBRATION_SPLIT = flags.DEFINE_string("calibration_split", "val",
                                         "The split --recalibrate fits on.")
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
  # After runtime.configure(): these start JAX.
  from artclf.eval import evaluation  # pylint: disable=import-outside-toplevel
  from artclf.run import files, trained as trained_lib  # pylint: disable=import-outside-toplevel
  try:
    trained = trained_lib.load(_WORKDIR.value, batch_size=32)
    if _RECALIBRATE.value:
      fitted = evaluation.fit_temperatures(trained, _CALIBRATION_SPLIT.value, _TTA.value,
                                           _DATA_DIR.value)
      files.write_json(trained.workdir / files.CALIBRATION_FILE, fitted)
      trained = trained_lib.load(_WORKDIR.value, batch_size=32)
    evaluation.evaluate(trained, _SPLIT.value, _DATA_DIR.value, _TTA.value, _OUTPUT_DIR.value,
                        group_by=_GROUP_BY.value, select=_SELECT.value)
  except (FileNotFoundError, ValueError) as error:
    return runtime.report_error(error)
  except OSError as error:
    return runtime.report_error(f"{error.strerror or error}: {error.filename}")
  return 0


if __name__ == "__main__":
  app.run(main)
