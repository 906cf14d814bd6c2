"""Images per second of the full ResNet50 train step, artclf against the PyTorch reference.

224 px, batch 32, float32, forward + backward + Adam, summed cross-entropy of the three
heads, through artclf's own jitted step (`artclf.train.steps`). The reference
(`bench/torch_reference.py`) runs in a child process (`bench/torch_worker.py`); by default
its repetitions come first, then its worker is closed and artclf's run
(`--protocol=interleaved` alternates them instead); medians are compared.

  PYTHONPATH=. python bench/train_step.py [--batch 32] [--repetitions 5] [--dtype float32]

Also prints the epoch time of frozen-trunk head training (configs/cpu_quick.py's phase 1).
"""

from __future__ import annotations

import argparse
import os
import time

from artclf import runtime

runtime.configure_xla_cpu()

import jax  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position
import optax  # pylint: disable=wrong-import-position
from flax import nnx  # pylint: disable=wrong-import-position

from artclf.models.classifier import ArtClassifier, ModelSpec  # pylint: disable=wrong-import-position
from artclf import mesh as mesh_lib  # pylint: disable=wrong-import-position
from artclf.train import optimizer, steps  # pylint: disable=wrong-import-position
from artclf import scheme as scheme_lib
from bench import common  # pylint: disable=wrong-import-position


def make_step(model: ArtClassifier, trainable: str, start_stage: int, learning_rate: float = 1e-4):
  """artclf's own jitted, sharded train step (artclf.train.steps) and its replicated state."""
  mesh = mesh_lib.make_mesh()
  schedule = optimizer.learning_rate_schedule(learning_rate, 100, 0.9)
  tx = optax.adam(schedule)
  is_trainable = optimizer.trainable_filter(trainable, model.num_stages)
  graphdef, state = steps.init_train_state(model, is_trainable, tx, jax.random.PRNGKey(0))
  step = steps.jit_train_step(
      mesh, graphdef=graphdef, tx=tx, schedule=schedule,
      task_weights={task: 1.0 for task in scheme_lib.DEFAULT.tasks}, class_weights=None,
      label_smoothing=0.0, start_stage=start_stage)
  return step, mesh_lib.put_replicated(state, mesh), mesh


class ArtclfTrainer:
  """Holds the artclf step's state between repetitions; `run()` does one blocking step."""

  def __init__(self, batch_size: int, compute_dtype: str = "float32", seed: int = 0):
    model = ArtClassifier(ModelSpec(heads=scheme_lib.DEFAULT.heads, compute_dtype=compute_dtype, dropout=0.0), rngs=nnx.Rngs(seed))
    self.step, self.state, mesh = make_step(model, "all", start_stage=0)
    images, labels = common.random_batch(batch_size, seed=seed)
    self.batch = mesh_lib.to_global({"image": images, **labels}, mesh)
    self.loss = None

  def compile(self) -> float:
    """Compiles the step ahead of time; returns the seconds it took."""
    start = time.perf_counter()
    self.step = self.step.lower(self.state, self.batch).compile()
    return time.perf_counter() - start

  def run(self) -> None:
    self.state, metrics = self.step(self.state, self.batch)
    self.loss = metrics["loss"]
    self.loss.block_until_ready()


def head_epoch_seconds(num_examples: int = 994, batch_size: int = 32) -> tuple[float, float]:
  """(compile s, s per epoch) of frozen-trunk head training on cached ResNet50 features.

  The shape of configs/cpu_quick.py's phase 1 on the shared set's 994 training images:
  SE block + three heads on [7, 7, 2048] features, trained by the same artclf step.
  """
  model = ArtClassifier(ModelSpec(heads=scheme_lib.DEFAULT.heads), rngs=nnx.Rngs(0))
  step, state, mesh = make_step(model, "heads", start_stage=model.num_stages, learning_rate=1e-3)
  rng = np.random.default_rng(0)
  features = rng.gamma(0.5, 1.0, (num_examples, 7, 7, 2048)).astype(np.float16)
  labels = {t: rng.integers(-1, 3, num_examples).astype(np.int32) for t in scheme_lib.DEFAULT.tasks}
  steps_per_epoch = num_examples // batch_size

  def batch(i):
    rows = slice(i * batch_size, (i + 1) * batch_size)
    return mesh_lib.to_global({"features": {"shared": features[rows].astype(np.float32)},
                               **{t: v[rows] for t, v in labels.items()}}, mesh)

  start = time.perf_counter()
  state, metrics = step(state, batch(0))
  metrics["loss"].block_until_ready()
  compile_seconds = time.perf_counter() - start
  start = time.perf_counter()
  for i in range(steps_per_epoch):
    state, metrics = step(state, batch(i))
  metrics["loss"].block_until_ready()
  return compile_seconds, time.perf_counter() - start


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch", type=int, default=32)
  parser.add_argument("--repetitions", type=int, default=5)
  parser.add_argument("--warmup", type=int, default=1)
  parser.add_argument("--dtype", default="float32", help="artclf compute dtype")
  parser.add_argument("--no-torch", action="store_true")
  parser.add_argument(
      "--protocol", choices=("sequential", "interleaved"), default="sequential",
      help="sequential: PyTorch's repetitions, its worker closed, then artclf's, so neither "
           "runs beside the other's idle process (on this 2-core machine an idle PyTorch "
           "worker that has run a train step slowed artclf's step by 10-30%%). interleaved: "
           "alternate repetitions, for a machine whose load changes during the run.")
  args = parser.parse_args()

  print(f"protocol {args.protocol}; jax {jax.__version__}, devices {jax.devices()}, XLA_FLAGS="
        f"{os.environ.get('XLA_FLAGS', '')!r}")
  seconds = {}
  if args.protocol == "sequential" and not args.no_torch:
    # PyTorch first, alone; its worker is closed before artclf builds anything.
    torch_worker = common.TorchWorker("train", args.batch)
    common.interleaved_seconds({"torch": torch_worker.runner()}, args.warmup)
    seconds = common.interleaved_seconds({"torch": torch_worker.runner()}, args.repetitions)
    torch_worker.close()
  artclf_trainer = ArtclfTrainer(args.batch, args.dtype)
  compile_seconds = artclf_trainer.compile()
  print(f"artclf compile: {compile_seconds:.1f} s")
  runners = {"artclf": artclf_trainer.run}
  torch_worker = None
  if args.protocol == "interleaved" and not args.no_torch:
    torch_worker = common.TorchWorker("train", args.batch)
    runners["torch"] = torch_worker.runner()
  common.interleaved_seconds(runners, args.warmup)
  seconds = {**common.interleaved_seconds(runners, args.repetitions), **seconds}
  images_per_second = {name: args.batch / common.median(s) for name, s in seconds.items()}
  for name, s in seconds.items():
    print(f"{name:7s} train step: {images_per_second[name]:6.2f} images/s "
          f"(median {common.median(s):.2f} s of {[round(x, 2) for x in s]})")
  if "torch" in images_per_second:
    print(f"ratio artclf/torch: {images_per_second['artclf'] / images_per_second['torch']:.2f}x")
  print(f"final artclf loss {float(artclf_trainer.loss):.4f}")
  if torch_worker is not None:
    torch_worker.close()
  compile_seconds, epoch_seconds = head_epoch_seconds()
  print(f"frozen-trunk head training (cached features, 994 images, batch 32): "
        f"{epoch_seconds:.2f} s per epoch (compile {compile_seconds:.1f} s)")


if __name__ == "__main__":
  main()
