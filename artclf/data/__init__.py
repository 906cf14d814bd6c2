"""Data for artclf: the labelled-dataset format and everything that reads it.

  labels_csv     the folder format (labels.csv + images) and its validation
  images         robust decoding of image bytes to RGB uint8 (Pillow)
  tfds_builder   TFDS builder `ancient_art` (ArrayRecord, no TensorFlow), open_split()
  build          command line: python -m artclf.data.build --source_dir=... --data_dir=...
  dataset        the built dataset a config names: build on first use, open splits
  transforms     the image views: evaluation view, training augmentations, normalisation
  pipeline       grain input pipeline: shuffling, sharding, batching, workers, resumption
  balance        class counts, class weights, class-balanced sampling weights
  feature_cache  the frozen trunk's outputs, computed once per image view
"""
