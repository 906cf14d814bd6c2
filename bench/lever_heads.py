"""The heads of bench/source_levers.py: cpu_quick's heads on pooled features, with levers.

Losses, class weights, optimiser and schedule are the library's own (artclf.train.losses,
artclf.data.balance, artclf.train.optimizer), so that the heads fitted here train as the
trainer's do on the feature cache; only the loop is written out, over arrays in memory.
"""

from __future__ import annotations

import collections

import jax
import jax.numpy as jnp
import numpy as np
import optax

from artclf import scheme as scheme_lib
from artclf.data import balance
from artclf.train import losses
from artclf.train import optimizer as optimizer_lib
from bench import feature_bank

SCHEME = scheme_lib.DEFAULT
SPLITS = ("train", "val", "test")


# Years where each culture's middle and late periods begin (the shared set's README).
PERIOD_BOUNDARIES = {"egyptian": (-2030, -1070), "greek": (-480, -323), "roman": (-27, 235)}

# The source-erasing augmentations of the 'erase' lever (artclf.data.source_erasing), with
# greyscale; the view's geometry stays that of the evaluation view, as in cpu_quick.
ERASING = dict(backdrop_probability=0.5, temperature=0.15, bars_probability=0.5,
               downsample_probability=0.3, jpeg_probability=0.5, grayscale_probability=0.2)


def parse_lever(name: str) -> dict:
  """'std+bars+adv=3' -> {'bars': True, 'std': True, 'balanced': False, 'adv': 3.0, ...}.

  Feature levers: 'sqrt' (signed square root of each feature) or 'l2' (each vector scaled
  to unit length) before the standardisation; 'droppc=K' projects out the K leading principal
  directions of the standardised training features (where style often lies); 'l2reg=X'
  replaces config.loss.head_l2.
  'erase' trains on augmented views (ERASING) only, as the trainer does with augmentations
  on; 'erasemix' on the evaluation view and the augmented views in turn. Period levers:
  'ordinal' adds the squared earth mover's distance between the predicted and true
  cumulative period distributions (early < middle < late) to the loss; 'percult' gives
  period one head per culture, read through the predicted culture; 'date' regresses the
  midpoint year (where known) and reads period from it through the predicted culture's
  boundaries (PERIOD_BOUNDARIES).
  """
  settings = {"bars": False, "std": False, "balanced": False, "adv": None, "erase": None,
              "period": None, "norm": None, "l2reg": None, "droppc": 0}
  for part in name.split("+"):
    if part == "base":
      continue
    if part.startswith("adv="):
      settings["adv"] = float(part[4:])
    elif part in ("erase", "erasemix"):
      settings["erase"] = part
    elif part in ("ordinal", "percult", "date"):
      settings["period"] = part
    elif part in ("sqrt", "l2"):
      settings["norm"] = part
    elif part.startswith("l2reg="):
      settings["l2reg"] = float(part[6:])
    elif part.startswith("droppc="):
      settings["droppc"] = int(part[7:])
    elif part in ("bars", "std", "balanced"):
      settings[part] = True
    else:
      raise ValueError(f"unknown lever {part!r} in {name!r}")
  return settings


def load_banks(data_dir, config, crop_bars: bool, erase: str | None = None,
               erase_views: int = 4) -> dict:
  """{split: {'x': [N, D], 'labels': {task: [N]}, 'museum': [N]}} of evaluation views; the
  train split also has 'views' [V, N, D]: the views the heads train on, epoch e on view e % V."""
  augment = {**dict(config.data.augment), "crop_bars": crop_bars}
  banks = {}
  for split in SPLITS:
    bank = feature_bank.pooled(data_dir, split, augment=augment)
    banks[split] = {"x": bank["features"][0], "labels": bank["labels"],
                    "museum": np.asarray(bank["metadata"]["museum"]),
                    "year": _midpoint_years(bank["metadata"])}
  train = banks["train"]
  train["views"] = train["x"][None]
  if erase:
    erased = feature_bank.pooled(data_dir, "train", views=list(range(erase_views)),
                                 augment={**augment, **ERASING})["features"]
    train["views"] = erased if erase == "erase" else np.concatenate([train["views"], erased])
  return banks


def _midpoint_years(metadata: dict) -> np.ndarray:
  """(begin + end) / 2 per record, nan where either is unknown."""
  return np.array([np.nan if b is None or e is None else (float(b) + float(e)) / 2
                   for b, e in zip(metadata["begin_year"], metadata["end_year"])], np.float32)


