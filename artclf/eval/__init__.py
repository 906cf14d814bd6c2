"""Evaluation: python -m artclf.evaluate --workdir=DIR --split=test

  inference    the one batched forward loop (padding, sharding, gathering from hosts)
  evaluation   a trained model on a split: report, calibration, pictures
  metrics      accuracies, balanced accuracy, F1, confusion matrices, all-three-correct
  calibration  per-head temperature scaling and calibration errors
  plots        confusion heatmaps and training curves
"""
