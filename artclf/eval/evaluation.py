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


def split_logits(trained, source, flip_tta: bool, chunk: int = 64):
  """Logits and labels of every record of a split source."""
  from artclf.data import transforms
  aug = trained.augment
  logits = {task: [] for task in labels.TASKS}
  label_ids = {task: [] for task in labels.TASKS}
  for start in range(0, len(source), chunk):
    records = [source[i] for i in range(start, min(start + chunk, len(source)))]
    views = np.stack([transforms.preprocess_example(r["image"], train=False, config=aug,
                                                 normalize=False) for r in records])
    for task, value in trained.logits(views, flip_tta).items():
      logits[task].append(value)
    for task in labels.TASKS:
      label_ids[task].append(np.array([int(r[task]) for r in records], np.int32))
  return ({t: np.concatenate(v) for t, v in logits.items()},
          {t: np.concatenate(v) for t, v in label_ids.items()})


def evaluate(workdir, split: str = "test", data_dir=None, calibration_split: str = "val",
             flip_tta: bool = False, output_dir=None, stream=sys.stdout) -> dict:
  """Evaluates the best checkpoint of `workdir` on `split`; returns the report (also written)."""
  from artclf.data import dataset, tfds_builder
  from artclf.eval import calibration, metrics, plots
  from artclf.serve import trained_model

  workdir = pathlib.Path(workdir).resolve()
  trained = trained_model.load(workdir, batch_size=32)
  if data_dir is None:
    data_dir = dataset.ensure_built(trained.config.data)
  available = tfds_builder.split_names(data_dir)
  if split not in available:
    raise ValueError(f"split {split!r} not in the dataset at {data_dir} (it has {available})")
  logits, label_ids = split_logits(trained, tfds_builder.open_split(data_dir, split), flip_tta)

  calibration_report = None
  temperatures = {task: 1.0 for task in labels.TASKS}
  if calibration_split and calibration_split in available:
    if calibration_split == split:
      val_logits, val_labels = logits, label_ids
    else:
      val_logits, val_labels = split_logits(
          trained, tfds_builder.open_split(data_dir, calibration_split), flip_tta)
    fits = calibration.fit_temperatures(val_logits, val_labels)
    temperatures = {task: float(fits[task].temperature) for task in labels.TASKS}
    (workdir / trained_model.CALIBRATION_FILE).write_text(json.dumps(
        {"temperatures": temperatures, "fitted_on": calibration_split, "flip_tta": flip_tta},
        indent=2))
    calibration_report = {}
    for task in labels.TASKS:
      on_split = calibration.calibration_errors(logits[task], label_ids[task], temperatures[task])
      calibration_report[task] = {
          "temperature": temperatures[task],
          f"{calibration_split}_ece_before": fits[task].ece_before,
          f"{calibration_split}_ece_after": fits[task].ece_after,
          f"{calibration_split}_nll_before": fits[task].nll_before,
          f"{calibration_split}_nll_after": fits[task].nll_after,
          **{f"{split}_{k}": v for k, v in on_split.items()}}

  probs = {task: calibration.softmax(calibration.apply_temperature(logits[task], temperatures[task]))
           for task in labels.TASKS}
  report = metrics.evaluate_predictions(label_ids, probs)
  report.update(split=split, flip_tta=flip_tta, workdir=str(workdir), calibration=calibration_report)

  output_dir = pathlib.Path(output_dir or workdir / f"eval_{split}")
  output_dir.mkdir(parents=True, exist_ok=True)
  for task in labels.TASKS:
    matrix = np.asarray(report["tasks"][task]["confusion_matrix"])
    print(metrics.format_confusion_table(task, matrix), file=stream)
    print(file=stream)
    plots.save_confusion_heatmap(matrix, labels.CLASSES[task], f"{task} ({split})",
                                 output_dir / f"confusion_{task}.png")
  history_path = workdir / "metrics.jsonl"
  if history_path.exists():
    history = plots.load_history(history_path)
    if history:
      plots.save_training_curves(history, output_dir / "training_curves.png")
  summary = metrics.markdown_summary(report)
  (output_dir / "results.md").write_text(summary + "\n")
  (output_dir / "report.json").write_text(metrics.report_to_json(report))
  print(summary, file=stream)
  if calibration_report:
    print("\nCalibration (temperature; expected calibration error before -> after):", file=stream)
    for task, c in calibration_report.items():
      print(f"  {task:8s} T={c['temperature']:.3f}  {calibration_split}: "
            f"{c[f'{calibration_split}_ece_before']:.4f} -> {c[f'{calibration_split}_ece_after']:.4f}"
            f"  {split}: {c[f'{split}_ece_before']:.4f} -> {c[f'{split}_ece_after']:.4f}", file=stream)
  print(f"\nWritten to {output_dir}", file=stream)
  return report
