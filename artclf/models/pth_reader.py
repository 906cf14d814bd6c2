"""Reads PyTorch's legacy (non-zip) `.pth` state dicts without PyTorch and without running pickled code.

A `.pth` file is pickled Python, and unpickling may call any importable function: loading
an untrusted one with `pickle.load` (or `torch.load` without `weights_only`) can run
arbitrary code. This reader admits only the few globals a state dict of tensors needs and
maps each to a harmless local stand-in; any other global is refused before anything is
called, with `ForbiddenGlobalError` naming it.

The legacy format (what `torch.save` wrote before PyTorch 1.6, or with
`_use_new_zipfile_serialization=False`) is five pickles and raw bytes, one after another:
  1. the magic number 0x1950a86a20f9469cfc6c;
  2. the protocol version, 1001;
  3. system info: {'protocol_version', 'little_endian', 'type_sizes'};
  4. the state dict, an OrderedDict {name: tensor}, each tensor pickled as
     `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks)`,
     where `storage` is a persistent id ('storage', torch.FloatStorage, key, location,
     numel, view_metadata);
  5. the list of storage keys, in the order their data follows;
then, for each key in that order, the storage's element count (int64) and its elements.
The tensors are cut out of the storages only once all bytes are read, as views with the
pickled offset, size and stride (checked to lie inside the storage), then copied.

The zip format (PyTorch >= 1.6) is refused with a message saying so.
"""

from __future__ import annotations

import collections
import dataclasses
import io
import os
import pathlib
import pickle
import struct

import numpy as np

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001
ZIP_SIGNATURE = b"PK\x03\x04"

# torch's storage classes and the little-endian numpy dtypes of their elements.
STORAGE_DTYPES = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class PthError(ValueError):
  """The file is not a readable legacy `.pth` state dict; the message says where and why."""


class ForbiddenGlobalError(PthError):
  """The pickle asks for a global outside the state-dict allow-list (possibly malicious)."""


@dataclasses.dataclass(frozen=True)
class _StorageType:
  """Stand-in for a `torch.*Storage` class: only names the element type, cannot be called."""
  name: str
  dtype: np.dtype


@dataclasses.dataclass
class _Storage:
  """One storage: declared in the pickle, filled from the bytes after it."""
  key: str
  dtype: np.dtype
  numel: int
  data: np.ndarray | None = None


@dataclasses.dataclass(frozen=True)
class _TensorRef:
  """What `_rebuild_tensor_v2` returns here: where a tensor lies in its storage."""
  storage: _Storage
  offset: int
  size: tuple[int, ...]
  stride: tuple[int, ...]

  def to_numpy(self, name: str) -> np.ndarray:
    """A copy of the tensor's elements, after checking that they lie inside the storage."""
    storage = self.storage
    if len(self.size) != len(self.stride):
      raise PthError(f"tensor {name}: size {self.size} and stride {self.stride} differ in rank")
    if self.offset < 0 or any(s < 0 for s in self.size + self.stride):
      raise PthError(f"tensor {name}: negative offset, size or stride")
    if 0 in self.size:
      return np.zeros(self.size, storage.dtype)
    last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride))
    if last >= storage.numel:
      raise PthError(f"tensor {name}: offset {self.offset}, size {self.size}, stride "
                     f"{self.stride} reach element {last} of a {storage.numel}-element storage")
    itemsize = storage.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        storage.data[self.offset:], shape=self.size,
        strides=tuple(s * itemsize for s in self.stride), writeable=False)
    return np.array(view)  # A contiguous copy, independent of the file's buffer.


def _as_int_tuple(value, what: str) -> tuple[int, ...]:
  if not isinstance(value, tuple) or not all(type(v) is int for v in value):
    raise PthError(f"{what} must be a tuple of ints, got {value!r:.80}")
  return value


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
  """Stand-in for `torch._utils._rebuild_tensor(_v2)`: records the view, calls nothing.

  `unused` are requires_grad, backward hooks and (newer files) metadata, meaningless here.
  """
  del unused
  if not isinstance(storage, _Storage):
    raise PthError(f"a tensor's storage must be a persistent storage id, got {storage!r:.80}")
  if type(storage_offset) is not int:
    raise PthError(f"a tensor's storage offset must be an int, got {storage_offset!r:.80}")
  return _TensorRef(storage, storage_offset, _as_int_tuple(size, "a tensor's size"),
                    _as_int_tuple(stride, "a tensor's stride"))


# Everything a legacy state dict may name: (module, name) -> harmless local object.
_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    **{("torch", name): _StorageType(name, dtype) for name, dtype in STORAGE_DTYPES.items()},
}


class _PlainUnpickler(pickle.Unpickler):
  """Unpickles plain data only (numbers, strings, tuples, lists, dicts): no global at all."""

  allowed_globals: dict = {}

  def find_class(self, module, name):
    allowed = self.allowed_globals.get((module, name))
    if allowed is None:
      raise ForbiddenGlobalError(
          f"the pickle asks for {module}.{name}, which a state dict of tensors never needs: "
          "refused (the file may be malicious)")
    return allowed

  def persistent_load(self, pid):
    raise PthError(f"unexpected persistent id {pid!r:.80} outside the state dict")


