"""Runs the PyTorch reference in its own process, one job per request on stdin.

The benches time PyTorch through this worker rather than in their own process: in one
process, XLA's and PyTorch's (OpenMP) thread pools, each spinning after its work, slowed
the other (PyTorch batch-1 predict went from ~90 ms alone to ~1.6 s beside JAX).
Protocol: the worker prints 'ready' once built; for each line 'N' it runs N calls and prints
'done'. The parent measures the wall time around a request (pipe overhead is ~0.1 ms).

  python -m bench.torch_worker {train,predict,features} BATCH [float32|bfloat16]

It needs only torch, numpy and artclf.scheme, so it can run in a separate virtual
environment (`--torch-python` / $ARTCLF_TORCH_PYTHON, see bench/README.md).
"""

from __future__ import annotations

import sys

import torch

from bench import common, torch_reference


def main() -> None:
  mode, batch_size = sys.argv[1], int(sys.argv[2])
  precision = sys.argv[3] if len(sys.argv) > 3 else "float32"
  torch_reference.use_all_cores()
  torch.manual_seed(0)
  images, labels = common.random_batch(batch_size, seed=2)
  model = torch_reference.build_model()
  if mode == "train":
    step = torch_reference.make_train_step(model)
    image_tensor = torch_reference.images_from_nhwc(images)
    label_tensors = {task: torch.from_numpy(value).long() for task, value in labels.items()}
    run = lambda: step(image_tensor, label_tensors)
  elif mode in ("predict", "features"):
    make = torch_reference.make_predict if mode == "predict" else torch_reference.make_features
    apply = make(model, precision)
    run = lambda: apply(torch_reference.images_from_nhwc(images))
  else:
    raise SystemExit(f"unknown mode {mode!r}")
  print("ready", flush=True)
  for line in sys.stdin:
    for _ in range(int(line)):
      run()
    print("done", flush=True)


if __name__ == "__main__":
  main()
