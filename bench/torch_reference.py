"""PyTorch reference of artclf's network and train step, for the benches only.

The network is built as `artclf.models.classifier.ArtClassifier` with `ModelSpec(heads=scheme_lib.DEFAULT.heads)` builds it:
  * Keras-layout ResNet50 v1: stride in the first 1x1 conv of a bottleneck and in the
    projection, every conv has a bias, BatchNorm eps 1e-3 (momentum 0.99 in Keras terms);
  * stem: 7x7 stride-2 conv (zero padding 3), BN, ReLU, 3x3 stride-2 max-pool (padding 1,
    which equals Keras' zero padding after a ReLU);
  * squeeze-and-excitation on the last feature map (ratio 16), global average pooling,
    three Linear(2048, 3) heads (culture, medium, period).
Like artclf's default (`ModelSpec.freeze_bn_stats=True`), the train step keeps BatchNorm
on its running statistics while the BN scale and offset still train.

Inputs arrive as NHWC float32 arrays, as artclf takes them; `images_from_nhwc` turns them
into NCHW tensors in channels_last memory (a free view of NHWC data), which is also the
memory format the model is kept in: the fastest oneDNN path for convolutions on CPU.

PyTorch is a bench-only dependency (never in requirements.txt).
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from artclf import scheme as scheme_lib

# The default label scheme (artclf.scheme imports nothing heavy, so the torch worker can use it).
TASKS = scheme_lib.DEFAULT.tasks
NUM_CLASSES = scheme_lib.DEFAULT.num_classes("culture")
BN_EPSILON = 1e-3
BN_MOMENTUM = 0.01  # Keras momentum 0.99 in PyTorch's convention.
MEMORY_FORMAT = torch.channels_last


def use_all_cores() -> None:
  """One intra-op thread per CPU core."""
  torch.set_num_threads(os.cpu_count())


def _batch_norm(features: int) -> nn.BatchNorm2d:
  return nn.BatchNorm2d(features, eps=BN_EPSILON, momentum=BN_MOMENTUM)


class Bottleneck(nn.Module):
  """ResNet v1 bottleneck, Keras layout: 1x1 (stride) -> 3x3 -> 1x1, identity or projection."""

  def __init__(self, in_features: int, width: int, stride: int):
    super().__init__()
    out_features = 4 * width
    self.conv_a = nn.Conv2d(in_features, width, 1, stride=stride, bias=True)
    self.bn_a = _batch_norm(width)
    self.conv_b = nn.Conv2d(width, width, 3, padding=1, bias=True)
    self.bn_b = _batch_norm(width)
    self.conv_c = nn.Conv2d(width, out_features, 1, bias=True)
    self.bn_c = _batch_norm(out_features)
    if stride != 1 or in_features != out_features:
      self.projection = nn.Sequential(
          nn.Conv2d(in_features, out_features, 1, stride=stride, bias=True),
          _batch_norm(out_features))
    else:
      self.projection = None

  def forward(self, x):
    y = F.relu(self.bn_a(self.conv_a(x)))
    y = F.relu(self.bn_b(self.conv_b(y)))
    y = self.bn_c(self.conv_c(y))
    shortcut = x if self.projection is None else self.projection(x)
    return F.relu(y + shortcut)


class ResNet50Trunk(nn.Module):
  """Keras-layout ResNet50 v1 feature extractor: [B, 3, H, W] -> [B, 2048, H/32, W/32]."""

  def __init__(self, stage_sizes=(3, 4, 6, 3), width: int = 64):
    super().__init__()
    self.stem_conv = nn.Conv2d(3, width, 7, stride=2, padding=3, bias=True)
    self.stem_bn = _batch_norm(width)
    blocks = []
    in_features = width
    for stage_index, num_blocks in enumerate(stage_sizes):
      stage_width = width * 2 ** stage_index
      for block_index in range(num_blocks):
        stride = 2 if (block_index == 0 and stage_index > 0) else 1
        blocks.append(Bottleneck(in_features, stage_width, stride))
        in_features = 4 * stage_width
    self.blocks = nn.Sequential(*blocks)
    self.num_features = in_features

  def forward(self, x):
    x = F.relu(self.stem_bn(self.stem_conv(x)))
    x = F.max_pool2d(x, 3, stride=2, padding=1)
    return self.blocks(x)


class SqueezeExcite(nn.Module):
  """Channel gates in (0, 1) from the globally pooled features."""

  def __init__(self, features: int, ratio: int = 16):
    super().__init__()
    self.reduce = nn.Linear(features, features // ratio)
    self.expand = nn.Linear(features // ratio, features)

  def forward(self, x):
    squeezed = x.mean(dim=(2, 3))
    gates = torch.sigmoid(self.expand(F.relu(self.reduce(squeezed))))
    return x * gates[:, :, None, None]


class ArtClassifierReference(nn.Module):
  """Images -> {task: logits [B, 3]}: ResNet50 trunk, SE block, pooling, three heads."""

  def __init__(self):
    super().__init__()
    self.trunk = ResNet50Trunk()
    self.se = SqueezeExcite(self.trunk.num_features)
    self.heads = nn.ModuleDict(
        {task: nn.Linear(self.trunk.num_features, NUM_CLASSES) for task in TASKS})

  def forward(self, images):
    pooled = self.se(self.trunk(images)).mean(dim=(2, 3))
    return {task: head(pooled) for task, head in self.heads.items()}

  def train_with_frozen_bn_stats(self) -> "ArtClassifierReference":
    """Train mode, except BatchNorm, which normalises with its running statistics."""
    self.train()
    for module in self.modules():
      if isinstance(module, nn.BatchNorm2d):
        module.eval()
    return self


def images_from_nhwc(images: np.ndarray) -> torch.Tensor:
  """NHWC float32 array -> NCHW tensor in channels_last memory (no copy)."""
  return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(memory_format=MEMORY_FORMAT)


def build_model() -> ArtClassifierReference:
  return ArtClassifierReference().to(memory_format=MEMORY_FORMAT)


def make_train_step(model: ArtClassifierReference, learning_rate: float = 1e-4):
  """A train step: forward, summed cross-entropy of the three heads, backward, Adam."""
  model.train_with_frozen_bn_stats()
  optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)

  def train_step(images: torch.Tensor, labels: dict[str, torch.Tensor]) -> torch.Tensor:
    optimizer.zero_grad(set_to_none=True)
    logits = model(images)
    loss = sum(F.cross_entropy(logits[task], labels[task]) for task in TASKS)
    loss.backward()
    optimizer.step()
    return loss.detach()

  return train_step


def _precision(precision: str):
  """The inference context of `precision`: 'float32', or 'bfloat16' (CPU autocast: bf16
  convolutions and matrix products through oneDNN, AMX or AVX512-BF16 where the CPU has them)."""
  if precision not in ("float32", "bfloat16"):
    raise ValueError(f"unknown precision {precision!r}: use float32 or bfloat16")
  return torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bfloat16")


def make_predict(model: ArtClassifierReference, precision: str = "float32"):
  """Eval-mode forward with softmax probabilities per head."""
  model.eval()

  def predict(images: torch.Tensor) -> dict[str, torch.Tensor]:
    with torch.inference_mode(), _precision(precision):
      return {task: torch.softmax(logits.float(), dim=-1) for task, logits in model(images).items()}

  return predict


def make_features(model: ArtClassifierReference, precision: str = "float32"):
  """Eval-mode trunk with global average pooling: what the feature cache computes."""
  model.eval()

  def features(images: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode(), _precision(precision):
      return model.trunk(images).float().mean(dim=(2, 3))

  return features
