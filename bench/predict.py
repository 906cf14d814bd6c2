"""Predict latency (batch 1) and throughput (batch 32) of ResNet50 at 224 px on this CPU.

Compares artclf's jitted `model(images)` + softmax (its BatchNorms on moving statistics are
folded into the convolutions, `artclf.models.ops.conv.conv_frozen_batch_norm`), `artclf.predict()` end
to end, and the PyTorch reference in eval mode under `torch.inference_mode()` (in a child
process, see `bench/torch_worker.py`). Repetitions alternate between them so that a
load change on the machine hits all of them; medians are reported.

  PYTHONPATH=. python bench/predict.py [--repetitions 5] [--latency-calls 5]
"""

from __future__ import annotations

import argparse
import os

from artclf import runtime

runtime.configure_xla_cpu()

import jax  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position
from flax import nnx  # pylint: disable=wrong-import-position

from artclf.models.classifier import ArtClassifier, ModelSpec  # pylint: disable=wrong-import-position
from artclf.serve.predict import predict  # pylint: disable=wrong-import-position
from artclf.serve.trained_model import TrainedModel  # pylint: disable=wrong-import-position
from bench import common  # pylint: disable=wrong-import-position
from configs import common as config_common  # pylint: disable=wrong-import-position


@jax.jit
def predict_probabilities(model, images):
  return {task: jax.nn.softmax(logits, axis=-1) for task, logits in model(images).items()}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch", type=int, default=32)
  parser.add_argument("--repetitions", type=int, default=5)
  parser.add_argument("--latency-calls", type=int, default=5, help="batch-1 calls per repetition")
  parser.add_argument("--no-torch", action="store_true")
  args = parser.parse_args()
  print(f"jax {jax.__version__}, XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")

  model = ArtClassifier(ModelSpec(), rngs=nnx.Rngs(0))
  batch_images, _ = common.random_batch(args.batch, seed=2)
  single_image = batch_images[:1]

  def artclf_runner(images, calls):
    return lambda: [jax.block_until_ready(predict_probabilities(model, images))
                    for _ in range(calls)]

  latency_runners = {"artclf": artclf_runner(single_image, args.latency_calls)}
  batch_runners = {"artclf": artclf_runner(batch_images, 1)}
  # The public artclf.predict() end to end: 224 x 224 uint8 RGB arrays in, labels out
  # (resize, centre crop, normalisation and softmax included).
  trained = TrainedModel(model, config_common.base_config(), batch_size=args.batch)
  rgb = np.random.default_rng(3).integers(0, 256, (args.batch, 224, 224, 3), dtype=np.uint8)
  latency_runners["artclf.predict()"] = lambda: [predict(rgb[0], model=trained)
                                                 for _ in range(args.latency_calls)]
  batch_runners["artclf.predict()"] = lambda: predict(list(rgb), model=trained)
  torch_workers = []
  if not args.no_torch:
    torch_workers = [common.TorchWorker("predict", 1), common.TorchWorker("predict", args.batch)]
    latency_runners["torch"] = torch_workers[0].runner(args.latency_calls)
    batch_runners["torch"] = torch_workers[1].runner(1)

  for runners in (latency_runners, batch_runners):  # warm-up: compiles, first-call setup
    common.interleaved_seconds(runners, 1)
  latency = common.interleaved_seconds(latency_runners, args.repetitions)
  throughput = common.interleaved_seconds(batch_runners, args.repetitions)
  images_per_second = {}
  for name in batch_runners:
    latency_ms = 1000 * common.median(latency[name]) / args.latency_calls
    images_per_second[name] = args.batch / common.median(throughput[name])
    print(f"{name:17s} batch-1 latency {latency_ms:7.1f} ms   "
          f"batch-{args.batch} throughput {images_per_second[name]:6.2f} images/s")
  if "torch" in images_per_second:
    for name in ("artclf", "artclf.predict()"):
      print(f"throughput ratio {name}/torch: "
            f"{images_per_second[name] / images_per_second['torch']:.2f}x")
  for worker in torch_workers:
    worker.close()


if __name__ == "__main__":
  main()
