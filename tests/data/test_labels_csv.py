"""Validation of the labels.csv dataset format: each rule fails with its own message."""

import io

import numpy as np
import pytest
from PIL import Image

from artclf.data import labels_csv
from artclf.data.labels_csv import DatasetError

HEADER = "image,object_id,culture,medium,period,split,title\n"


def _jpeg_bytes(seed: int = 0, size=(16, 12)) -> bytes:
  pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
  buffer = io.BytesIO()
  Image.fromarray(pixels).save(buffer, "JPEG")
  return buffer.getvalue()


def _make_folder(tmp_path, rows: str, header: str = HEADER, images=("a.jpg", "b.jpg")):
  (tmp_path / "img").mkdir(parents=True, exist_ok=True)
  for i, name in enumerate(images):
    (tmp_path / "img" / name).write_bytes(_jpeg_bytes(i))
  (tmp_path / "labels.csv").write_text(header + rows)
  return tmp_path


GOOD_ROWS = ("img/a.jpg,A1,egyptian,sculpture,late,train,Statue\n"
             "img/b.jpg,B2,roman,,early,val,\"Coin, silver\"\n")


def test_valid_folder_loads_labels_unknowns_and_metadata(tmp_path):
  dataset = labels_csv.load_dataset(_make_folder(tmp_path, GOOD_ROWS))
  a, b = dataset.examples
  assert a.metadata["culture"] == "egyptian" and a.metadata["period"] == "late"
  assert a.split == "train" and a.line == 2
  assert b.metadata == {"object_id": "B2", "culture": "roman", "medium": "", "period": "early",
                        "title": "Coin, silver"}
  assert dataset.metadata_columns == ("object_id", "culture", "medium", "period", "title")
  assert [e.image for e in dataset.split("val")] == ["img/b.jpg"]
  assert dataset.bad_images == ()


def test_missing_column(tmp_path):
  folder = _make_folder(tmp_path, "img/a.jpg,egyptian,sculpture,late\n",
                        header="image,culture,medium,period\n")
  with pytest.raises(DatasetError, match=r"line 1: missing required column\(s\) split"):
    labels_csv.load_dataset(folder)


def test_unknown_split(tmp_path):
  rows = "img/a.jpg,A1,egyptian,sculpture,late,training,x\n"
  with pytest.raises(DatasetError,
                     match=r"line 2: split 'training' is not one of train, val, test"):
    labels_csv.load_dataset(_make_folder(tmp_path, rows))


def test_custom_split_names_are_accepted(tmp_path):
  rows = "img/a.jpg,A1,egyptian,sculpture,late,fold0,x\n"
  dataset = labels_csv.load_dataset(_make_folder(tmp_path, rows), splits=("fold0", "fold1"))
  assert [e.split for e in dataset.examples] == ["fold0"]


def test_duplicate_image_path(tmp_path):
  rows = GOOD_ROWS + "img/./a.jpg,A1bis,egyptian,,,test,dup\n"
  with pytest.raises(DatasetError,
                     match=r"line 4: duplicate image 'img/a.jpg' \(already on line 2\)"):
    labels_csv.load_dataset(_make_folder(tmp_path, rows))


def test_missing_image_file(tmp_path):
  rows = GOOD_ROWS + "img/nothere.jpg,Z,greek,,,test,gone\n"
  with pytest.raises(DatasetError, match=r"line 4: image file 'img/nothere.jpg' not found"):
    labels_csv.load_dataset(_make_folder(tmp_path, rows))


def test_line_numbers_count_quoted_newlines(tmp_path):
  rows = ("img/a.jpg,A1,egyptian,sculpture,late,train,\"two\nlines\"\n"
          "img/b.jpg,B2,roman,,early,nope,x\n")
  with pytest.raises(DatasetError, match=r"line 4: split 'nope'"):
    labels_csv.load_dataset(_make_folder(tmp_path, rows))


def test_path_outside_folder_is_refused(tmp_path):
  rows = "../a.jpg,A1,egyptian,sculpture,late,train,x\n"
  with pytest.raises(DatasetError, match=r"line 2: image path '../a.jpg' is not inside"):
    labels_csv.load_dataset(_make_folder(tmp_path, rows))


def test_undecodable_images_are_reported_then_skipped_only_on_request(tmp_path, caplog):
  rows = GOOD_ROWS + ("img/bad1.jpg,X1,greek,,,test,t\n"
                      "img/bad2.jpg,X2,greek,,,test,t\n")
  folder = _make_folder(tmp_path, rows)
  (folder / "img" / "bad1.jpg").write_bytes(b"this is not an image")
  (folder / "img" / "bad2.jpg").write_bytes(_jpeg_bytes(5)[:200])  # Truncated.
  with pytest.raises(DatasetError) as error:
    labels_csv.load_dataset(folder)
  message = str(error.value)
  assert "2 of 4 images cannot be decoded" in message
  assert "line 4: img/bad1.jpg" in message and "line 5: img/bad2.jpg" in message

  dataset = labels_csv.load_dataset(folder, skip_bad_images=True)
  assert [e.image for e in dataset.examples] == ["img/a.jpg", "img/b.jpg"]
  assert [b.image for b in dataset.bad_images] == ["img/bad1.jpg", "img/bad2.jpg"]
  assert "img/bad1.jpg" in caplog.text  # Reported even when skipped.


