"""Evaluates a trained model on a split (what `python -m artclf.evaluate` runs).

Uses the run's best checkpoint and reports, on the images whose label for a task is known:
per-task accuracy (with counts), their mean, all-three-correct (on the images with all
three labels known), balanced accuracy, macro-F1, per-class precision and recall, and a
confusion matrix per task (printed like the study's Fig. 8 and saved as PNG heatmaps).
Per-head temperatures are fitted on the validation split (saved to WORKDIR/calibration.json,
then used by `predict`), with the expected calibration error before and after.

Writes WORKDIR/eval_<split>/: report.json, results.md (beside the study's figures),
confusion_<task>.png and training_curves.png.
"""

from __future__ import annotations

import json
import pathlib
import sys

import numpy as np

from artclf import labels
from artclf.data import balance, dataset, tfds_builder, transforms
from artclf.eval import calibration, groups, inference, metrics, plots
from artclf.serve import trained_model


def split_outputs(trained, source, flip_tta: bool) -> tuple[dict, dict]:
  """({'logits': {task: ...}, 'pooled': vectors the heads read}, label ids) of every record
  of a split source, from one pass through the one inference loop."""
  outputs = inference.forward_rows(
      trained.apply_outputs(flip_tta), transforms.eval_view_loader(source, trained.augment),
      len(source), trained.local_batch_size, trained.mesh, what=f"evaluating {len(source)} images")
  return outputs, balance.read_split_labels(source)


def split_logits(trained, source, flip_tta: bool) -> tuple[dict, dict]:
  """(logits, label ids) of every record of a split source."""
  outputs, label_ids = split_outputs(trained, source, flip_tta)
  return outputs["logits"], label_ids


def evaluate(workdir, split: str = "test", data_dir=None, calibration_split: str = "val",
             flip_tta: bool = False, output_dir=None, stream=sys.stdout,
             group_by: str | None = None, select: str | None = None) -> dict:
  """Evaluates the best checkpoint of `workdir` on `split`; returns the report (also written).

  With `group_by` (a labels.csv column such as museum), every metric is also reported per
  group, with the shortcut report (`artclf.eval.groups`).
  """
  workdir = pathlib.Path(workdir).resolve()
  trained = trained_model.load(workdir, batch_size=32)
  data_dir = data_dir or dataset.ensure_built(trained.config.data)
  available = tfds_builder.split_names(data_dir)
  if split not in available:
    raise ValueError(f"split {split!r} not in the dataset at {data_dir} (it has {available})")
  output_dir = pathlib.Path(output_dir or workdir / f"eval_{split}")
  output_dir.mkdir(parents=True, exist_ok=True)
  source = tfds_builder.open_split(data_dir, split)
  if select:
    source = dataset.filtered(source, select, keep_matching=True)
    if not len(source):
      raise ValueError(f"no record of the {split} split matches --select={select}")
  try:  # a bad column fails before the slow part
    groups_of = dataset.column_values(source, group_by) if group_by else None
  except ValueError as error:
    raise ValueError(f"--group_by={group_by}: {error}") from None
  outputs, label_ids = split_outputs(trained, source, flip_tta)
  logits = outputs["logits"]

  temperatures = {task: 1.0 for task in labels.TASKS}
  calibration_report = None
  if calibration_split and calibration_split in available:
    if calibration_split == split:
      fit_logits, fit_labels = logits, label_ids
    else:
      # The run's validation records (without those it left out of training).
      fit_logits, fit_labels = split_logits(trained, dataset.open_split(
          data_dir, calibration_split, exclude=trained.config.data.get("exclude", "")), flip_tta)
    fits = calibration.fit_temperatures(fit_logits, fit_labels)
    temperatures = {task: float(fits[task].temperature) for task in labels.TASKS}
    save_calibration(workdir, output_dir, {"temperatures": temperatures,
                                           "fitted_on": calibration_split, "flip_tta": flip_tta},
                     stream)
    calibration_report = _calibration_report(fits, temperatures, logits, label_ids,
                                             calibration_split, split)

  probs = {task: calibration.softmax(calibration.apply_temperature(logits[task], temperatures[task]))
           for task in labels.TASKS}
  report = metrics.evaluate_predictions(label_ids, probs)
  report.update(split=split, flip_tta=flip_tta, workdir=str(workdir), calibration=calibration_report,
                calibration_split=calibration_split if calibration_report else None)
  if group_by:
    report["group_by"] = group_by
    report["groups"] = groups.group_reports(label_ids, probs, groups_of)
    report["shortcuts"] = groups.shortcut_report(outputs["pooled"], label_ids, groups_of)
  _write_report(report, workdir, output_dir, split, stream)
  return report


