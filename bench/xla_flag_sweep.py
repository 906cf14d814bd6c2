"""Measures candidate XLA CPU flag sets for artclf: train step, inference, numerics.

Each flag set runs in a fresh process (XLA reads XLA_FLAGS once). A worker measures the
ResNet50 train step (batch 32) and jitted inference (batch 32) and saves logits of a fixed
batch; the parent compares those logits with the default-flag run (rtol 1e-4, atol 1e-3).

  PYTHONPATH=. python bench/xla_flag_sweep.py [--train-repetitions 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
from artclf import scheme as scheme_lib

CANDIDATES = {
    "default": "",
    # --xla_cpu_experimental_onednn_custom_call=true left the compiled HLO of a conv
    # unchanged on this AVX2 AMD CPU (no oneDNN custom call), so it is not measured.
    "ynn_off (Eigen convs/dots)": "--xla_cpu_experimental_ynn_fusion_type=",
    "ynn +eltwise": "--xla_cpu_experimental_ynn_fusion_type="
                    "individual_dot,individual_convolution,eltwise",
}


def worker(logits_path: str, train_repetitions: int) -> None:
  """Runs in the child process, under the XLA_FLAGS the parent set."""
  import jax  # pylint: disable=import-outside-toplevel
  from flax import nnx  # pylint: disable=import-outside-toplevel
  from artclf.models.classifier import ArtClassifier, ModelSpec  # pylint: disable=import-outside-toplevel
  from bench import common, train_step  # pylint: disable=import-outside-toplevel

  model = ArtClassifier(ModelSpec(heads=scheme_lib.DEFAULT.heads), rngs=nnx.Rngs(0))
  forward = jax.jit(lambda model, images: model(images))
  images, _ = common.random_batch(32, seed=1)
  logits = forward(model, images)
  np.savez(logits_path, **{k: np.asarray(v) for k, v in logits.items()})
  seconds = common.interleaved_seconds(
      {"infer": lambda: jax.block_until_ready(forward(model, images))}, 3)
  result = {"infer_images_per_s": 32 / common.median(seconds["infer"])}
  if train_repetitions:
    trainer = train_step.ArtclfTrainer(32)
    result["train_compile_s"] = trainer.compile()
    trainer.run()
    seconds.update(common.interleaved_seconds({"train": trainer.run}, train_repetitions))
    result["train_images_per_s"] = 32 / common.median(seconds["train"])
  print(json.dumps(result))


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--worker", help=argparse.SUPPRESS)
  parser.add_argument("--train-repetitions", type=int, default=1, help="0: inference only")
  parser.add_argument("--only", nargs="*", help="candidate names to run")
  args = parser.parse_args()
  if args.worker:
    worker(args.worker, args.train_repetitions)
    return
  results, reference = {}, None
  with tempfile.TemporaryDirectory() as tmp:
    for name, flags in CANDIDATES.items():
      if args.only and name not in args.only and name != "default":
        continue
      logits_path = os.path.join(tmp, f"{len(results)}.npz")
      env = dict(os.environ, XLA_FLAGS=flags)
      out = subprocess.run(
          [sys.executable, __file__, "--worker", logits_path,
           "--train-repetitions", str(args.train_repetitions)],
          env=env, capture_output=True, text=True, check=False)
      if out.returncode != 0:
        print(f"{name}: failed\n{out.stderr[-2000:]}", flush=True)
        continue
      result = json.loads(out.stdout.strip().splitlines()[-1])
      logits = dict(np.load(logits_path))
      reference = reference or logits
      result["logits_allclose"] = all(
          np.allclose(logits[k], reference[k], rtol=1e-4, atol=1e-3) for k in reference)
      result["max_abs_logit_diff"] = max(
          float(np.max(np.abs(logits[k] - reference[k]))) for k in reference)
      results[name] = result
      print(f"{name:28s} {flags!r}: " + ", ".join(
          f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in result.items()),
            flush=True)


if __name__ == "__main__":
  main()
