"""Tests of artclf.eval.plots: PNGs are written at the expected size; JSONL history loading."""

import json

import numpy as np
import pytest
from PIL import Image

from artclf.eval import plots
from artclf.scheme import DEFAULT

TASKS, CLASSES = DEFAULT.tasks, DEFAULT.classes


def expected_size(figsize, dpi=plots.DPI):
  return (round(figsize[0] * dpi), round(figsize[1] * dpi))


def epoch_record(epoch, split, base):
  record = {"epoch": epoch, "split": split, "loss": 1.0 / (epoch + 1)}
  for i, task in enumerate(TASKS):
    record[f"{task}_accuracy"] = min(1.0, base + 0.05 * epoch + 0.02 * i)
  return record


def test_confusion_heatmap_is_a_png_of_the_expected_size(tmp_path):
  path = tmp_path / "figs" / "culture.png"          # the folder does not exist yet
  matrix = [[114, 6, 0], [67, 37, 0], [0, 0, 0]]     # includes a row without support
  plots.save_confusion_heatmap(matrix, CLASSES["culture"], "culture (test)", path)
  assert path.stat().st_size > 1000
  with Image.open(path) as image:
    assert image.format == "PNG"
    assert image.size == expected_size(plots.HEATMAP_FIGSIZE)
    pixels = np.asarray(image.convert("L"))
  assert pixels.std() > 10                          # something was drawn


def test_confusion_heatmap_rejects_mismatched_class_names(tmp_path):
  with pytest.raises(ValueError):
    plots.save_confusion_heatmap(np.eye(3, dtype=int), ["a", "b"], "t", tmp_path / "x.png")


def test_training_curves_png_from_a_log(tmp_path):
  log = tmp_path / "train.jsonl"
  lines = [json.dumps({"config": {"lr": 0.01}})]
  for epoch in range(1, 6):
    lines += [json.dumps({"step": 10 * epoch + k, "loss": 0.5}) for k in range(3)]
    lines.append(json.dumps(epoch_record(epoch, "train", 0.5)))
    lines.append(json.dumps(epoch_record(epoch, "val", 0.4)))
  log.write_text("\n".join(lines) + "\n")
  history = plots.load_history(log)
  assert len(history) == 10
  path = tmp_path / "curves.png"
  plots.save_training_curves(history, path, ("culture", "medium", "period"), figsize=(9.0, 3.0),
                            dpi=80)
  with Image.open(path) as image:
    assert image.format == "PNG"
    assert image.size == expected_size((9.0, 3.0), dpi=80)


def test_load_history_skips_a_truncated_last_line_and_other_records(tmp_path):
  log = tmp_path / "train.jsonl"
  good = [epoch_record(1, "train", 0.5), epoch_record(1, "val", 0.4)]
  text = "\n".join([json.dumps({"step": 5, "loss": 0.9})] + [json.dumps(r) for r in good])
  # The writer died halfway through the epoch-2 record.
  text += "\n" + json.dumps(epoch_record(2, "train", 0.5))[:25]
  log.write_text(text)
  assert plots.load_history(log) == good


def test_load_history_warns_about_a_corrupt_line_in_the_middle(tmp_path):
  log = tmp_path / "train.jsonl"
  records = [epoch_record(e, "val", 0.4) for e in (1, 2)]
  log.write_text(json.dumps(records[0]) + "\n{\"epoch\": 9, \"spl\n" + json.dumps(records[1]) + "\n")
  with pytest.warns(UserWarning, match=r"\[2\]"):
    assert plots.load_history(log) == records


def test_training_curves_take_the_last_record_of_an_epoch(tmp_path):
  # A resumed run may log an epoch twice; the later record is the one to draw.
  history = [epoch_record(1, "val", 0.1), epoch_record(1, "val", 0.6)]
  epochs, values = plots._curves(history, "val", "culture_accuracy")
  assert epochs == [1] and values == [pytest.approx(0.65)]
  plots.save_training_curves(history, tmp_path / "c.png", ("culture", "medium", "period"))
  assert (tmp_path / "c.png").stat().st_size > 0
