"""Speed of each ImageNet trunk inside artclf's network: full fine-tuning and prediction.

  PYTHONPATH=. python bench/trunks.py [--trunks=resnet50,efficientnet_lite0,efficientnet_lite2]

Per trunk, at its own input size (224, 224, 260 px): parameters; images/s of artclf's
jitted full fine-tuning step (every layer trainable, Adam, batch 16); images/s of the
jitted forward pass at batch 32; and the latency of one image (batch 1). Repetitions of the
trunks alternate (`common.interleaved_seconds`), so a change in the machine's load falls on
all of them alike; medians are printed.
"""

from __future__ import annotations

import argparse
import statistics

from artclf import runtime

runtime.configure_xla_cpu()

import jax  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position
from flax import nnx  # pylint: disable=wrong-import-position

from artclf import mesh as mesh_lib  # pylint: disable=wrong-import-position
from artclf.models.classifier import ArtClassifier, ModelSpec  # pylint: disable=wrong-import-position
from artclf import scheme as scheme_lib
from bench import common  # pylint: disable=wrong-import-position
from bench.train_step import make_step  # pylint: disable=wrong-import-position

SIZES = {"resnet50": 224, "efficientnet_lite0": 224, "efficientnet_lite2": 260}


def _pixels(batch: int, size: int, seed: int = 0) -> np.ndarray:
  return np.random.default_rng(seed).integers(0, 256, (batch, size, size, 3)).astype(np.float32)


def runners(trunk: str, train_batch: int, predict_batch: int) -> tuple[dict, int]:
  """({what: blocking callable}, parameter count) for one trunk, compiled."""
  size = SIZES[trunk]
  model = ArtClassifier(ModelSpec(heads=scheme_lib.DEFAULT.heads, trunk=trunk, dropout=0.0), rngs=nnx.Rngs(0))
  params = sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
  step, state, mesh = make_step(model, "all", start_stage=0)
  labels = {t: np.zeros(train_batch, np.int32) for t in common.TASKS}
  batch = mesh_lib.to_global({"image": _pixels(train_batch, size), **labels}, mesh)
  holder = {"state": state}

  def train():
    holder["state"], metrics = step(holder["state"], batch)
    metrics["loss"].block_until_ready()

  # A model of its own: the train step donates (deletes) the arrays it was given.
  graphdef, weights = nnx.split(ArtClassifier(ModelSpec(heads=scheme_lib.DEFAULT.heads, trunk=trunk, dropout=0.0), rngs=nnx.Rngs(0)))
  forward = jax.jit(lambda w, x: nnx.merge(graphdef, w)(x))
  many, one = _pixels(predict_batch, size, 1), _pixels(1, size, 2)

  def predict_many():
    jax.block_until_ready(forward(weights, many))

  def predict_one():
    jax.block_until_ready(forward(weights, one))

  for run in (train, predict_many, predict_one):  # compile outside the timed runs
    run()
  return {f"{trunk} train": train, f"{trunk} predict": predict_many,
          f"{trunk} latency": predict_one}, params


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument("--trunks", default="resnet50,efficientnet_lite0,efficientnet_lite2")
  parser.add_argument("--train-batch", type=int, default=16)
  parser.add_argument("--predict-batch", type=int, default=32)
  parser.add_argument("--repetitions", type=int, default=3)
  args = parser.parse_args()
  trunks = args.trunks.split(",")
  all_runners, params = {}, {}
  for trunk in trunks:
    found, params[trunk] = runners(trunk, args.train_batch, args.predict_batch)
    all_runners.update(found)
  seconds = common.interleaved_seconds(all_runners, args.repetitions)
  median = {name: statistics.median(values) for name, values in seconds.items()}
  print("| trunk | input | parameters | full fine-tuning images/s | predict images/s "
        f"(batch {args.predict_batch}) | batch-1 latency |")
  print("|---|---|---|---|---|---|")
  for trunk in trunks:
    print(f"| {trunk} | {SIZES[trunk]} px | {params[trunk] / 1e6:.1f} M | "
          f"{args.train_batch / median[f'{trunk} train']:.1f} | "
          f"{args.predict_batch / median[f'{trunk} predict']:.1f} | "
          f"{1000 * median[f'{trunk} latency']:.0f} ms |")


if __name__ == "__main__":
  main()
