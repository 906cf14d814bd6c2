"""Evaluation: python -m artclf.evaluate --workdir=DIR --split=test

  inference     the one batched forward loop (padding, sharding, gathering from hosts)
  evaluation    a trained model on a split: report, calibration, pictures, --group_by, --select
  metrics       accuracies, balanced accuracy, F1, confusion matrices, all-three-correct
  calibration   per-head temperature scaling and calibration errors
  familiarity   how familiar a photo looks: Mahalanobis, energy, max probability; the flag
  groups        every metric per source, and the shortcut report
  linear_probe  class-balanced logistic regression (the frozen-feature baseline, shortcuts)
  plots         confusion heatmaps and training curves
"""
