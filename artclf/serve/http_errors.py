"""Every error the server answers is JSON {"error": "..."}, with a 4xx status for bad input.

`InputError` is raised by the request handling for input it refuses (the message names
the file); FastAPI's own validation errors and HTTP errors are reshaped the same way.
Anything unexpected is logged and answered 500 without internals.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

BAD_REQUEST = 400
PAYLOAD_TOO_LARGE = 413
UNPROCESSABLE = 422


class InputError(Exception):
  """Input the server refuses: an HTTP status and a message for the person who sent it."""

  def __init__(self, status: int, message: str, details: list[dict] | None = None):
    super().__init__(message)
    self.status = status
    self.message = message
    self.details = details


def _validation_message(error: RequestValidationError) -> str:
  parts = []
  for item in error.errors():
    where = ".".join(str(p) for p in item.get("loc", ()) if p != "body") or "request"
    parts.append(f"{where}: {item.get('msg', 'invalid')}")
  return "invalid request: " + "; ".join(parts)


def install(app: FastAPI) -> None:
  """Registers the handlers that give every error its JSON shape."""

  @app.exception_handler(InputError)
  async def input_error(request: Request, error: InputError):
    body = {"error": error.message}
    if error.details:
      body["files"] = error.details
    return JSONResponse(body, status_code=error.status)

  @app.exception_handler(RequestValidationError)
  async def validation_error(request: Request, error: RequestValidationError):
    return JSONResponse({"error": _validation_message(error)}, status_code=UNPROCESSABLE)

  @app.exception_handler(HTTPException)
  async def http_error(request: Request, error: HTTPException):
    return JSONResponse({"error": str(error.detail)}, status_code=error.status_code,
                        headers=getattr(error, "headers", None))

  @app.exception_handler(Exception)
  async def unexpected_error(request: Request, error: Exception):
    logging.exception("unexpected error on %s %s", request.method, request.url.path)
    return JSONResponse({"error": "internal error: the server log has the details"},
                        status_code=500)
