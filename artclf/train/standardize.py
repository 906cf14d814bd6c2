"""config.model.standardize: the heads' feature statistics, set once before the first phase.

The pooled final trunk features of the training views give each net's mean and standard
deviation (`ArtClassifier.set_feature_statistics`). A phase on a cache of the whole trunk
has them already; otherwise the training split's evaluation views go through the trunk
once, through the one inference loop.
"""

from __future__ import annotations

import numpy as np
from absl import logging

from artclf import inference
from artclf.data import dataset, transforms
from artclf.run import forward


def pooled_training_features(model, data, config, train: dataset.LabelledSplit, mesh,
                             local_batch_size: int) -> dict[str, np.ndarray]:
  """{net name: [rows, D]} pooled final trunk features of the training images."""
  pooled = data.train_pooled()
  if pooled is not None:
    return pooled
  apply = forward.jit_frozen_features(model, model.num_stages, mesh)
  maps = inference.forward_rows(
      apply, transforms.eval_view_loader(train.source, transforms.from_config(config.data.augment)),
      len(train), local_batch_size, mesh, output_dtype=np.float32,
      what="pooling training features for model.standardize")
  return {name: np.asarray(m, np.float32).mean(axis=(1, 2)) for name, m in maps.items()}


def set_statistics(model, data, config, train: dataset.LabelledSplit, mesh,
                   local_batch_size: int) -> None:
  pooled = pooled_training_features(model, data, config, train, mesh, local_batch_size)
  model.set_feature_statistics(pooled)
  logging.info("Standardising the heads' input from %d training vectors",
               len(next(iter(pooled.values()))))
