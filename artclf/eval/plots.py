"""PNG figures for evaluation and training: confusion heatmaps and accuracy curves.

Figures are drawn on a plain `matplotlib.figure.Figure` with the Agg canvas, never
through pyplot, so nothing opens a window, no global figure state leaks, and
the caller's backend is left alone. Figures are saved at a fixed size
(figsize * dpi pixels, no tight bounding box) so that outputs are comparable.
"""

import json
import os
import warnings
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator


HEATMAP_FIGSIZE = (5.0, 4.5)
CURVES_FIGSIZE = (12.0, 3.6)
DPI = 100

# The two splits drawn per head, with their line styles.
_SPLIT_STYLES = {"train": dict(color="tab:blue", marker="o"),
                 "val": dict(color="tab:orange", marker="s")}


def _new_figure(figsize: tuple[float, float], dpi: int) -> Figure:
  fig = Figure(figsize=figsize, dpi=dpi, layout="constrained")
  FigureCanvasAgg(fig)
  return fig


def _save(fig: Figure, path: str | os.PathLike, dpi: int) -> None:
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.savefig(path, dpi=dpi, format="png")


def save_confusion_heatmap(matrix, class_names: Sequence[str], title: str,
                           path: str | os.PathLike, *, figsize=HEATMAP_FIGSIZE,
                           dpi: int = DPI) -> None:
  """Confusion matrix as a PNG: rows actual, columns predicted.

  Colours are row-normalised (each row's share, i.e. recall on the diagonal), so
  classes of different sizes are comparable; cells are annotated with the raw
  count and the row share.
  """
  matrix = np.asarray(matrix, dtype=np.int64)
  n = len(class_names)
  if matrix.shape != (n, n):
    raise ValueError(f"matrix {matrix.shape} does not match {n} class names")
  row_sums = matrix.sum(axis=1, keepdims=True)
  # A row without support is drawn as all zeros rather than NaN.
  shares = np.divide(matrix, row_sums, out=np.zeros(matrix.shape), where=row_sums > 0)

  fig = _new_figure(figsize, dpi)
  ax = fig.add_subplot()
  image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
  fig.colorbar(image, ax=ax, label="share of actual class")
  ax.set_xticks(range(n), labels=class_names)
  ax.set_yticks(range(n), labels=class_names)
  ax.set_xlabel("predicted")
  ax.set_ylabel("actual")
  ax.set_title(title)
  for i in range(n):
    for j in range(n):
      # Dark text on light cells, light text on dark ones.
      color = "white" if shares[i, j] > 0.5 else "black"
      ax.text(j, i, f"{matrix[i, j]}\n{100 * shares[i, j]:.0f}%", ha="center", va="center",
              color=color, fontsize=9)
  _save(fig, path, dpi)


def load_history(jsonl_path: str | os.PathLike) -> list[dict[str, Any]]:
  """Per-epoch records from a training JSONL log, in file order.

  An epoch record is a JSON object with an "epoch" and a "split" key; other
  records (per-step records, config dumps, ...) are skipped. A truncated last
  line (the writer was interrupted or is still writing) is skipped silently;
  any other line that is not valid JSON is skipped with a warning.
  """
  with open(jsonl_path, encoding="utf-8") as f:
    lines = f.read().splitlines()
  while lines and not lines[-1].strip():
    lines.pop()
  records, bad_lines = [], []
  for number, line in enumerate(lines, start=1):
    if not line.strip():
      continue
    try:
      record = json.loads(line)
    except json.JSONDecodeError:
      if number != len(lines):
        bad_lines.append(number)
      continue
    if isinstance(record, dict) and "epoch" in record and "split" in record:
      records.append(record)
  if bad_lines:
    warnings.warn(f"{jsonl_path}: skipped lines that are not valid JSON: {bad_lines}")
  return records


def _curves(history: Iterable[Mapping[str, Any]], split: str,
            key: str) -> tuple[list[float], list[float]]:
  """(epochs, values) of one metric on one split; a later record for an epoch wins."""
  by_epoch = {}
  for record in history:
    if record.get("split") == split and record.get(key) is not None:
      by_epoch[record["epoch"]] = float(record[key])
  epochs = sorted(by_epoch)
  return epochs, [by_epoch[e] for e in epochs]


def save_training_curves(history: Iterable[Mapping[str, Any]], path: str | os.PathLike,
                         tasks: Sequence[str], *, figsize=CURVES_FIGSIZE, dpi: int = DPI) -> None:
  """Training and validation accuracy per head per epoch (one panel per head) as a PNG.

  `history` is a list of per-epoch records as returned by `load_history`,
  reading "<task>_accuracy" from records with split "train" and "val".
  """
  history = list(history)
  fig = _new_figure(figsize, dpi)
  axes = fig.subplots(1, len(tasks), sharey=True, squeeze=False)[0]
  for ax, task in zip(axes, tasks):
    for split, style in _SPLIT_STYLES.items():
      epochs, values = _curves(history, split, f"{task}_accuracy")
      if epochs:
        ax.plot(epochs, values, label=split, markersize=3, **style)
    ax.set_title(task)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(0.0, 1.0)
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
      ax.legend(loc="lower right")
  axes[0].set_ylabel("accuracy")
  _save(fig, path, dpi)


def save_shot_curves(curves: Mapping[str, Mapping[int, tuple[float, float]]], path,
                     ylabel: str = "mean balanced accuracy", title: str = "",
                     figsize: tuple[float, float] = (6.0, 4.0), dpi: int = DPI) -> None:
  """One line per source: {name: {k: (mean, spread)}} against k, error bars the spread."""
  fig = _new_figure(figsize, dpi)
  ax = fig.add_subplot(1, 1, 1)
  for name, points in curves.items():
    ks = sorted(points)
    means = [100 * points[k][0] for k in ks]
    spreads = [100 * points[k][1] for k in ks]
    style = dict(color="black", linewidth=2.5) if name == "mean" else dict(linewidth=1.2)
    ax.errorbar(ks, means, yerr=spreads, marker="o", capsize=3, label=name, **style)
  ax.set_xlabel("labelled photos per class from the held-out source (k)")
  ax.set_ylabel(f"{ylabel} (%)")
  ax.set_ylim(0, 100)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  if title:
    ax.set_title(title, fontsize=10)
  _save(fig, path, dpi)
