"""Training: python -m artclf.train --config=configs/NAME.py --workdir=DIR

  trainer        the run: data, phases, validation, early stopping, checkpoints, logs
  steps          the jitted, sharded train and eval steps, and the train state
  losses         masked cross-entropy per head
  optimizer      Adam/AdamW with exponential decay, and which parameters a phase trains
  checkpoints    orbax checkpoints: the last few for resuming, the best for use
  metric_writer  JSONL and TensorBoard logs
"""
