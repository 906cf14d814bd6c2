"""bfloat16 against float32 inference of a trained run on a split: agreement and accuracy.

  PYTHONPATH=. python bench/inference_dtype.py --workdir=checkpoints/cpu_quick [--split=test]

Loads the run's best weights twice, computing in float32 (as saved) and in bfloat16 (the
trunk's convolutions on bf16 inputs; parameters, pooling and heads stay float32), runs
the split's evaluation views through both, alternating batch by batch so that load on
the machine hits both alike, and prints: the share of images whose predicted label
agrees per task (issue 26's bar: at least 99.5%), each dtype's accuracy per task, the
familiarity scores' largest difference, and the seconds each took, under the CPU's name.
"""

from __future__ import annotations

import argparse
import time

from artclf import runtime

runtime.configure_xla_cpu()

import ml_collections  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position
from flax import nnx  # pylint: disable=wrong-import-position

from artclf.data import transforms  # pylint: disable=wrong-import-position
from artclf.eval import evaluation  # pylint: disable=wrong-import-position
from artclf.run import trained as trained_lib  # pylint: disable=wrong-import-position
from bench import common  # pylint: disable=wrong-import-position


def in_dtype(trained: trained_lib.TrainedModel, dtype: str) -> trained_lib.TrainedModel:
  """The same weights, computing in `dtype`."""
  config = ml_collections.ConfigDict(trained.config.to_dict())
  config.model.compute_dtype = dtype
  model = trained_lib.build_model(config, trained.scheme)
  nnx.update(model, nnx.state(trained.model))
  return trained_lib.TrainedModel(model, config, trained.scheme, trained.workdir,
                                  trained.temperatures, trained.batch_size,
                                  familiarity=trained.familiarity)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--split", default="test")
  parser.add_argument("--batch", type=int, default=32)
  args = parser.parse_args()
  print(f"CPU: {common.cpu_description()}")
  reference = trained_lib.load(args.workdir, batch_size=args.batch)
  models = {"float32": reference, "bfloat16": in_dtype(reference, "bfloat16")}
  records = evaluation.open_records(reference, args.split)
  load_rows = transforms.eval_view_loader(records.source, reference.augment)
  outputs = {name: [] for name in models}
  seconds = {name: 0.0 for name in models}
  for start in range(0, len(records), args.batch):
    views = load_rows(np.arange(start, min(start + args.batch, len(records))))["image"]
    for name, model in models.items():
      began = time.perf_counter()
      outputs[name].append(model.outputs(views, flip_tta=False))
      seconds[name] += time.perf_counter() - began  # the first batch includes compiling
  report(records, models, outputs, seconds)


def report(records, models, outputs, seconds) -> None:
  logits = {name: {task: np.concatenate([o["logits"][task] for o in outs])
                   for task in records.labels} for name, outs in outputs.items()}
  for task, labels in records.labels.items():
    predicted = {name: logits[name][task].argmax(-1) for name in models}
    known = labels >= 0
    agreement = np.mean(predicted["float32"] == predicted["bfloat16"])
    accuracy = {name: np.mean(p[known] == labels[known]) for name, p in predicted.items()}
    print(f"{task:10s} labels agree on {agreement:.2%} of {len(labels)} images; accuracy "
          f"float32 {accuracy['float32']:.4f}, bfloat16 {accuracy['bfloat16']:.4f}")
  scores = {}
  for name, model in models.items():
    pooled = {"pooled": np.concatenate([o["pooled"] for o in outputs[name]]),
              "logits": logits[name]}
    fam = model.familiarity_of(pooled)
    scores[name] = None if fam is None else fam[0]
  if scores["float32"] is not None:
    print(f"familiarity scores: largest difference "
          f"{np.max(np.abs(scores['float32'] - scores['bfloat16'])):.4g}")
  print("seconds (first batch compiles): " + ", ".join(
      f"{name} {value:.1f}" for name, value in seconds.items()))


if __name__ == "__main__":
  main()
