"""Errors, defined once: `ApiError` carries the status and Personalizer's codes; the handlers
render every error as `{"error": {"code", "message", "innerError": {"code"}}}`."""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from app.store.db import DATABASE_ERRORS, is_disconnect

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        inner: str | None = None,
        details: dict | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.inner = inner
        self.details = details  # extra top-level fields of the body (e.g. the gate's evidence)


def bad_request(inner: str, message: str) -> ApiError:
    return ApiError(400, "BadRequest", message, inner)


def not_found(message: str, inner: str = "ResourceNotFound") -> ApiError:
    return ApiError(404, "ResourceNotFound", message, inner)


def conflict(inner: str, message: str, details: dict | None = None) -> ApiError:
    return ApiError(409, "Conflict", message, inner, details)


def unavailable(message: str = "The service cannot reach its database; try again.") -> ApiError:
    return ApiError(503, "ServiceUnavailable", message, "OperationNotAllowed")


def error_response(error: ApiError) -> JSONResponse:
    body: dict = {"code": error.code, "message": error.message}
    if error.inner:
        body["innerError"] = {"code": error.inner}
    headers = {"x-ms-error-code": error.inner or error.code}
    return JSONResponse(
        {"error": body, **(error.details or {})}, status_code=error.status, headers=headers
    )


_HTTP_CODES = {
    404: ("ResourceNotFound", "The requested resource was not found."),
    405: ("MethodNotAllowed", "The HTTP method is not allowed on this resource."),
}


async def handle_api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc)


async def handle_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code, message = _HTTP_CODES.get(exc.status_code, ("BadRequest", str(exc.detail)))
    response = error_response(ApiError(exc.status_code, code, message))
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def handle_database_error(request: Request, exc: Exception) -> JSONResponse:
    """A database that cannot be reached is a 503 the client may retry, never a 500."""
    if is_disconnect(exc):
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc)
        return error_response(unavailable())
    return await handle_unexpected(request, exc)


async def handle_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(
        ApiError(500, "InternalServerError", "The service failed to process the request.")
    )


HANDLERS = {
    ApiError: handle_api_error,
    HTTPException: handle_http_error,
    **dict.fromkeys(DATABASE_ERRORS, handle_database_error),
    OSError: handle_database_error,
    Exception: handle_unexpected,
}
