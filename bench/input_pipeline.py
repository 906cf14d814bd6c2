"""Throughput of the training input pipeline (decode + augment + batch, 224 px) on the shared set.

  python bench/input_pipeline.py [--source_dir=...] [--data_dir=...] [--batches=40]

Builds the TFDS dataset first (into a temporary folder unless --data_dir holds
a build), then measures, in one run:
  * the grain training pipeline with 0, 1 and 2 worker processes;
  * `preprocess_example` called in a plain loop (no grain), same output;
  * a plain Pillow loop doing the same work the straightforward way (crop +
    resize, rotate, flip, ImageEnhance brightness/contrast, float caffe
    normalisation), as the baseline.
Each timing skips warm-up batches (worker start-up, imports) first.
"""

import io
import math
import os
import pathlib
import sys
import tempfile
import time

from absl import app, flags
import numpy as np
from PIL import Image, ImageEnhance, ImageOps

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

# pylint: disable=g-import-not-at-top,wrong-import-position
from artclf.data import pipeline, tfds_builder, transforms
# pylint: enable=g-import-not-at-top,wrong-import-position

_SOURCE_DIR = flags.DEFINE_string(
    "source_dir", str(pathlib.Path(__file__).resolve().parents[2] / "shared/data/ancient_art"),
    "labels.csv folder to build from.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Existing build (default: build to a temp dir).")
_BATCHES = flags.DEFINE_integer("batches", 40, "Batches timed per configuration.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 32, "Images per batch.")
_WARMUP = flags.DEFINE_integer("warmup", 3, "Batches skipped before timing.")


def _process_tree_cpu_seconds() -> float:
  """CPU seconds (user + system) used so far by this process and its live descendants.

  The machine's cores may be shared with other jobs, so wall-clock images/s
  varies; images per CPU-second is the per-core rate that contention does not
  change. Reads /proc (Linux).
  """
  tick = os.sysconf("SC_CLK_TCK")
  parent_of, cpu_of = {}, {}
  for entry in os.listdir("/proc"):
    if not entry.isdigit():
      continue
    try:
      with open(f"/proc/{entry}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
      continue  # The process ended meanwhile.
    parent_of[int(entry)] = int(fields[1])
    cpu_of[int(entry)] = (int(fields[11]) + int(fields[12])) / tick
  tree = {os.getpid()}
  for _ in range(4):  # Workers are children or grandchildren.
    tree |= {pid for pid, parent in parent_of.items() if parent in tree}
  return sum(cpu_of.get(pid, 0.0) for pid in tree)


def _time_pipeline(source, worker_count: int) -> tuple[float, float]:
  """Images/s of the grain pipeline, and images per CPU-second of all its processes."""
  config = pipeline.PipelineConfig(batch_size=_BATCH_SIZE.value, worker_count=worker_count,
                                   read_threads=0)
  iterator = iter(pipeline.make_dataset(source, train=True, config=config,
                                        shard_index=0, shard_count=1))
  try:
    for _ in range(_WARMUP.value):
      next(iterator)
    start, cpu_start = time.perf_counter(), _process_tree_cpu_seconds()
    for _ in range(_BATCHES.value):
      batch = next(iterator)
      assert batch["image"].shape[1:] == (224, 224, 3)
    elapsed, cpu = time.perf_counter() - start, _process_tree_cpu_seconds() - cpu_start
  finally:
    if hasattr(iterator, "close"):
      iterator.close()
  images = _BATCHES.value * _BATCH_SIZE.value
  return images / elapsed, images / cpu


def _time_loop(records, view_fn) -> tuple[float, float]:
  """Images/s and images per CPU-second of view_fn over the records in batches, no grain."""
  batch_size = _BATCH_SIZE.value
  def run(num_batches, offset):
    for b in range(num_batches):
      views = [view_fn(records[(offset + b * batch_size + i) % len(records)], b * batch_size + i)
               for i in range(batch_size)]
      batch = np.stack(views)
      assert batch.shape[1:] == (224, 224, 3) and batch.dtype == np.float32
  run(_WARMUP.value, 0)
  start, cpu_start = time.perf_counter(), time.process_time()
  run(_BATCHES.value, _WARMUP.value * batch_size)
  images = _BATCHES.value * batch_size
  return images / (time.perf_counter() - start), images / (time.process_time() - cpu_start)


def _pillow_baseline_view(image_bytes: bytes, index: int) -> np.ndarray:
  """The same augmentations written the straightforward Pillow way."""
  rng = np.random.default_rng([0, 0, index])
  image = ImageOps.exif_transpose(Image.open(io.BytesIO(image_bytes))).convert("RGB")
  width, height = image.size
  short = min(width, height)
  area = rng.uniform(0.35, 1.35)
  aspect = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
  crop_w = short * math.sqrt(area * aspect)
  crop_h = short * math.sqrt(area / aspect)
  left = rng.uniform(min(0, width - crop_w), max(0, width - crop_w))
  top = rng.uniform(min(0, height - crop_h), max(0, height - crop_h))
  image = image.crop((round(left), round(top), round(left + crop_w), round(top + crop_h)))
  image = image.resize((224, 224), Image.Resampling.BILINEAR)
  image = image.rotate(rng.uniform(-10, 10), Image.Resampling.BILINEAR,
                       fillcolor=transforms.IMAGENET_MEAN_RGB)
  if rng.random() < 0.5:
    image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
  image = ImageEnhance.Brightness(image).enhance(rng.uniform(0.8, 1.2))
  image = ImageEnhance.Contrast(image).enhance(rng.uniform(0.8, 1.2))
  bgr = np.asarray(image, dtype=np.float32)[..., ::-1]
  return bgr - transforms.CAFFE_MEAN_BGR


def main(argv):
  del argv
  if _DATA_DIR.value:
    _bench(_DATA_DIR.value)
    return
  with tempfile.TemporaryDirectory(prefix="ancient_art_bench_") as data_dir:
    start = time.perf_counter()
    tfds_builder.build(_SOURCE_DIR.value, data_dir)
    print(f"build of {_SOURCE_DIR.value}: {time.perf_counter() - start:.1f} s")
    _bench(data_dir)


def _bench(data_dir):
  cores = os.cpu_count()
  source = tfds_builder.open_split(data_dir, "train")
  print(f"train split: {len(source)} records; {cores} CPU cores; "
        f"{_BATCHES.value} x {_BATCH_SIZE.value} images timed per line")

  print("images/s is wall-clock (other jobs on the machine lower it); images per CPU-second")
  print("counts the CPU time of every process of the pipeline: the per-core rate.")
  for worker_count in (0, 1, 2):
    rate, per_cpu_second = _time_pipeline(source, worker_count)
    print(f"grain pipeline, {worker_count} workers:    {rate:7.1f} images/s, "
          f"{per_cpu_second:7.1f} images per CPU-second")

  records = [source[i]["image"] for i in range(len(source))]
  rate, per_cpu_second = _time_loop(records, lambda data, i: transforms.preprocess_example(
      data, train=True, seed=0, epoch=0, index=i))
  print(f"preprocess_example loop (no grain): {rate:7.1f} images/s, "
        f"{per_cpu_second:7.1f} images per CPU-second")
  rate, per_cpu_second = _time_loop(records, _pillow_baseline_view)
  print(f"plain Pillow baseline loop:         {rate:7.1f} images/s, "
        f"{per_cpu_second:7.1f} images per CPU-second")


if __name__ == "__main__":
  app.run(main)
