"""Images per second of the full ResNet50 train step, artclf against the PyTorch reference.

224 px, batch 32, float32, forward + backward + Adam, summed cross-entropy of the three
heads. artclf and the reference (`bench/torch_reference.py`, run in a child process by
`bench/torch_worker.py`) alternate repetitions in one
run and the medians are compared, so that a load change on the machine hits both.

  PYTHONPATH=. python bench/train_step.py [--batch 32] [--repetitions 5] [--dtype float32]
"""

from __future__ import annotations

import argparse
import functools
import time

from artclf import runtime

runtime.configure_xla_cpu()

import jax  # pylint: disable=wrong-import-position
import jax.numpy as jnp  # pylint: disable=wrong-import-position
import optax  # pylint: disable=wrong-import-position
from flax import nnx  # pylint: disable=wrong-import-position

from artclf import labels as artclf_labels  # pylint: disable=wrong-import-position
from artclf.model import ArtClassifier, ModelSpec  # pylint: disable=wrong-import-position
from bench import common  # pylint: disable=wrong-import-position


def summed_cross_entropy(logits: dict, labels: dict) -> jax.Array:
  """Mean cross-entropy over the batch, summed over the three heads."""
  return sum(optax.softmax_cross_entropy_with_integer_labels(logits[task], labels[task]).mean()
             for task in artclf_labels.TASKS)


def make_bench_step(model: ArtClassifier, tx: optax.GradientTransformation):
  """A pure, jitted train step and its initial state.

  Returns `(step, params, opt_state, rest)` where
  `step(params, opt_state, rest, images, labels) -> (params, opt_state, loss)`; params and
  optimizer state are donated, so the step updates them in place. `rest` (BatchNorm
  statistics, RNG state) is read only: with `ModelSpec.freeze_bn_stats` the trunk's
  BatchNorm runs on its moving statistics in train mode too.
  """
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)

  def loss_fn(params, rest, images, labels):
    model = nnx.merge(graphdef, params, rest)
    return summed_cross_entropy(model(images, train=True), labels)

  @functools.partial(jax.jit, donate_argnums=(0, 1))
  def step(params, opt_state, rest, images, labels):
    loss, grads = jax.value_and_grad(loss_fn)(params, rest, images, labels)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  return step, params, tx.init(params), rest


class ArtclfTrainer:
  """Holds the artclf step's state between repetitions; `run()` does one blocking step."""

  def __init__(self, batch_size: int, compute_dtype: str = "float32", seed: int = 0):
    model = ArtClassifier(ModelSpec(compute_dtype=compute_dtype), rngs=nnx.Rngs(seed))
    self.step, self.params, self.opt_state, self.rest = make_bench_step(model, optax.adam(1e-4))
    images, labels = common.random_batch(batch_size, seed=seed)
    self.images = jax.device_put(images)
    self.labels = jax.device_put(labels)
    self.loss = None

  def compile(self) -> float:
    """Compiles the step ahead of time; returns the seconds it took."""
    start = time.perf_counter()
    self.step = self.step.lower(
        self.params, self.opt_state, self.rest, self.images, self.labels).compile()
    return time.perf_counter() - start

  def run(self) -> None:
    self.params, self.opt_state, self.loss = self.step(
        self.params, self.opt_state, self.rest, self.images, self.labels)
    self.loss.block_until_ready()


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch", type=int, default=32)
  parser.add_argument("--repetitions", type=int, default=5)
  parser.add_argument("--warmup", type=int, default=1)
  parser.add_argument("--dtype", default="float32", help="artclf compute dtype")
  parser.add_argument("--no-torch", action="store_true")
  args = parser.parse_args()

  print(f"jax {jax.__version__}, devices {jax.devices()}, XLA_FLAGS="
        f"{__import__('os').environ.get('XLA_FLAGS', '')!r}")
  artclf_trainer = ArtclfTrainer(args.batch, args.dtype)
  compile_seconds = artclf_trainer.compile()
  print(f"artclf compile: {compile_seconds:.1f} s")
  runners = {"artclf": artclf_trainer.run}
  if not args.no_torch:
    torch_worker = common.TorchWorker("train", args.batch)
    runners["torch"] = torch_worker.runner()
  common.interleaved_seconds(runners, args.warmup)
  seconds = common.interleaved_seconds(runners, args.repetitions)
  images_per_second = {name: args.batch / common.median(s) for name, s in seconds.items()}
  for name, s in seconds.items():
    print(f"{name:7s} train step: {images_per_second[name]:6.2f} images/s "
          f"(median {common.median(s):.2f} s of {[round(x, 2) for x in s]})")
  if "torch" in images_per_second:
    print(f"ratio artclf/torch: {images_per_second['artclf'] / images_per_second['torch']:.2f}x")
  print(f"final artclf loss {float(artclf_trainer.loss):.4f}")
  if not args.no_torch:
    torch_worker.close()


if __name__ == "__main__":
  main()
