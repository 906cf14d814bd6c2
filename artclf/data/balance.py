"""Class balance of a split: per-class counts, class weights, per-example sampling weights.

The shared set is 91% Egyptian, so the training code can weight the loss per
class (`class_weights`) and/or let the pipeline sample examples with
`sampling_weights` (see `artclf.data.pipeline`, `PipelineConfig.sampling`).
Label ids are a split's {task: [N] class ids} under a scheme (`artclf.scheme`); unknown
labels (UNKNOWN) are never counted.
"""

import numpy as np

from artclf import scheme as scheme_lib


def sampling_modes(scheme: scheme_lib.LabelScheme) -> tuple[str, ...]:
  """'uniform', 'product', or a task's name (that task's classes drawn equally often)."""
  return ("uniform", "product") + scheme.tasks


def class_counts(label_ids: dict[str, np.ndarray],
                 scheme: scheme_lib.LabelScheme) -> dict[str, np.ndarray]:
  """Task -> int64 [num_classes] count of each class, unknown ignored."""
  counts = {}
  for task in scheme.tasks:
    ids = np.asarray(label_ids[task])
    counts[task] = np.bincount(ids[ids >= 0], minlength=scheme.num_classes(task))
  return counts


def missing_classes(label_ids: dict[str, np.ndarray], scheme: scheme_lib.LabelScheme) -> list[str]:
  """'task=class' for every class of the scheme without a single labelled example."""
  counts = class_counts(label_ids, scheme)
  return [f"{task}={scheme.classes[task][i]}" for task in scheme.tasks
          for i in np.flatnonzero(counts[task] == 0)]


def check_every_task_labelled(label_ids: dict[str, np.ndarray], scheme: scheme_lib.LabelScheme,
                              split: str = "train", tasks=None) -> None:
  """Refuses a split in which a task (of `tasks`, default all) has no label at all (every
  row unknown), naming the task and the split."""
  counts = class_counts(label_ids, scheme)
  empty = [task for task in (tasks or scheme.tasks) if not counts[task].any()]
  if empty:
    raise ValueError(f"the {split} split has no {' or '.join(empty)} label at all (every row "
                     f"leaves {' and '.join(empty)} empty): label some of its images, or "
                     "leave the task out of the scheme")


def class_weights(counts: np.ndarray, *, power: float = 1.0, smoothing: float = 0.0,
                  max_weight: float | None = None) -> np.ndarray:
  """float32 [num_classes] weights from class counts: (count + smoothing) ** -power, mean 1.

  power=1 is inverse frequency, 0.5 its square root, 0 uniform. `smoothing` is
  added to every count first (pulls rare classes' weights down). The mean is 1
  over the classes that occur; a class with no example gets weight 0.
  `max_weight` (>= 1) caps the weights; the others are then scaled up so the
  mean stays 1 (repeated until no weight exceeds the cap).
  """
  counts = np.asarray(counts, dtype=np.float64)
  present = counts > 0
  if not present.any():
    raise ValueError("class_weights: every class count is zero")
  if max_weight is not None and max_weight < 1:
    raise ValueError(f"max_weight must be >= 1 to keep a mean of 1, got {max_weight}")
  weights = np.zeros_like(counts)
  weights[present] = (counts[present] + smoothing) ** -power
  weights[present] /= weights[present].mean()
  if max_weight is not None:
    for _ in range(len(counts)):  # Each round caps at least one more class.
      capped = weights >= max_weight
      if not (weights > max_weight + 1e-9).any():
        break
      weights[capped] = max_weight
      free = present & ~capped
      budget = present.sum() - max_weight * capped.sum()
      weights[free] *= budget / weights[free].sum()
  return weights.astype(np.float32)


def sampling_weights(label_ids: dict[str, np.ndarray], scheme: scheme_lib.LabelScheme,
                     mode: str, *, power: float = 1.0,
                     max_weight: float | None = None) -> np.ndarray:
  """float64 [N] probability of drawing each example, summing to 1.

  Modes:
    uniform  every example equally likely.
    <task>   (culture, say) proportional to the class weight of the example's label
             of that task, so each of its classes is drawn about equally often
             (power=1); examples whose label is unknown get weight 1 (the mean
             class weight).
    product  the product over every task of the example's class weights
             (unknown -> 1): rare classes of every task get drawn more. With
             power=1 the product over-corrects combinations of rare classes;
             power=0.5 (or a max_weight) is usually the better choice.
  """
  if mode not in sampling_modes(scheme):
    raise ValueError(f"sampling mode {mode!r} is not one of {', '.join(sampling_modes(scheme))}")
  n = len(label_ids[scheme.tasks[0]])
  weights = np.ones(n, dtype=np.float64)
  if mode != "uniform":
    tasks = scheme.tasks if mode == "product" else (mode,)
    check_every_task_labelled(label_ids, scheme, tasks=tasks)
    counts = class_counts(label_ids, scheme)
    for task in tasks:
      per_class = class_weights(counts[task], power=power, max_weight=max_weight)
      ids = np.asarray(label_ids[task])
      weights *= np.where(ids >= 0, per_class[np.maximum(ids, 0)], 1.0)
  return weights / weights.sum()
