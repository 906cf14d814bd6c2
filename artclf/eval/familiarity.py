"""How familiar a photo looks to the model: a score, and a flag for photos unlike its training data.

A classifier gives every photo three labels, however unlike the training photos it is
(a Roman wall painting, a cat). This module scores each photo with one of three methods
with a track record in out-of-distribution detection, all higher-is-more-familiar:

  * 'mahalanobis' (Lee et al., 2018): minus the smallest Mahalanobis distance of the
    pooled vector the heads read to the class-conditional Gaussians fitted on the
    training split's evaluation views, one Gaussian per observed combination of labels
    (one per task; unknown labels included), with a shared covariance shrunk towards a
    multiple of the identity (2,048 dimensions from about a thousand photos need it);
  * 'energy' (Liu et al., 2020): the mean over the heads of logsumexp(logits);
  * 'max_probability' (Hendrycks & Gimpel, 2017): the mean over the heads of the
    largest softmax probability (before calibration, which is fitted after training).

The raw score is turned into `familiarity`, the share of validation photos that look less
familiar than this one (0 to 1), and the flag `unfamiliar`, raised when that share is below
1 - val_pass_rate: by construction about val_pass_rate of validation photos pass.
Fitted at the end of training and saved as WORKDIR/familiarity.npz.
"""

from __future__ import annotations

import dataclasses
import pathlib

import numpy as np

from artclf.eval import calibration

FAMILIARITY_FILE = "familiarity.npz"
METHODS = ("mahalanobis", "energy", "max_probability")


@dataclasses.dataclass
class ClassGaussians:
  """Class means and a shrunk shared covariance, kept as its top eigenvectors plus a floor."""
  means: np.ndarray         # [K, D]
  components: np.ndarray    # [D, R] orthonormal directions of the residual covariance
  variances: np.ndarray     # [R] the shrunk covariance's variance along each direction
  floor: float              # the shrunk covariance's variance in every other direction

  def distances(self, pooled: np.ndarray) -> np.ndarray:
    """[N] the smallest squared Mahalanobis distance to a class mean, per dimension."""
    pooled = np.asarray(pooled, np.float64)
    best = np.full(len(pooled), np.inf)
    for mean in self.means:  # K is small (tens); this keeps memory at N x D
      residual = pooled - mean
      along = residual @ self.components
      squared = (residual ** 2).sum(1)
      rest = squared - (along ** 2).sum(1)
      best = np.minimum(best, (along ** 2 / self.variances).sum(1) + np.maximum(rest, 0) / self.floor)
    return best / pooled.shape[1]


def joint_class_ids(label_ids: dict[str, np.ndarray], min_count: int) -> np.ndarray:
  """Per row, the index of its combination of labels, one per task (an unknown label is a
  value of its own), or -1 when the combination has fewer than `min_count` rows."""
  stacked = np.stack([np.asarray(ids, np.int64) for ids in label_ids.values()], 1)
  stacked = np.where(stacked >= 0, stacked + 1, 0)  # 0: unknown
  _, codes = np.unique(stacked, axis=0, return_inverse=True)
  codes = codes.reshape(-1)
  values, counts = np.unique(codes, return_counts=True)
  kept = values[counts >= min_count]
  return np.where(np.isin(codes, kept), np.searchsorted(kept, codes), -1)


def fit_gaussians(pooled: np.ndarray, label_ids: dict[str, np.ndarray], shrinkage: float,
                  min_class_count: int) -> ClassGaussians:
  """Class-conditional Gaussians with one shared covariance (S shrunk: (1-a) S + a tr(S)/D I).

  With no combination of min_class_count rows (a tiny dataset), one Gaussian of all rows.
  """
  check_settings(shrinkage=shrinkage)
  pooled = np.asarray(pooled, np.float64)
  if len(pooled) < 2:
    raise ValueError(f"familiarity needs at least 2 training images, not {len(pooled)}")
  classes = joint_class_ids(label_ids, min_class_count)
  if not (classes >= 0).any():
    classes = np.zeros(len(pooled), int)
  kept = np.unique(classes[classes >= 0])
  means = np.stack([pooled[classes == k].mean(0) for k in kept])
  rows = classes >= 0
  residuals = pooled[rows] - means[np.searchsorted(kept, classes[rows])]
  _, singular, directions = np.linalg.svd(residuals, full_matrices=False)
  eigenvalues = singular ** 2 / len(residuals)
  floor = max(shrinkage * eigenvalues.sum() / pooled.shape[1], 1e-12)
  return ClassGaussians(means=means, components=directions.T, floor=float(floor),
                        variances=(1 - shrinkage) * eigenvalues + floor)