def test_row_with_missing_fields(tmp_path):
  rows = GOOD_ROWS + "img/a.jpg,A1,egyptian\n"
  with pytest.raises(DatasetError, match=r"line 4: expected 7 fields"):
    labels_csv.load_dataset(_make_folder(tmp_path, rows))


def test_no_labels_csv(tmp_path):
  with pytest.raises(DatasetError, match="no labels.csv"):
    labels_csv.load_dataset(tmp_path)


def test_utf16_and_utf8_bom_files_are_read(tmp_path):
  text = HEADER + GOOD_ROWS.replace("Statue", "Statue of Sekhmet \u00e9")
  for encoding in ("utf-16", "utf-8-sig"):
    folder = _make_folder(tmp_path / encoding, GOOD_ROWS)
    (folder / "labels.csv").write_bytes(text.encode(encoding))
    a, _ = labels_csv.load_dataset(folder).examples
    assert a.metadata["title"] == "Statue of Sekhmet \u00e9"


def test_a_latin1_file_is_refused_naming_the_line_and_the_fix(tmp_path):
  folder = _make_folder(tmp_path, GOOD_ROWS)
  rows = GOOD_ROWS.replace("\"Coin, silver\"", "Caf\u00e9")
  (folder / "labels.csv").write_bytes((HEADER + rows).encode("latin-1"))
  with pytest.raises(DatasetError, match=r"line 3: byte 0xe9 is not UTF-8; save the file as UTF-8"):
    labels_csv.load_dataset(folder)


def test_a_semicolon_separated_file_gets_a_hint(tmp_path):
  folder = _make_folder(tmp_path, GOOD_ROWS.replace(",", ";"), header=HEADER.replace(",", ";"))
  with pytest.raises(DatasetError, match="separated by semicolons"):
    labels_csv.load_dataset(folder)


def test_a_header_without_rows_is_refused(tmp_path):
  with pytest.raises(DatasetError, match="has a header but no rows"):
    labels_csv.load_dataset(_make_folder(tmp_path, ""))


def test_a_link_to_an_image_outside_the_folder_is_refused(tmp_path):
  outside = tmp_path / "elsewhere.jpg"
  outside.write_bytes(_jpeg_bytes(7))
  folder = _make_folder(tmp_path / "set", GOOD_ROWS)
  (folder / "img" / "a.jpg").unlink()
  (folder / "img" / "a.jpg").symlink_to(outside)
  with pytest.raises(DatasetError, match="line 2: image 'img/a.jpg' is a link to a file outside"):
    labels_csv.load_dataset(folder)


@pytest.mark.parametrize("header, message", [
    ("image,culture,medium,period,split,culture\n", "column 'culture' appears more than once"),
    ("image,culture ,medium,period,split\n", "column 'culture ' has spaces around its name"),
    ("image,culture,,period,split\n", "column 3 has no name"),
])
def test_repeated_empty_or_padded_column_names_are_refused_by_name(tmp_path, header, message):
  folder = _make_folder(tmp_path, "img/a.jpg,egyptian,sculpture,late,train" +
                        (",roman" if header.count(",") == 5 else "") + "\n", header=header)
  with pytest.raises(DatasetError, match=f"labels.csv, line 1: {message}"):
    labels_csv.load_dataset(folder)


@pytest.mark.parametrize("rows, message", [
    ("img/a.jpg,A1,egyptian,sculpture,late,train,Sta\rtue\n", "line 2: a carriage return"),
    ("img/a.jpg,A1,egyptian,sculpture,late,train,x\nimg/b.jpg,B2,\x00\x13,,,val,\n",
     "line 3: the control character 0x00"),
    ("img/a.jpg,A1,egyptian,sculpture,late,train,\"Statue\nimg/b.jpg,B2,roman,,early,val,\n",
     "unexpected end of data"),
])
def test_a_bare_carriage_return_control_bytes_or_an_open_quote_are_named(tmp_path, rows, message):
  with pytest.raises(DatasetError, match=f"labels.csv, {message}" if "line" in message else message):
    labels_csv.load_dataset(_make_folder(tmp_path, rows))


def test_windows_line_ends_still_load(tmp_path):
  folder = _make_folder(tmp_path, GOOD_ROWS.replace("\n", "\r\n"), header=HEADER.replace("\n", "\r\n"))
  assert [e.metadata["culture"] for e in labels_csv.load_dataset(folder).examples] == ["egyptian", "roman"]
