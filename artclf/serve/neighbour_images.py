"""The nearest training photos as the API shows them, and their thumbnails.

  GET /api/neighbours/{row}   the JPEG thumbnail of row `row` of the served run's training
                              photos (`artclf.run.neighbours`), nothing else

A neighbour in an answer (`public_neighbour`) carries its labels, catalogue fields,
similarity and the URL of its thumbnail; its `image` is the path inside the training
data, or only the file's name when the run recorded an absolute path, so that no answer
shows where files lie on the server. Thumbnails come from the run's own index by row
number: no request names a file.
"""

from __future__ import annotations

import pathlib

from fastapi import FastAPI, Response
from starlette.concurrency import run_in_threadpool

from artclf.serve import http_errors
from artclf.serve.http_errors import InputError

NOT_FOUND = 404


def thumbnail_url(row: int, run: str) -> str:
  """The thumbnail's route; `run` keeps browsers from mixing two runs' rows in a cache."""
  return f"/api/neighbours/{int(row)}?run={run}"


def public_neighbour(neighbour: dict, run: str) -> dict:
  """A neighbour of `artclf.predict` as the API returns it (see the module docstring)."""
  image = str(neighbour.get("image", ""))
  if pathlib.PurePath(image).is_absolute() or pathlib.PureWindowsPath(image).is_absolute():
    image = pathlib.PurePath(image).name
  shown = {key: neighbour[key] for key in ("row", "object_id", "museum", "title", "credit",
                                           "labels", "similarity", "taught") if key in neighbour}
  return {**shown, "image": image, "thumbnail": thumbnail_url(neighbour["row"], run)}


def count_of(requested: int | None, default: int, most: int) -> int:
  """How many neighbours a request gets: its ?neighbours=k (0 to `most`), or the default."""
  if requested is None:
    return min(default, most)
  if not 0 <= requested <= most:
    raise InputError(http_errors.UNPROCESSABLE,
                     f"neighbours must be between 0 and {most}, not {requested}")
  return requested


def add_routes(app: FastAPI, runner) -> None:
  """/api/neighbours/{row}: a thumbnail of the served run's training photos."""

  @app.get("/api/neighbours/{row}")
  async def thumbnail(row: int) -> Response:
    data = await run_in_threadpool(runner.neighbour_thumbnail, row)
    if not data:
      raise InputError(NOT_FOUND, f"no training photo {row} in the served run")
    return Response(data, media_type="image/jpeg",
                    headers={"Cache-Control": "private, max-age=3600"})