def check_settings(method: str = "mahalanobis", shrinkage: float = 0.1,
                   val_pass_rate: float = 0.95) -> None:
  """Refuses config.familiarity values that cannot work (before a run starts)."""
  if method not in METHODS:
    raise ValueError(f"unknown familiarity.method {method!r}: use {', '.join(METHODS)}")
  if not 0.0 < shrinkage <= 1.0:
    raise ValueError(f"familiarity.shrinkage must be in (0, 1], not {shrinkage}")
  if not 0.0 < val_pass_rate < 1.0:
    raise ValueError(f"familiarity.val_pass_rate must be in (0, 1), not {val_pass_rate}")


def raw_scores(method: str, logits: dict[str, np.ndarray], pooled: np.ndarray | None,
               gaussians: ClassGaussians | None = None) -> np.ndarray:
  """[N] the method's score of each photo, higher meaning more familiar."""
  if method == "mahalanobis":
    return -gaussians.distances(pooled)
  if method == "energy":
    return np.mean([_logsumexp(np.asarray(value, np.float64)) for value in logits.values()], 0)
  if method == "max_probability":
    return np.mean([calibration.softmax(value).max(-1) for value in logits.values()], 0)
  raise ValueError(f"unknown familiarity.method {method!r}: use {', '.join(METHODS)}")


def _logsumexp(x: np.ndarray) -> np.ndarray:
  top = x.max(-1)
  return top + np.log(np.exp(x - top[:, None]).sum(-1))


@dataclasses.dataclass
class Familiarity:
  """A fitted familiarity scorer: the method, what it needs, and the validation reference."""
  method: str
  val_pass_rate: float
  reference: np.ndarray                 # sorted raw scores of the validation photos
  gaussians: ClassGaussians | None = None
  best_step: int = -1                   # the training step of the weights it was fitted on
  settings: str = ""                    # the config.familiarity it was fitted with (JSON)

  def raw(self, logits, pooled) -> np.ndarray:
    return raw_scores(self.method, logits, pooled, self.gaussians)

  def familiarity(self, raw: np.ndarray) -> np.ndarray:
    """[N] the share of validation photos whose raw score is below each photo's."""
    return np.searchsorted(self.reference, raw, side="left") / len(self.reference)

  def unfamiliar(self, familiarity: np.ndarray) -> np.ndarray:
    return np.asarray(familiarity) < 1.0 - self.val_pass_rate

  def save(self, path: pathlib.Path) -> None:
    arrays = {"method": np.array(self.method), "val_pass_rate": np.array(self.val_pass_rate),
              "reference": self.reference, "best_step": np.array(self.best_step),
              "settings": np.array(self.settings)}
    if self.gaussians is not None:
      arrays.update({f"gaussians_{f.name}": np.asarray(getattr(self.gaussians, f.name))
                     for f in dataclasses.fields(ClassGaussians)})
    temporary = path.with_name(path.name + ".tmp.npz")
    np.savez(temporary, **arrays)
    temporary.replace(path)

  @classmethod
  def load(cls, path: pathlib.Path) -> "Familiarity":
    with np.load(path) as saved:
      gaussians = None
      if "gaussians_means" in saved:
        gaussians = ClassGaussians(
            means=saved["gaussians_means"], components=saved["gaussians_components"],
            variances=saved["gaussians_variances"], floor=float(saved["gaussians_floor"]))
      return cls(method=str(saved["method"]), val_pass_rate=float(saved["val_pass_rate"]),
                 reference=saved["reference"], gaussians=gaussians,
                 best_step=int(saved["best_step"]), settings=str(saved["settings"]))


def fit(config, train: dict, val: dict) -> Familiarity:
  """Fits config.method on the training split's outputs; sets the reference on validation.

  train and val: {'logits': {task: [N, 3]}, 'pooled': [N, D], 'labels': {task: [N]}}.
  """
  check_settings(config.method, config.shrinkage, config.val_pass_rate)
  if not len(val["pooled"]):
    raise ValueError("the familiarity reference needs a non-empty validation split")
  gaussians = None
  if config.method == "mahalanobis":
    gaussians = fit_gaussians(train["pooled"], train["labels"], config.shrinkage,
                              config.min_class_count)
  reference = raw_scores(config.method, val["logits"], val["pooled"], gaussians)
  return Familiarity(config.method, float(config.val_pass_rate), np.sort(reference), gaussians)


def auroc(in_distribution: np.ndarray, unfamiliar: np.ndarray) -> float:
  """P(score of a random in-distribution photo > score of a random unfamiliar one); ties count half."""
  scores = np.concatenate([in_distribution, unfamiliar])
  order = scores.argsort(kind="mergesort")
  ranks = np.empty(len(scores))
  sorted_scores = scores[order]
  # average ranks over ties
  _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
  average = first + (counts - 1) / 2.0 + 1
  ranks[order] = np.repeat(average, counts)
  n_in, n_out = len(in_distribution), len(unfamiliar)
  return float((ranks[:n_in].sum() - n_in * (n_in + 1) / 2) / (n_in * n_out))
