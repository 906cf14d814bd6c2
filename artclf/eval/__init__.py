"""Evaluation: python -m artclf.evaluate --workdir=DIR --split=test

  evaluation    a loaded run on a split: report, calibration, pictures, --group_by, --select
  metrics       accuracies, balanced accuracy, F1, confusion matrices, all-tasks-correct
  calibration   per-head temperature scaling and calibration errors
  familiarity   how familiar a photo looks: Mahalanobis, energy, max probability; the flag
  groups        every metric per source, and the shortcut report
  linear_probe  class-balanced logistic regression (the frozen-feature baseline, shortcuts)
  plots         confusion heatmaps and training curves

Everything here works on arrays, or on a loaded run passed in (`artclf.run.trained`),
as big_vision's evaluators take a predict function: nothing imports the run package.
"""
