"""Predict latency (batch 1) and throughput (batch 32) of ResNet50 at 224 px on this CPU,
and prediction over a whole collection of files (--collection=N).

Compares artclf's jitted `model(images)` + softmax (its BatchNorms on moving statistics are
folded into the convolutions, `artclf.models.ops.conv.conv_frozen_batch_norm`), `artclf.predict()` end
to end, and the PyTorch reference in eval mode under `torch.inference_mode()`, in float32
and with bf16 autocast (channels_last, one thread per core, each in a child process, see
`bench/torch_worker.py`); and the feature cache's work, the frozen trunk's pooled features,
against the reference's trunk in both precisions. Repetitions alternate between them so
that a load change on the machine hits all of them; medians are reported, under the CPU's
name and its bf16 flags.

  PYTHONPATH=. python bench/predict.py [--repetitions 5] [--latency-calls 5] \
      [--torch-python=/work/torchvenv/bin/python]

With --collection=N (2,000 or more), it copies N of the shared set's JPEGs (cycling) into
a temporary folder, makes a workdir holding the ImageNet-initialised cpu_quick model, and
runs two child processes under /usr/bin/time -v: the model's forward throughput on views
already in memory (the batch figure), and `python -m artclf.predict`'s streaming path over
the files, writing a CSV. It prints both images/s, their ratio and each peak RSS.

  PYTHONPATH=. python bench/predict.py --collection=2000
"""

from __future__ import annotations

import argparse
import os
import pathlib

from artclf import runtime

runtime.configure_xla_cpu()

import jax  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position
from flax import nnx  # pylint: disable=wrong-import-position

from artclf import mesh as mesh_lib  # pylint: disable=wrong-import-position
from artclf.models.classifier import ArtClassifier, ModelSpec  # pylint: disable=wrong-import-position
from artclf.run import forward  # pylint: disable=wrong-import-position
from artclf.serve.predict import predict  # pylint: disable=wrong-import-position
from artclf.run.trained import TrainedModel  # pylint: disable=wrong-import-position
from artclf import scheme as scheme_lib
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
  parser.add_argument("--torch-python", default=None,
                      help="a Python with torch (default $ARTCLF_TORCH_PYTHON, else this one)")
  parser.add_argument("--no-features", action="store_true",
                      help="leave out the feature-caching comparison (the trunk alone)")
  parser.add_argument("--dtype", default="float32", help="artclf compute dtype (bfloat16 on a GPU)")
  parser.add_argument("--collection", type=int, default=0, help="files for the collection run")
  parser.add_argument("--collection-child", choices=("memory", "stream"), help=argparse.SUPPRESS)
  parser.add_argument("--workdir", help=argparse.SUPPRESS)
  parser.add_argument("--folder", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.collection_child:
    return collection_child(args)
  if args.collection:
    return collection_bench(args)
  print(f"CPU: {common.cpu_description()}")
  print(f"jax {jax.__version__}, XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")
  latency_runners, batch_runners = artclf_runners(args)
  torch_workers = []
  if not args.no_torch:
    for precision, name in (("float32", "torch f32"), ("bfloat16", "torch bf16 autocast")):
      workers = [common.TorchWorker("predict", 1, precision, args.torch_python),
                 common.TorchWorker("predict", args.batch, precision, args.torch_python)]
      latency_runners[name] = workers[0].runner(args.latency_calls)
      batch_runners[name] = workers[1].runner(1)
      if not args.no_features:
        workers.append(common.TorchWorker("features", args.batch, precision, args.torch_python))
        batch_runners[f"{name} features"] = workers[2].runner(1)
      torch_workers += workers

  for runners in (latency_runners, batch_runners):  # warm-up: compiles, first-call setup
    common.interleaved_seconds(runners, 1)
  latency = common.interleaved_seconds(latency_runners, args.repetitions)
  throughput = common.interleaved_seconds(batch_runners, args.repetitions)
  images_per_second = {}
  for name in batch_runners:
    images_per_second[name] = args.batch / common.median(throughput[name])
    latency_ms = (f"{1000 * common.median(latency[name]) / args.latency_calls:7.1f} ms"
                  if name in latency else "      -   ")
    print(f"{name:30s} batch-1 latency {latency_ms}   "
          f"batch-{args.batch} throughput {images_per_second[name]:6.2f} images/s")
  for name, reference in (("artclf", "torch f32"), ("artclf.predict()", "torch f32"),
                          ("artclf.predict()", "torch bf16 autocast"),
                          ("artclf features", "torch f32 features"),
                          ("artclf features", "torch bf16 autocast features")):
    if name in images_per_second and reference in images_per_second:
      print(f"throughput ratio {name} / {reference}: "
            f"{images_per_second[name] / images_per_second[reference]:.2f}x")
  for worker in torch_workers:
    worker.close()


def artclf_runners(args) -> tuple[dict, dict]:
  """artclf's latency (batch 1) and batch runners: the jitted model, artclf.predict(), and
  (unless --no-features) the frozen trunk's pooled features as the feature cache runs it."""
  model = ArtClassifier(ModelSpec(heads=scheme_lib.DEFAULT.heads, compute_dtype=args.dtype),
                        rngs=nnx.Rngs(0))
  batch_images, _ = common.random_batch(args.batch, seed=2)
  single_image = batch_images[:1]

  def artclf_runner(images, calls):
    return lambda: [jax.block_until_ready(predict_probabilities(model, images))
                    for _ in range(calls)]

  latency_runners = {"artclf": artclf_runner(single_image, args.latency_calls)}
  batch_runners = {"artclf": artclf_runner(batch_images, 1)}
  # The public artclf.predict() end to end: 224 x 224 uint8 RGB arrays in, labels out
  # (resize, centre crop, normalisation and softmax included).
  trained = TrainedModel(model, config_common.base_config(), scheme_lib.DEFAULT,
                         batch_size=args.batch)
  rgb = np.random.default_rng(3).integers(0, 256, (args.batch, 224, 224, 3), dtype=np.uint8)
  latency_runners["artclf.predict()"] = lambda: [predict(rgb[0], model=trained)
                                                 for _ in range(args.latency_calls)]
  batch_runners["artclf.predict()"] = lambda: predict(list(rgb), model=trained)
  if not args.no_features:
    features = forward.jit_frozen_features(model, model.num_stages, mesh_lib.make_mesh())
    batch_runners["artclf features"] = lambda: jax.block_until_ready(
        features({"image": batch_images}))
  return latency_runners, batch_runners


# ---------------------------------------------------------------------------
# A whole collection: streaming prediction against the in-memory batch figure.


def collection_bench(args) -> None:
  import re  # pylint: disable=import-outside-toplevel
  import subprocess  # pylint: disable=import-outside-toplevel
  import sys  # pylint: disable=import-outside-toplevel
  import tempfile  # pylint: disable=import-outside-toplevel
  with tempfile.TemporaryDirectory() as tmp:
    root = pathlib.Path(tmp)
    workdir = make_workdir(root / "run")
    folder = copy_collection(root / "photos", args.collection)
    figures = {}
    for mode in ("memory", "stream"):
      result = subprocess.run(
          ["/usr/bin/time", "-v", sys.executable, __file__, f"--collection-child={mode}",
           f"--workdir={workdir}", f"--folder={folder}", f"--batch={args.batch}"],
          capture_output=True, text=True, check=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
      rate = float(re.search(r"RESULT ([0-9.]+)", result.stdout).group(1))
      rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr).group(1))
      figures[mode] = (rate, rss / 1024 ** 2)
      print(f"{mode:6s} {rate:6.2f} images/s   peak RSS {rss / 1024 ** 2:.2f} GiB")
    print(f"{args.collection} files: streaming at "
          f"{figures['stream'][0] / figures['memory'][0]:.0%} of the in-memory batch throughput")


