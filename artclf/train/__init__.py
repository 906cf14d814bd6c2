"""Training: python -m artclf.train --config=configs/NAME.py --workdir=DIR

  trainer        the run, top to bottom: data, phases, validation, selection, checkpoints, logs
  run_state      where a run is (phase, step, epoch, best so far), saved with each checkpoint
  phase_data     a phase's batches: augmented images, or cached outputs of the frozen stages
  steps          the jitted, sharded train and eval steps, and the train state
  losses         masked cross-entropy per head, the heads' L2 penalty
  optimizer      Adam/AdamW with exponential decay, and which parameters a phase trains
  checkpoints    orbax checkpoints: the last few for resuming, the best for use
  workdir        the workdir's lock, resume checks, config.json
  metric_writer  JSONL and TensorBoard logs
  crossval       leave-one-source-out validation (python -m artclf.crossval)
"""
