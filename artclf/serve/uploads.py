"""Uploaded files -> the model's views, within the configured limits, or an InputError naming
each bad file.

A batch is all or nothing: if any file is refused, the answer lists every refused file
and predicts none, so that a collection system never mistakes a partial answer for a
whole one. Sizes are checked before a file is read; pixels from the image headers before
anything is decoded, per image (`max_pixels`) and per request (`max_request_pixels`).
Then each file is decoded once, straight into the model's evaluation view, one after
the other, while a `PixelBudget` shared by all requests bounds the pixels being decoded
at once (`max_pixels_in_flight`); the memory is handed back afterwards (`memory`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from typing import Callable

import numpy as np
from PIL import Image

from artclf.data import images as image_io
from artclf.serve import memory
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


def _refusal(name: str, error: image_io.ImageDecodeError) -> Refusal:
  status = PAYLOAD_TOO_LARGE if isinstance(error, image_io.ImageTooLargeError) else UNPROCESSABLE
  return Refusal(name, status, str(error))


def decode(upload: Upload, max_pixels: int, **kwargs) -> Image.Image | Refusal:
  """The upright RGB picture (`decode_image`'s keyword arguments), or why not."""
  if not upload.data:
    return Refusal(upload.name, UNPROCESSABLE, "the file is empty")
  try:
    return image_io.decode_image(upload.data, max_pixels=max_pixels, **kwargs)
  except image_io.ImageDecodeError as error:
    return _refusal(upload.name, error)


def declared_pixels(upload: Upload, max_pixels: int) -> int | Refusal:
  """The pixels the image's header declares (nothing decoded), or why it is refused."""
  if not upload.data:
    return Refusal(upload.name, UNPROCESSABLE, "the file is empty")
  try:
    width, height = image_io.open_image(upload.data).size
  except image_io.ImageDecodeError as error:
    return _refusal(upload.name, error)
  if width * height > max_pixels:
    return Refusal(upload.name, PAYLOAD_TOO_LARGE,
                   f"image of {width} x {height} = {width * height} pixels exceeds the limit "
                   f"of {max_pixels} pixels per image")
  return width * height


def check_pixels(uploads: list[Upload], max_pixels: int, max_request_pixels: int) -> list[int]:
  """Each upload's declared pixels; an InputError (413 for size) if any file, or the
  whole request, is over its limit."""
  outcomes = [declared_pixels(upload, max_pixels) for upload in uploads]
  refusals = [outcome for outcome in outcomes if isinstance(outcome, Refusal)]
  if refusals:
    raise refuse(refusals, len(uploads))
  total = sum(outcomes)
  if total > max_request_pixels:
    raise InputError(PAYLOAD_TOO_LARGE,
                     f"{len(uploads)} images of {total} pixels in all; the limit is "
                     f"{max_request_pixels} pixels per request: send fewer or smaller images")
  return outcomes


class PixelBudget:
  """The pixels being decoded at once, over all requests: `reserve` waits for room."""

  def __init__(self, limit: int):
    self.limit, self.used = limit, 0
    self._room = threading.Condition()

  @contextlib.contextmanager
  def reserve(self, pixels: int):
    pixels = min(pixels, self.limit)  # an image as large as the budget runs alone
    with self._room:
      self._room.wait_for(lambda: self.used + pixels <= self.limit)
      self.used += pixels
    try:
      yield
    finally:
      with self._room:
        self.used -= pixels
        self._room.notify_all()


def to_views(uploads: list[Upload], pixels: list[int], view: Callable[[bytes], np.ndarray],
             budget: PixelBudget) -> list[np.ndarray]:
  """Each upload decoded once into the model's view (`view`: a file's bytes -> uint8
  [S, S, 3]), one at a time within `budget`; an InputError listing those that fail."""
  views, refusals = [], []
  try:
    for upload, count in zip(uploads, pixels):
      with budget.reserve(count):
        try:
          views.append(view(upload.data))
        except image_io.ImageDecodeError as error:
          refusals.append(_refusal(upload.name, error))
  finally:
    memory.release()
  if refusals:
    raise refuse(refusals, len(uploads))
  return views


def refuse(refusals: list[Refusal], total: int) -> InputError:
  """One error for the whole batch: the first refusal's status, every file and reason listed."""
  first = refusals[0]
  message = f"{first.name}: {first.reason}"
  if len(refusals) > 1:
    message = (f"{len(refusals)} of {total} files refused; nothing was predicted. " +
               "; ".join(f"{r.name}: {r.reason}" for r in refusals))
  return InputError(first.status, message,
                    [{"file": r.name, "status": r.status, "error": r.reason} for r in refusals])
