"""Evaluates a loaded run on a split (what `python -m artclf.evaluate` runs).

  trained = artclf.run.trained.load(workdir)        # the entry point loads the run
  report = evaluation.evaluate(trained, split="test")

Reports, for every task of the run's scheme, on the images whose label for it is known:
accuracy (with counts), their mean, all-tasks-correct (on the images with every label
known; "all three" for three tasks), balanced accuracy, macro-F1, per-class precision and
recall, and a confusion matrix (printed like the study's Fig. 8 and saved as PNG
heatmaps); and the calibration of the run's temperatures (fitted on the validation split
when it was trained) on the split. `fit_temperatures` refits them, for `--recalibrate`.

Writes OUTPUT_DIR (by default WORKDIR/eval_<split>/): report.json, results.md (beside the
study's figures), confusion_<task>.png and training_curves.png. Nothing else in the
workdir is written.
"""

from __future__ import annotations

import pathlib
import sys

import numpy as np

from artclf import inference
from artclf.data import dataset, tfds_builder, transforms
from artclf.eval import calibration, groups, metrics, plots


def split_outputs(trained, source, flip_tta: bool) -> dict:
  """{'logits': {task: ...}, 'pooled': vectors the heads read} of every record of a split
  source, from one pass through the one inference loop."""
  return inference.forward_rows(
      trained.apply_outputs(flip_tta), transforms.eval_view_loader(source, trained.augment),
      len(source), trained.local_batch_size, trained.mesh, what=f"evaluating {len(source)} images")


def open_records(trained, split: str, data_dir=None, select: str | None = None,
                 exclude: str = "") -> dataset.LabelledSplit:
  """The records of `split` (or those matching `select`) with their labels under the run's
  scheme, from the run's dataset (built if needed) or `data_dir`."""
  data_dir = data_dir or dataset.ensure_built(trained.config.data)
  available = tfds_builder.split_names(data_dir)
  for name in split.split("+"):
    if name.split("[")[0].strip() not in available:
      raise ValueError(f"split {split!r} not in the dataset at {data_dir} (it has {available})")
  source = dataset.open_split(data_dir, split, exclude=exclude)
  if select:
    source = dataset.filtered(source, select, keep_matching=True)
    if not len(source):
      raise ValueError(f"no record of the {split} split matches --select={select}")
  return dataset.LabelledSplit(split, source, dataset.read_labels(
      source, trained.scheme, dataset.labels_file(data_dir)))


def fit_temperatures(trained, split: str = "val", flip_tta: bool = False, data_dir=None) -> dict:
  """calibration.json's contents refitted on the run's `split` records (those it trained
  with: its data.exclude applies)."""
  records = open_records(trained, split, data_dir, exclude=trained.config.data.get("exclude", ""))
  logits = split_outputs(trained, records.source, flip_tta)["logits"]
  return calibration.fit_record(logits, records.labels, trained.scheme.tasks, split, flip_tta)


def evaluate(trained, split: str = "test", data_dir=None, flip_tta: bool = False,
             output_dir=None, stream=sys.stdout, group_by: str | None = None,
             select: str | None = None) -> dict:
  """Evaluates a loaded run on `split`; returns the report (also written to output_dir).

  With `group_by` (a labels.csv column such as museum), every metric is also reported per
  group, with the shortcut report (`artclf.eval.groups`).
  """
  scheme = trained.scheme
  records = open_records(trained, split, data_dir, select)
  output_dir = _writable_output_dir(output_dir, trained.workdir, split)
  try:  # a bad column fails before the slow part
    groups_of = dataset.column_values(records.source, group_by) if group_by else None
  except ValueError as error:
    raise ValueError(f"--group_by={group_by}: {error}") from None
  outputs = split_outputs(trained, records.source, flip_tta)
  logits, label_ids = outputs["logits"], records.labels
  probs = trained.calibrate(logits)
  report = metrics.evaluate_predictions(label_ids, probs, scheme)
  report.update(split=split, flip_tta=flip_tta, workdir=str(trained.workdir),
                calibration=_calibration_report(trained, logits, label_ids, split))
  if group_by:
    report["group_by"] = group_by
    report["groups"] = groups.group_reports(label_ids, probs, groups_of, scheme)
    report["shortcuts"] = groups.shortcut_report(outputs["pooled"], label_ids, groups_of, scheme)
  _write_report(report, trained, output_dir, split, stream)
  return report


def _writable_output_dir(output_dir, workdir: pathlib.Path | None, split: str) -> pathlib.Path:
  """output_dir (default WORKDIR/eval_<split>), created; a one-line error if it cannot be."""
  output_dir = pathlib.Path(output_dir or pathlib.Path(workdir or ".") / f"eval_{split}")
  try:
    output_dir.mkdir(parents=True, exist_ok=True)
    probe = output_dir / ".write_test"
    probe.write_text("")
    probe.unlink()
  except OSError as error:
    raise ValueError(f"cannot write the report to {output_dir} ({error.strerror}); "
                     "pass --output_dir=A_WRITABLE_FOLDER") from None
  return output_dir


def _calibration_report(trained, logits, label_ids, split: str) -> dict:
  """Per task: the run's temperature, and the calibration errors before and after it on
  the split (and on the split it was fitted on, as recorded then)."""
  fitted = getattr(trained, "calibration_record", None) or {}
  report = {}
  for task in trained.scheme.tasks:
    temperature = trained.temperatures[task]
    on_split = calibration.calibration_errors(logits[task], label_ids[task], temperature)
    entry = {"temperature": temperature, **{f"{split}_{k}": v for k, v in on_split.items()}}
    if fitted.get("fitted_on") and task in fitted.get("errors", {}):
      entry.update({f"{fitted['fitted_on']}_{k}": v for k, v in fitted["errors"][task].items()})
    report[task] = entry
  return {"fitted_on": fitted.get("fitted_on"), "tasks": report}


def _write_report(report: dict, trained, output_dir: pathlib.Path, split: str,
                  stream) -> None:
  """Prints the confusion tables and summary; writes them, the heatmaps and the curves."""
  for task in trained.scheme.tasks:
    matrix = np.asarray(report["tasks"][task]["confusion_matrix"])
    names = trained.scheme.classes[task]
    print(metrics.format_confusion_table(task, matrix, names), file=stream)
    print(file=stream)
    plots.save_confusion_heatmap(matrix, names, f"{task} ({split})",
                                 output_dir / f"confusion_{task}.png")
  history_path = pathlib.Path(trained.workdir or ".") / "metrics.jsonl"
  history = plots.load_history(history_path) if history_path.exists() else None
  if history:
    plots.save_training_curves(history, output_dir / "training_curves.png", trained.scheme.tasks)
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
  fitted_on = report["calibration"]["fitted_on"]
  print("\nCalibration (the run's temperature; expected calibration error before -> after):",
        file=stream)
  for task, c in report["calibration"]["tasks"].items():
    on_fit = (f"  {fitted_on}: {_ece(c, fitted_on, 'before')} -> {_ece(c, fitted_on, 'after')}"
              if fitted_on else "  (no calibration.json: uncalibrated)")
    print(f"  {task:8s} T={c['temperature']:.3f}{on_fit}"
          f"  {split}: {_ece(c, split, 'before')} -> {_ece(c, split, 'after')}", file=stream)
  print(f"\nWritten to {output_dir}", file=stream)


def _ece(entry: dict, split: str, when: str) -> str:
  value = entry.get(f"{split}_ece_{when}")
  return "n/a" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.4f}"