class _StateDictUnpickler(_PlainUnpickler):
  """Unpickles the state dict: tensors become `_TensorRef`s, storages `_Storage`s (empty)."""

  allowed_globals = _ALLOWED_GLOBALS

  def __init__(self, file):
    super().__init__(file)
    self.storages: dict[str, _Storage] = {}

  def persistent_load(self, pid):
    if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
      raise PthError(f"unsupported persistent id {pid!r:.80}: expected "
                     "('storage', type, key, location, numel, view_metadata)")
    _, storage_type, key, _location, numel, view_metadata = pid
    if not isinstance(storage_type, _StorageType):
      raise PthError(f"storage {key!r}: {storage_type!r:.80} is not a storage type")
    if not isinstance(key, str) or type(numel) is not int or numel < 0:
      raise PthError(f"storage {key!r:.40}: bad key or element count {numel!r:.40}")
    if view_metadata is not None:
      raise PthError(f"storage {key}: storage views (PyTorch < 0.4 files) are not supported")
    storage = self.storages.setdefault(key, _Storage(key, storage_type.dtype, numel))
    if (storage.dtype, storage.numel) != (storage_type.dtype, numel):
      raise PthError(f"storage {key} is declared twice with different types or sizes")
    return storage


def read_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
  """{tensor name: numpy array} of a legacy `.pth` state dict, in the file's order.

  int64 buffers such as BatchNorm's `num_batches_tracked` come back as int64 arrays.

  Raises:
    ForbiddenGlobalError: the pickle names a global outside the allow-list.
    PthError: anything else that makes the file unreadable (zip format, bad magic number,
      truncated data, a tensor outside its storage, an entry that is not a tensor).
  """
  path = pathlib.Path(path)
  data = path.read_bytes()
  if data.startswith(ZIP_SIGNATURE):
    raise PthError(f"{path} is a zip-format .pth (torch.save since PyTorch 1.6); only the "
                   "legacy format is supported")
  try:
    return _read_legacy(io.BytesIO(data), len(data))
  except ForbiddenGlobalError as error:
    raise ForbiddenGlobalError(f"{path}: {error}") from None
  except PthError as error:
    raise PthError(f"{path}: {error}") from None
  except (pickle.UnpicklingError, EOFError, TypeError, ValueError, AttributeError,
          IndexError, KeyError, struct.error) as error:
    # Malformed pickles surface as any of these; none of them means code ran.
    raise PthError(f"{path}: not a readable legacy .pth file ({type(error).__name__}: "
                   f"{error})") from None


def _read_legacy(f: io.BytesIO, file_size: int) -> dict[str, np.ndarray]:
  magic = _PlainUnpickler(f).load()
  if magic != MAGIC_NUMBER:
    raise PthError("not a legacy PyTorch file (wrong magic number)")
  protocol = _PlainUnpickler(f).load()
  if protocol != PROTOCOL_VERSION:
    raise PthError(f"protocol version {protocol!r:.40}, expected {PROTOCOL_VERSION}")
  sys_info = _PlainUnpickler(f).load()
  if not isinstance(sys_info, dict) or sys_info.get("little_endian") is not True:
    raise PthError("written on a big-endian machine (or no system info): not supported")
  unpickler = _StateDictUnpickler(f)
  state = unpickler.load()
  keys = _PlainUnpickler(f).load()
  _read_storages(f, file_size, keys, unpickler.storages)
  if f.tell() != file_size:
    raise PthError(f"{file_size - f.tell()} bytes follow the last storage")
  if not isinstance(state, dict):
    raise PthError(f"the pickle holds a {type(state).__name__}, not a state dict")
  tensors = {}
  for name, value in state.items():
    if not isinstance(value, _TensorRef):
      raise PthError(f"entry {name!r:.80} of the state dict is a {type(value).__name__}, "
                     "not a tensor")
    tensors[name] = value.to_numpy(name)
  return tensors


def _read_storages(f: io.BytesIO, file_size: int, keys, storages: dict[str, _Storage]) -> None:
  """Fills each storage from its bytes: int64 element count, then the elements."""
  if (not isinstance(keys, list) or not all(isinstance(key, str) for key in keys)
      or sorted(keys) != sorted(storages)):
    raise PthError("the storage key list does not match the storages the tensors use")
  for key in keys:
    storage = storages[key]
    (numel,) = struct.unpack("<q", f.read(8))
    if numel != storage.numel:
      raise PthError(f"storage {key}: {numel} elements in the data, {storage.numel} declared")
    nbytes = numel * storage.dtype.itemsize
    if f.tell() + nbytes > file_size:
      raise PthError(f"storage {key}: the file ends before its {nbytes} bytes")
    storage.data = np.frombuffer(f.read(nbytes), storage.dtype)
