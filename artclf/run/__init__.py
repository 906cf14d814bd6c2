"""A trained run: the one home of everything that uses a model once it is trained.

  files         the workdir's files (config.json, calibration.json, familiarity.npz), read
                with one-line errors; the config a checkpoint was trained with is checked
  checkpoint    the best checkpoint: its one restore, checked against its saved digest
  forward       the one inference forward pass (logits and pooled vectors, optional flip)
                and the frozen stages' forward that the feature cache keeps
  trained       a run loaded from its workdir: model, scheme, calibration, familiarity
  finalize      the temperatures and the familiarity scorer, fitted once training ends
  neighbours    the training photos' pooled vectors: the nearest ones to a photo

Training writes a run, evaluation, prediction, the page, crossval and adapt read one; all
of them sit above this package, and nothing here imports them.
"""
