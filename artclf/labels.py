"""The label scheme: three tasks, three classes each, defined once for the whole package."""

# Order matters: a label's index is its class id in every head, dataset and report.
TASKS = ("culture", "medium", "period")

CLASSES = {
    "culture": ("egyptian", "greek", "roman"),
    "medium": ("architecture", "painting", "sculpture"),
    "period": ("early", "middle", "late"),
}

# Class id stored for a label that is unknown (empty in labels.csv). Losses and
# metrics mask it out.
UNKNOWN = -1


def num_classes(task: str) -> int:
  return len(CLASSES[task])


def class_id(task: str, name: str) -> int:
  """Maps a label name ('' for unknown) to its class id; raises ValueError if unknown to the task."""
  name = name.strip().lower()
  if not name:
    return UNKNOWN
  try:
    return CLASSES[task].index(name)
  except ValueError:
    raise ValueError(
        f"unknown {task} label {name!r}; expected one of {', '.join(CLASSES[task])} or empty"
    ) from None


def class_name(task: str, idx: int) -> str:
  return "" if idx == UNKNOWN else CLASSES[task][idx]
