"""The metric writer: JSONL is the record of truth; a failing TensorBoard writer never blocks."""

import json
import threading

import pytest

from artclf.train import metric_writer


def test_a_tensorboard_writer_that_stopped_does_not_block_training(tmp_path):
  pytest.importorskip("tensorboardX")
  writer = metric_writer.MetricWriter(tmp_path)
  writer.write({"loss": 1.0}, step=0)
  event_writer = writer._tensorboard.file_writer.event_writer  # pylint: disable=protected-access

  def full_disk(_event):
    raise OSError(28, "No space left on device")
  event_writer._ev_writer.write_event = full_disk  # pylint: disable=protected-access
  # More events than tensorboardX's default queue (10) holds: with its writer thread dead,
  # the 11th would wait for ever.
  done = threading.Event()

  def train():
    for step in range(1, 40):
      writer.write({"loss": 1.0 / step}, step=step)
    writer.close()
    done.set()
  threading.Thread(target=train, daemon=True).start()
  assert done.wait(timeout=60), "writing metrics blocked after TensorBoard's writer stopped"
  records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in records] == list(range(40))
