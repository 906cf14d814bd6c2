"""How long `python -m artclf.adapt` takes for 100 new photographs, beyond their features.

  python -m bench.adapt --workdir=checkpoints/cpu_quick [--photos=100]

Takes --photos photographs of the run's test split (their labels as the corrections;
absolute paths in a CSV written to a temporary folder, nothing copied), computes their
frozen-stage features first (timed apart: the per-photograph store keeps them), then
adapts the run with them into a temporary folder and prints the split of the time (the
progress stages of `artclf.adapt.adapter.adapt`), the total beyond the features (issue
24's target: at most 60 s on a 2-core CPU) and the CPU it ran on.
"""

from __future__ import annotations

import pathlib
import platform
import tempfile
import time

from absl import app, flags

from artclf import runtime

_WORKDIR = flags.DEFINE_string("workdir", None, "The base run.", required=True)
_PHOTOS = flags.DEFINE_integer("photos", 100, "How many photographs to adapt with.")
_SPLIT = flags.DEFINE_string("split", "test", "Where the photographs come from.")


def cpu_name() -> str:
  try:
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
      if line.startswith("model name"):
        return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or "unknown CPU"


def write_csv(folder: pathlib.Path, trained, data_dir, split: str, count: int) -> pathlib.Path:
  """A corrections CSV of the first `count` records of `split` (absolute image paths)."""
  import json  # pylint: disable=import-outside-toplevel
  from artclf.data import dataset  # pylint: disable=import-outside-toplevel
  source = dataset.open_split(data_dir, split, max_examples=count)
  source_dir = pathlib.Path(json.loads(
      (pathlib.Path(data_dir) / dataset.FINGERPRINT_FILE).read_text())["source_dir"])
  labels = dataset.columns_of(source, trained.scheme.tasks)
  lines = ["image," + ",".join(trained.scheme.tasks)]
  for i in range(len(source)):
    image = source_dir / source[i]["image_path"].decode()
    lines.append(f"{image}," + ",".join(labels[t][i] for t in trained.scheme.tasks))
  path = folder / "corrections.csv"
  path.write_text("\n".join(lines) + "\n")
  return path


def main(argv) -> int:
  del argv
  runtime.configure()
  # pylint: disable=import-outside-toplevel  # these start JAX
  import numpy as np
  from artclf.adapt import adapter, corrections
  from artclf.data import dataset
  from artclf.run import trained as trained_lib
  trained = trained_lib.load(_WORKDIR.value)
  data_dir = dataset.ensure_built(trained.config.data)
  with tempfile.TemporaryDirectory() as folder:
    csv = write_csv(pathlib.Path(folder), trained, data_dir, _SPLIT.value, _PHOTOS.value)
    rows = corrections.read_corrections(csv, trained.scheme)
    start = time.perf_counter()
    frozen = adapter.frozen_features(trained, adapter.default_config())
    adapter.photo_rows(frozen, [r.image_bytes for r in rows.rows],
                       {t: np.zeros(len(rows), np.int32) for t in trained.scheme.tasks}, 1.0)
    features_s = time.perf_counter() - start
    stages = []
    start = time.perf_counter()
    adapter.adapt(trained.workdir, csv, pathlib.Path(folder) / "adapted",
                  progress=lambda message, fraction: stages.append((time.perf_counter(), message)))
    total = time.perf_counter() - start
  print(f"\nCPU: {cpu_name()}; {len(rows)} photographs")
  print(f"their features (once, before adapting): {features_s:.1f} s")
  times = [t for t, _ in stages] + [start + total]
  print(f"{'loading the base run and the corrections':<48} {stages[0][0] - start:6.1f} s")
  for (t, message), end in zip(stages, times[1:]):
    print(f"{message:<48} {end - t:6.1f} s")
  print(f"{'adapt beyond the photographs features (target <= 60 s)':<48} {total:6.1f} s")
  return 0


if __name__ == "__main__":
  app.run(main)