def _rows(bank: dict, keep: np.ndarray) -> dict:
  rows = {"x": bank["x"][keep], "labels": {t: v[keep] for t, v in bank["labels"].items()},
          "museum": bank["museum"][keep], "year": bank["year"][keep]}
  if "views" in bank:
    rows["views"] = bank["views"][:, keep]
  return rows


def _concat(banks: list[dict]) -> dict:
  return {"x": np.concatenate([b["x"] for b in banks]),
          "labels": {t: np.concatenate([b["labels"][t] for b in banks]) for t in SCHEME.tasks},
          "museum": np.concatenate([b["museum"] for b in banks]),
          "year": np.concatenate([b["year"] for b in banks])}


def balanced_accuracy(labels: np.ndarray, logits: np.ndarray) -> float:
  """Mean recall over the classes present among the known labels (nan if none is known)."""
  known = labels != scheme_lib.UNKNOWN
  if not known.any():
    return float("nan")
  preds = np.argmax(logits[known], axis=-1)
  truth = labels[known]
  return float(np.mean([np.mean(preds[truth == c] == c) for c in np.unique(truth)]))


def scores(params, forward, bank: dict) -> dict:
  logits = forward(params, jnp.asarray(bank["x"]))
  figures = {t: balanced_accuracy(bank["labels"][t], np.asarray(logits[t])) for t in SCHEME.tasks}
  figures["mean"] = float(np.nanmean([figures[t] for t in SCHEME.tasks]))
  return figures


def init_params(dim: int, settings: dict, museums: list[str], hidden: int, seed: int) -> dict:
  """Heads initialised like nnx.Linear (lecun normal kernels, zero biases)."""
  keys = iter(jax.random.split(jax.random.PRNGKey(seed), 16))
  lecun = jax.nn.initializers.lecun_normal()
  params = {}
  width = dim
  if settings["adv"] is not None:
    params["map"] = {"kernel": lecun(next(keys), (dim, hidden)), "bias": jnp.zeros(hidden)}
    width = hidden
    params["adversary"] = {
        c: {"kernel": lecun(next(keys), (width, len(museums))), "bias": jnp.zeros(len(museums))}
        for c in range(SCHEME.num_classes("culture"))}
  params["head"] = {t: {"kernel": lecun(next(keys), (width, SCHEME.num_classes(t))),
                        "bias": jnp.zeros(SCHEME.num_classes(t))} for t in SCHEME.tasks}
  if settings["period"] == "percult":
    params["period_by_culture"] = [
        {"kernel": lecun(next(keys), (width, SCHEME.num_classes("period"))),
         "bias": jnp.zeros(SCHEME.num_classes("period"))}
        for _ in range(SCHEME.num_classes("culture"))]
  if settings["period"] == "date":
    params["date"] = {"kernel": lecun(next(keys), (width, 1)), "bias": jnp.zeros(1)}
  return params


def normalise(x: np.ndarray, norm: str | None) -> np.ndarray:
  """The 'sqrt' or 'l2' feature lever (None: x unchanged)."""
  if norm == "sqrt":
    return np.sign(x) * np.sqrt(np.abs(x))
  if norm == "l2":
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-6)
  return x


def with_normalised_features(banks: dict, norm: str | None) -> dict:
  """The banks with the 'sqrt' or 'l2' lever applied to every feature vector."""
  if norm is None:
    return banks
  return {split: {**bank, **{key: normalise(bank[key], norm) for key in ("x", "views") if key in bank}}
          for split, bank in banks.items()}


def make_forward(mean: np.ndarray, scale: np.ndarray, year_mean: float = 0.0,
                 year_scale: float = 1.0, projection=None):
  def hidden(params, x):
    x = (x - mean) / scale
    if projection is not None:
      x = x @ projection
    if "map" in params:
      x = x @ params["map"]["kernel"] + params["map"]["bias"]
    return x

  def logits_of(params, z, culture=None):
    """Each task's logits; period through `culture` (the predicted one where unknown)."""
    logits = {t: z @ params["head"][t]["kernel"] + params["head"][t]["bias"] for t in SCHEME.tasks}
    predicted = jnp.argmax(logits["culture"], axis=-1)
    culture = predicted if culture is None else jnp.where(culture >= 0, culture, predicted)
    if "period_by_culture" in params:
      every = jnp.stack([z @ h["kernel"] + h["bias"] for h in params["period_by_culture"]])
      logits["period"] = jnp.take_along_axis(every, culture[None, :, None], axis=0)[0]
    if "date" in params:
      year = (z @ params["date"]["kernel"] + params["date"]["bias"])[:, 0]
      logits["year"] = year
      bounds = jnp.asarray([PERIOD_BOUNDARIES[c] for c in SCHEME.classes["culture"]], jnp.float32)
      years = year * year_scale + year_mean
      period = jnp.sum(years[:, None] >= bounds[predicted], axis=-1)
      logits["period_from_date"] = jax.nn.one_hot(period, SCHEME.num_classes("period"))
    return logits

  def forward(params, x):
    logits = logits_of(params, hidden(params, x))
    if "period_from_date" in logits:
      logits["period"] = logits.pop("period_from_date")
    logits.pop("year", None)
    return logits
  return hidden, logits_of, jax.jit(forward)