def save_calibration(workdir: pathlib.Path, output_dir: pathlib.Path, fitted: dict,
                     stream) -> pathlib.Path:
  """Writes calibration.json to the workdir (where predict reads it), else to output_dir."""
  text = json.dumps(fitted, indent=2)
  try:
    (workdir / trained_model.CALIBRATION_FILE).write_text(text)
    return workdir / trained_model.CALIBRATION_FILE
  except OSError as error:
    path = output_dir / trained_model.CALIBRATION_FILE
    path.write_text(text)
    print(f"warning: cannot write {workdir / trained_model.CALIBRATION_FILE} "
          f"({error.strerror}); the temperatures are in {path}, and predict will use "
          "uncalibrated probabilities", file=stream)
    return path


def _calibration_report(fits, temperatures, logits, label_ids, fitted_on: str, split: str) -> dict:
  report = {}
  for task in labels.TASKS:
    on_split = calibration.calibration_errors(logits[task], label_ids[task], temperatures[task])
    report[task] = {
        "temperature": temperatures[task],
        f"{fitted_on}_ece_before": fits[task].ece_before,
        f"{fitted_on}_ece_after": fits[task].ece_after,
        f"{fitted_on}_nll_before": fits[task].nll_before,
        f"{fitted_on}_nll_after": fits[task].nll_after,
        **{f"{split}_{k}": v for k, v in on_split.items()}}
  return report


def _write_report(report: dict, workdir: pathlib.Path, output_dir: pathlib.Path, split: str,
                  stream) -> None:
  """Prints the confusion tables and summary; writes them, the heatmaps and the curves."""
  for task in labels.TASKS:
    matrix = np.asarray(report["tasks"][task]["confusion_matrix"])
    print(metrics.format_confusion_table(task, matrix), file=stream)
    print(file=stream)
    plots.save_confusion_heatmap(matrix, labels.CLASSES[task], f"{task} ({split})",
                                 output_dir / f"confusion_{task}.png")
  history_path = workdir / "metrics.jsonl"
  history = plots.load_history(history_path) if history_path.exists() else None
  if history:
    plots.save_training_curves(history, output_dir / "training_curves.png")
  summary = metrics.markdown_summary(report)
  if report.get("group_by"):
    column = report["group_by"]
    summary += (f"\n\nBy {column}:\n\n" + groups.format_groups(report["groups"], column) +
                f"\n\nShortcut report: how well the {column} can be told apart within one class, "
                "from the vectors the heads read (cross-validated linear probe):\n\n" +
                groups.format_shortcuts(report["shortcuts"], column))
  (output_dir / "results.md").write_text(summary + "\n")
  (output_dir / "report.json").write_text(metrics.report_to_json(report))
  print(summary, file=stream)
  if report["calibration"]:
    fitted_on = report["calibration_split"]
    print("\nCalibration (temperature; expected calibration error before -> after):", file=stream)
    for task, c in report["calibration"].items():
      print(f"  {task:8s} T={c['temperature']:.3f}  {fitted_on}: "
            f"{c[f'{fitted_on}_ece_before']:.4f} -> {c[f'{fitted_on}_ece_after']:.4f}"
            f"  {split}: {c[f'{split}_ece_before']:.4f} -> {c[f'{split}_ece_after']:.4f}",
            file=stream)
  print(f"\nWritten to {output_dir}", file=stream)
