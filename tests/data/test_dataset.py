"""The built dataset of a config: reused while its source is unchanged, rebuilt when it changes."""

import subprocess
import sys
import time

import ml_collections
import numpy as np
import pytest

from artclf import scheme as scheme_lib
from artclf.data import dataset, tfds_builder
from tests.conftest import REPO_ROOT
from tests.data.fixtures import build_synthetic


def _data_config(source, data_dir, **extra):
  return ml_collections.ConfigDict(dict(source_dir=str(source), data_dir=str(data_dir), **extra))


@pytest.fixture()
def source(tmp_path):
  build_synthetic(tmp_path, num_train=8, num_val=4)  # writes tmp_path/source, builds it once
  return tmp_path / "source"


def test_an_edited_labels_csv_is_rebuilt_not_reused(source, tmp_path):
  config = _data_config(source, tmp_path / "data")
  built = dataset.ensure_built(config)
  assert len(tfds_builder.open_split(built, "val")) == 4
  assert dataset.ensure_built(config) == built  # unchanged: reused
  lines = (source / "labels.csv").read_text().splitlines()
  lines = [line.replace(",val", ",train") for line in lines]  # every val row becomes train
  (source / "labels.csv").write_text("\n".join(lines) + "\n")
  rebuilt = dataset.ensure_built(config)
  assert tfds_builder.split_names(rebuilt) == ["train"]


def test_a_replaced_image_is_rebuilt(source, tmp_path):
  config = _data_config(source, tmp_path / "data")
  built = dataset.ensure_built(config)
  before = (built / dataset.FINGERPRINT_FILE).read_text()
  time.sleep(0.01)
  image = sorted((source / "images").iterdir())[0]
  image.write_bytes(image.read_bytes())  # same bytes, new modification time
  built = dataset.ensure_built(config)
  assert (built / dataset.FINGERPRINT_FILE).read_text() != before


def test_undecodable_images_can_be_skipped_from_the_config(source, tmp_path):
  image = sorted((source / "images").iterdir())[0]
  image.write_bytes(b"not a picture at all")
  with pytest.raises(ValueError, match="cannot be decoded.*skip_bad_images"):
    dataset.ensure_built(_data_config(source, tmp_path / "strict"))
  built = dataset.ensure_built(_data_config(source, tmp_path / "lenient", skip_bad_images=True))
  assert len(tfds_builder.open_split(built, "train")) == 7


def test_a_missing_split_is_named_with_the_fix(source, tmp_path):
  built = dataset.ensure_built(_data_config(source, tmp_path / "data"))
  with pytest.raises(ValueError, match="has no split 'test'.*it has train, val"):
    dataset.open_split(built, "test")


def test_the_build_command_ends_bad_input_in_one_line(tmp_path):
  (tmp_path / "labels.csv").write_text("image,culture,medium,period\n")  # no split column
  result = subprocess.run([sys.executable, "-m", "artclf.data.build", f"--source_dir={tmp_path}",
                           f"--data_dir={tmp_path / 'out'}"], cwd=REPO_ROOT, capture_output=True,
                          text=True, check=False)
  assert result.returncode == 1
  assert "Traceback" not in result.stderr
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith("error: ") and "missing required column(s) split" in last


def test_labels_are_read_under_any_scheme(source, tmp_path):
  built = dataset.ensure_built(_data_config(source, tmp_path / "data"))
  train = dataset.open_labelled(built, "train", scheme_lib.DEFAULT)
  texts = dataset.columns_of(train.source, ["culture", "museum"])
  for text, class_id in zip(texts["culture"], train.labels["culture"]):
    assert scheme_lib.DEFAULT.class_name("culture", int(class_id)) == text
  two = scheme_lib.LabelScheme(("period",), (("late", "middle", "early"),))
  reordered = dataset.open_labelled(built, "train", two)
  assert set(reordered.labels) == {"period"}
  np.testing.assert_array_equal(reordered.labels["period"], 2 - train.labels["period"])


def test_a_label_outside_the_scheme_names_file_line_column_value_and_classes(source, tmp_path):
  lines = (source / "labels.csv").read_text().splitlines()
  lines[3] = lines[3].replace(",egyptian,", ",etruscan,")
  (source / "labels.csv").write_text("\n".join(lines) + "\n")
  built = dataset.ensure_built(_data_config(source, tmp_path / "data"))
  with pytest.raises(ValueError) as raised:
    dataset.open_labelled(built, "train", scheme_lib.DEFAULT)
  message = str(raised.value)
  assert f"{source / 'labels.csv'}, line 4: column culture" in message
  assert "'etruscan' is not one of the run's classes (egyptian, greek, roman)" in message
  assert "\n" not in message
  with pytest.raises(ValueError, match="has no column 'material'"):
    dataset.open_labelled(built, "train", scheme_lib.LabelScheme(("material",), (("a", "b"),)))


def test_a_build_of_the_older_format_is_rebuilt(source, tmp_path):
  config = _data_config(source, tmp_path / "data")
  built = dataset.ensure_built(config)
  older = built.parent / "1.0.0"
  built.rename(older)
  assert dataset.ensure_built(config).name == str(tfds_builder.AncientArt.VERSION)