def adversary_loss(params, z, culture, museum, strength: float):
  """Museum cross-entropy of the per-culture museum heads, through gradient reversal on z."""
  reversed_z = jax.lax.stop_gradient(z) * (1 + strength) - strength * z  # value z, gradient -L
  total, count = 0.0, 0.0
  for c, head in params["adversary"].items():
    logits = reversed_z @ head["kernel"] + head["bias"]
    rows = (culture == c).astype(jnp.float32)
    per_row = optax.softmax_cross_entropy_with_integer_labels(logits, museum)
    total = total + jnp.sum(per_row * rows)
    count = count + jnp.sum(rows)
  return total / jnp.maximum(count, 1.0)


def fit(train: dict, val: dict, config, settings: dict, seed: int, hidden: int):
  """(params, forward) of the heads, selected on val as the trainer selects."""
  museums = sorted(set(train["museum"]))
  museum_ids = np.searchsorted(museums, train["museum"]).astype(np.int32)
  views = train.get("views", train["x"][None])
  if settings["std"]:
    every_view = views.reshape(-1, views.shape[-1])
    mean, scale = every_view.mean(0), np.maximum(every_view.std(0), 1e-3)
  else:
    mean, scale = np.zeros(train["x"].shape[1], np.float32), np.ones(train["x"].shape[1], np.float32)
  known_years = train["year"][np.isfinite(train["year"])]
  year_mean, year_scale = (float(known_years.mean()), float(max(known_years.std(), 1.0))) \
      if len(known_years) else (0.0, 1.0)
  projection = None
  if settings["droppc"]:
    centred = (views.reshape(-1, views.shape[-1]) - mean) / scale
    directions = np.linalg.svd(centred[::max(1, len(centred) // 4000)], full_matrices=False)[2]
    leading = directions[:settings["droppc"]]
    projection = jnp.asarray(np.eye(len(mean), dtype=np.float32) - leading.T @ leading)
  hidden_fn, logits_of, forward = make_forward(jnp.asarray(mean), jnp.asarray(scale),
                                               year_mean, year_scale, projection)
  head_l2 = config.loss.head_l2 if settings["l2reg"] is None else settings["l2reg"]
  # The levers alone decide, whatever cpu_quick itself sets.
  ordinal_weights = {"period": 1.0} if settings["period"] == "ordinal" else None
  counts = balance.class_counts(train["labels"], SCHEME)
  class_weights = {t: jnp.asarray(balance.class_weights(counts[t], power=config.loss.class_weight_power))
                   for t in SCHEME.tasks} if config.loss.class_weights else None
  task_weights = {t: float(config.loss.task_weights.get(t, 1.0)) for t in SCHEME.tasks}
  batch_size, phase = config.batch_size, config.phase1
  steps_per_epoch = len(train["x"]) // batch_size
  schedule = optimizer_lib.learning_rate_schedule(phase.learning_rate, steps_per_epoch,
                                                  phase.decay_rate, phase.decay_epochs)
  tx = optimizer_lib.make_optimizer(config.optimizer, schedule)
  params = init_params(train["x"].shape[1], settings, museums, hidden, seed)
  opt_state = tx.init(params)
  strength = settings["adv"] or 0.0

  @jax.jit
  def step(params, opt_state, x, labels, museum, year):
    def loss_fn(params):
      z = hidden_fn(params, x)
      logits = logits_of(params, z, labels["culture"])
      year_hat = logits.pop("year", None)
      logits.pop("period_from_date", None)
      loss, _ = losses.total_loss(logits, labels, task_weights, class_weights,
                                  config.loss.label_smoothing, ordinal_weights)
      if year_hat is not None:
        known = jnp.isfinite(year)
        target = jnp.where(known, (year - year_mean) / year_scale, 0.0)
        loss = loss + jnp.sum(jnp.square(year_hat - target) * known) / jnp.maximum(jnp.sum(known), 1)
      extra_heads = params.get("period_by_culture", []) + ([params["date"]] if "date" in params else [])
      loss = loss + head_l2 * sum(jnp.sum(jnp.square(h["kernel"]))
                                              for h in [*params["head"].values(), *extra_heads])
      if "adversary" in params:
        loss = loss + adversary_loss(params, z, labels["culture"], museum, strength)
      return loss
    grads = jax.grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  rng = np.random.default_rng(seed)
  weights = _sampling_weights(train) if settings["balanced"] else None
  history, snapshots = [], []
  for epoch in range(phase.epochs):
    order = (rng.choice(len(train["x"]), len(train["x"]), p=weights) if weights is not None
             else rng.permutation(len(train["x"])))
    x = views[epoch % len(views)]
    for i in range(steps_per_epoch):
      rows = order[i * batch_size:(i + 1) * batch_size]
      params, opt_state = step(params, opt_state, jnp.asarray(x[rows]),
                               {t: jnp.asarray(v[rows]) for t, v in train["labels"].items()},
                               jnp.asarray(museum_ids[rows]), jnp.asarray(train["year"][rows]))
    history.append(scores(params, forward, val)["mean"])
    snapshots.append(params)
  window = config.selection_window
  smoothed = [np.mean(history[max(0, e - window + 1):e + 1]) for e in range(len(history))]
  return snapshots[int(np.argmax(smoothed))], forward


def _sampling_weights(train: dict) -> np.ndarray:
  """Row weights 1 / count(museum, culture), normalised: every (source, class) equally often."""
  keys = list(zip(train["museum"], train["labels"]["culture"]))
  counts = collections.Counter(keys)
  weights = np.array([1.0 / counts[k] for k in keys])
  return weights / weights.sum()


def loso(banks: dict, config, settings: dict, seed: int, holdouts, hidden: int) -> dict:
  """{'folds': {museum: scores on all its rows}, 'test': scores of the full fit on test}."""
  everything = _concat([banks[s] for s in SPLITS])
  folds = {}
  for museum in holdouts:
    train = _rows(banks["train"], banks["train"]["museum"] != museum)
    val = _rows(banks["val"], banks["val"]["museum"] != museum)
    params, forward = fit(train, val, config, settings, seed, hidden)
    folds[museum] = scores(params, forward, _rows(everything, everything["museum"] == museum))
  params, forward = fit(banks["train"], banks["val"], config, settings, seed, hidden)
  return {"folds": folds, "test": scores(params, forward, banks["test"]),
          "val": scores(params, forward, banks["val"])}


def summarise(runs: list[dict]) -> dict:
  """Means and standard deviations over seeds of every figure."""
  def stats(values):
    values = np.asarray(values, np.float64)
    return {"mean": float(np.nanmean(values)), "std": float(np.nanstd(values))}
  out = {"folds": {}, "seeds": len(runs)}
  for museum in runs[0]["folds"]:
    out["folds"][museum] = {k: stats([r["folds"][museum][k] for r in runs])
                            for k in runs[0]["folds"][museum]}
  out["held_out_mean"] = stats([np.mean([r["folds"][m]["mean"] for m in r["folds"]]) for r in runs])
  out["test"] = {k: stats([r["test"][k] for r in runs]) for k in runs[0]["test"]}
  out["val"] = {k: stats([r["val"][k] for r in runs]) for k in runs[0]["val"]}
  return out


def one_line(result: dict) -> str:
  per = ", ".join(f"{m} {100 * f['mean']['mean']:.1f}" for m, f in result["folds"].items())
  return (f"held-out mean {100 * result['held_out_mean']['mean']:.1f}"
          f"+-{100 * result['held_out_mean']['std']:.1f} ({per}); "
          f"test {100 * result['test']['mean']['mean']:.1f}, val {100 * result['val']['mean']['mean']:.1f}")


def markdown(results: dict, holdouts, seeds: int) -> str:
  """One row per lever: held-out mean, each source's mean and culture, test and val means."""
  head = (["lever", "held-out mean"] + [f"{m} mean / culture" for m in holdouts] +
          ["held-out period", "test mean", "test period", "val mean", "val period"])
  lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
  pct = lambda s: f"{100 * s['mean']:.1f}"
  for lever, r in results.items():
    cells = [lever, f"{pct(r['held_out_mean'])} ± {100 * r['held_out_mean']['std']:.1f}"]
    cells += [f"{pct(r['folds'][m]['mean'])} / {pct(r['folds'][m]['culture'])}" for m in holdouts]
    held_out_period = np.mean([r["folds"][m]["period"]["mean"] for m in holdouts])
    cells += [f"{100 * held_out_period:.1f}", pct(r["test"]["mean"]), pct(r["test"]["period"]),
              pct(r["val"]["mean"]), pct(r["val"]["period"])]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines) + f"\n\n(means over {seeds} seed(s); ± is the spread over seeds)\n"