ROOT = pathlib.Path(__file__).resolve().parents[1]


def make_workdir(workdir: pathlib.Path) -> pathlib.Path:
  """A workdir holding the cpu_quick model, ImageNet-initialised and untrained."""
  from artclf.train import checkpoints, trainer, workdir as workdir_lib  # pylint: disable=import-outside-toplevel
  from configs import cpu_quick  # pylint: disable=import-outside-toplevel
  config = workdir_lib.absolute_paths(cpu_quick.get_config())
  model = trainer.build_model(config)
  workdir.mkdir(parents=True)
  workdir_lib.save_config(workdir, config)
  manager = checkpoints.RunCheckpoints(workdir)
  manager.save_best(1, nnx.to_pure_dict(nnx.state(model)), {"bench": True})
  manager.wait()
  manager.close()
  return workdir


def copy_collection(folder: pathlib.Path, count: int) -> pathlib.Path:
  """`count` copies of the shared set's JPEGs, cycling through them."""
  import shutil  # pylint: disable=import-outside-toplevel
  shared = sorted((ROOT.parent / "shared" / "data" / "ancient_art" / "images").rglob("*.jpg"))
  folder.mkdir(parents=True)
  for i in range(count):
    shutil.copyfile(shared[i % len(shared)], folder / f"{i:05d}.jpg")
  return folder


def collection_child(args) -> None:
  import time  # pylint: disable=import-outside-toplevel
  from artclf.serve import collection  # pylint: disable=import-outside-toplevel
  from artclf.serve import predict as predict_lib  # pylint: disable=import-outside-toplevel
  files = collection.expand_inputs([args.folder])
  model = predict_lib.load_model(args.workdir)
  if args.collection_child == "memory":
    views = np.stack([model.view(predict_lib.read_input(f)) for f in files])
    model.probabilities(views[:args.batch])  # compile
    start = time.perf_counter()
    for i in range(0, len(views), args.batch):
      model.probabilities(views[i:i + args.batch])
    print(f"RESULT {len(views) / (time.perf_counter() - start):.3f}")
    return
  model.probabilities(np.zeros((args.batch, model.image_size, model.image_size, 3), np.uint8))
  start = time.perf_counter()
  with open(os.devnull, "w") as quiet:
    collection.run_cli([args.folder], args.workdir, output=f"{args.folder}.csv",
                       batch_size=args.batch, stream=quiet)
  print(f"RESULT {len(files) / (time.perf_counter() - start):.3f}")


if __name__ == "__main__":
  main()
