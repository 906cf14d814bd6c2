"""Uploaded files -> pictures, within the configured limits, or an InputError naming each bad file.

A batch is all or nothing: if any file is refused, the answer lists every refused file
and predicts none, so that a collection system never mistakes a partial answer for a
whole one. Sizes are checked before a file is read, pixels from the image header before
it is decoded (`artclf.data.images.decode_image`).
"""

from __future__ import annotations

import dataclasses

from PIL import Image

from artclf.data import images as image_io
from artclf.serve.http_errors import BAD_REQUEST, PAYLOAD_TOO_LARGE, UNPROCESSABLE, InputError


@dataclasses.dataclass(frozen=True)
class Upload:
  name: str
  data: bytes


@dataclasses.dataclass(frozen=True)
class Refusal:
  name: str
  status: int
  reason: str


def check_count(count: int, max_batch_size: int) -> None:
  if count == 0:
    raise InputError(BAD_REQUEST, "no image in the request: send one or more files as 'files'")
  if count > max_batch_size:
    raise InputError(PAYLOAD_TOO_LARGE, f"{count} images in one request; the limit is "
                                        f"{max_batch_size}: send them in smaller batches")


def too_large(name: str, size: int, max_file_bytes: int) -> Refusal | None:
  if size > max_file_bytes:
    return Refusal(name, PAYLOAD_TOO_LARGE,
                   f"{size} bytes, over the limit of {max_file_bytes} bytes per image")
  return None


def decode(upload: Upload, max_pixels: int) -> Image.Image | Refusal:
  """The upright RGB picture, or why not."""
  if not upload.data:
    return Refusal(upload.name, UNPROCESSABLE, "the file is empty")
  try:
    return image_io.decode_image(upload.data, max_pixels=max_pixels)
  except image_io.ImageTooLargeError as error:
    return Refusal(upload.name, PAYLOAD_TOO_LARGE, str(error))
  except image_io.ImageDecodeError as error:
    return Refusal(upload.name, UNPROCESSABLE, str(error))


def refuse(refusals: list[Refusal], total: int) -> InputError:
  """One error for the whole batch: the first refusal's status, every file and reason listed."""
  first = refusals[0]
  message = f"{first.name}: {first.reason}"
  if len(refusals) > 1:
    message = (f"{len(refusals)} of {total} files refused; nothing was predicted. " +
               "; ".join(f"{r.name}: {r.reason}" for r in refusals))
  return InputError(first.status, message,
                    [{"file": r.name, "status": r.status, "error": r.reason} for r in refusals])


def decode_all(uploads: list[Upload], max_pixels: int) -> list[Image.Image]:
  """Every upload decoded, or an InputError listing those that cannot be."""
  pictures, refusals = [], []
  for upload in uploads:
    outcome = decode(upload, max_pixels)
    (refusals if isinstance(outcome, Refusal) else pictures).append(outcome)
  if refusals:
    raise refuse(refusals, len(uploads))
  return pictures
