"""Downloaded museum images on disk: decode, check, resize, save atomically, remember.

`ImageStore` owns `<out>/images/<museum>/<image_key>.jpg` and `<out>/manifest.jsonl`. Every
download is decoded with Pillow (decompression bombs refused, truncated files refused),
converted to RGB, shrunk so that its longer side is at most `image_size`, re-encoded as
JPEG and written through a temporary file and `os.replace`, so that a killed run never
leaves half an image. The manifest records, per image, the source URL, the sha256 of the
JPEG file, the sha256 of the decoded pixels and a 64-bit difference hash; a later run
skips an image whose file is there with the recorded sha256 and the same source URL.

An image's key is its object's ID for the museums (one photograph per object) and the file's
own ID for Wikimedia Commons (many photographs of one monument). `atomic_write` is the one
write-then-rename helper of the package; harvest writes its tables with it too.
"""

import dataclasses
import hashlib
import io
import json
import os
import re
import tempfile
import threading

from PIL import Image

from artclf.data import images

MANIFEST = "manifest.jsonl"
JPEG_QUALITY = 90


# Undecodable data, truncated files and decompression bombs (artclf.data.images' errors).
ImageError = images.ImageDecodeError


@dataclasses.dataclass(frozen=True)
class StoredImage:
  image_key: str       # MET_1 for a museum object, WMC_<pageid> for a Commons file.
  museum: str
  path: str            # Relative to the output folder, '/'-separated: images/met/MET_1.jpg.
  source_url: str
  file_sha256: str
  pixel_sha256: str
  dhash: str           # 16 hex digits.
  width: int
  height: int


def safe_component(text: str, max_len: int = 100) -> str:
  """A file-name-safe form of an API value: [A-Za-z0-9._-] only, no leading dots."""
  safe = re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).lstrip(".")
  if not safe or len(safe) > max_len:
    digest = hashlib.sha256(str(text).encode()).hexdigest()[:16]
    safe = (safe[:max_len - 17] + "_" + digest) if safe else digest
  return safe


def decode_image(data: bytes, max_pixels: int) -> Image.Image:
  """Decoded upright RGB image (transparency on white); raises ImageError if unusable."""
  return images.decode_image(data, max_pixels=max_pixels)


def resize_longer_side(image: Image.Image, size: int) -> Image.Image:
  """Shrinks (never enlarges) so that the longer side is at most `size`."""
  width, height = image.size
  scale = size / max(width, height)
  if scale >= 1:
    return image
  new_size = (max(1, round(width * scale)), max(1, round(height * scale)))
  return image.resize(new_size, Image.Resampling.LANCZOS)


def pixel_sha256(image: Image.Image) -> str:
  """Hash of the decoded pixels: equal for files that differ in bytes but not in pixels."""
  digest = hashlib.sha256(f"{image.mode}{image.size}".encode())
  digest.update(image.tobytes())
  return digest.hexdigest()


def difference_hash(image: Image.Image) -> str:
  """64-bit dHash (9x8 grey thumbnail, left/right comparisons) as 16 hex digits."""
  grey = image.convert("L").resize((9, 8), Image.Resampling.BILINEAR)
  pixels = grey.tobytes()  # One byte per pixel, row by row.
  bits = 0
  for row in range(8):
    for col in range(8):
      bits = (bits << 1) | (pixels[row * 9 + col] > pixels[row * 9 + col + 1])
  return f"{bits:016x}"


def atomic_write(path: str, data: bytes) -> None:
  """Writes through a temporary file in the same folder and `os.replace`: all or nothing."""
  directory = os.path.dirname(path)
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".part")
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    try:
      os.unlink(tmp)
    except FileNotFoundError:
      pass
    raise


def file_sha256(path: str) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


class ImageStore:
  """Images and manifest under one output folder (see module docstring). Thread-safe."""

  def __init__(self, out_dir: str, image_size: int = 512,
               max_pixels: int = 100_000_000):
    self.out_dir = os.path.abspath(out_dir)
    self.images_dir = os.path.join(self.out_dir, "images")
    self.image_size = image_size
    self.max_pixels = max_pixels
    self._lock = threading.Lock()
    self._entries: dict[str, StoredImage] = {}
    os.makedirs(self.images_dir, exist_ok=True)
    self._load_manifest()

  # --- Paths ---------------------------------------------------------------------------

  def relative_path(self, museum: str, image_key: str) -> str:
    return f"images/{safe_component(museum)}/{safe_component(image_key)}.jpg"

  def absolute_path(self, relative: str) -> str:
    """Absolute path of a relative one; refuses anything that resolves outside images/."""
    path = os.path.realpath(os.path.join(self.out_dir, relative))
    root = os.path.realpath(self.images_dir)
    if os.path.commonpath([path, root]) != root:
      raise ValueError(f"path {relative!r} leaves the output folder")
    return path

  # --- Manifest ------------------------------------------------------------------------

  def _load_manifest(self) -> None:
    path = os.path.join(self.out_dir, MANIFEST)
    if not os.path.exists(path):
      return
    with open(path, encoding="utf-8") as f:
      for line in f:
        try:
          fields = json.loads(line)
          if "object_id" in fields:  # Manifests written before images had their own key.
            fields["image_key"] = fields.pop("object_id")
          entry = StoredImage(**fields)
        except (ValueError, TypeError, AttributeError):
          continue  # A line cut short by a killed run.
        self._entries[entry.image_key] = entry

  def _append_manifest(self, entry: StoredImage) -> None:
    with open(os.path.join(self.out_dir, MANIFEST), "a", encoding="utf-8") as f:
      f.write(json.dumps(dataclasses.asdict(entry), sort_keys=True) + "\n")

  def compact_manifest(self) -> None:
    """Rewrites the manifest with one line per image (atomically)."""
    with self._lock:
      lines = [json.dumps(dataclasses.asdict(e), sort_keys=True)
               for _, e in sorted(self._entries.items())]
      atomic_write(os.path.join(self.out_dir, MANIFEST),
                    ("\n".join(lines) + "\n" if lines else "").encode())

  # --- Images --------------------------------------------------------------------------

  def verified(self, image_key: str, source_url: str) -> StoredImage | None:
    """The stored image under this key if its file is intact and from the same URL."""
    with self._lock:
      entry = self._entries.get(image_key)
    if entry is None or entry.source_url != source_url:
      return None
    try:
      path = self.absolute_path(entry.path)
      if not os.path.isfile(path) or file_sha256(path) != entry.file_sha256:
        return None
    except (OSError, ValueError):
      return None
    return entry

  def save(self, museum: str, image_key: str, source_url: str, data: bytes) -> StoredImage:
    """Decodes, checks, resizes and writes one download; raises ImageError if unusable."""
    image = decode_image(data, self.max_pixels)
    pixels_hash = pixel_sha256(image)  # Of the full decoded picture, before resizing.
    image = resize_longer_side(image, self.image_size)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    jpeg = buffer.getvalue()
    relative = self.relative_path(museum, image_key)
    atomic_write(self.absolute_path(relative), jpeg)
    entry = StoredImage(
        image_key=image_key, museum=museum, path=relative, source_url=source_url,
        file_sha256=hashlib.sha256(jpeg).hexdigest(), pixel_sha256=pixels_hash,
        dhash=difference_hash(image), width=image.size[0], height=image.size[1])
    with self._lock:
      self._entries[image_key] = entry
      self._append_manifest(entry)
    return entry
