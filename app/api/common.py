"""What every handler needs: the service, the key check, and a bounded JSON body."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from app.errors import ApiError, bad_request
from app.keys import key_id
from app.service import Service
from policies import codec
from policies.arguments import ArgumentsError
from policies.arguments import validate as validate_arguments
from policies.features import is_plain_text

KEY_HEADER = "Ocp-Apim-Subscription-Key"
MAX_NAME_LENGTH = 256
_DENIED = (
    "Access denied due to invalid subscription key. "
    "Make sure to provide a valid key in the Ocp-Apim-Subscription-Key header."
)


class FastJSONResponse(JSONResponse):
    """A JSON answer encoded by orjson (the hot paths' answers)."""

    def render(self, content: Any) -> bytes:
        return codec.dumps(content)


def service(request: Request) -> Service:
    return request.app.state.service


def authorize(request: Request, admin: bool = False) -> Service:
    """The service, if the request carries a key good enough for this call; else 401."""
    svc = service(request)
    role = svc.keys.role(request.headers.get(KEY_HEADER))
    if role is None or (admin and role != "admin"):
        message = _DENIED if role is None else "This operation needs the admin key."
        raise ApiError(401, "Unauthorized", message, "InvalidApiAccess")
    return svc


def caller(request: Request) -> str:
    """The admin key that made this call, as the audit names it (a digest, never the key)."""
    return key_id("admin", request.headers.get(KEY_HEADER, ""))


async def read_body(request: Request, limit: int) -> bytes:
    """The raw request body; 413 past `limit` bytes (checked while it streams in)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise _too_large(limit)
    return bytes(body)


async def read_json(request: Request, limit: int, inner: str) -> Any:
    """The request body as JSON; 413 past `limit` bytes, 400 (`inner` code) if not JSON."""
    return parse_json(await read_body(request, limit), inner)


def parse_json(body: bytes, inner: str) -> Any:
    """A body as JSON; 400 (`inner` code) if empty or not JSON."""
    if not body.strip():
        raise bad_request(inner, "The request body is empty; a JSON object is required.")
    try:
        return codec.loads(body)
    except UnicodeDecodeError:
        raise bad_request(inner, "The request body is not valid UTF-8.") from None
    except (ValueError, RecursionError) as exc:
        raise bad_request(inner, f"The request body is not valid JSON: {exc}") from None


def _too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        "PayloadSizeExceeded",
        f"The request body exceeds {limit} bytes.",
        "PayloadSizeExceeded",
    )


def required_text(value: Any, field: str, inner: str) -> str:
    """A name or id: printable text of 1 to MAX_NAME_LENGTH characters; else 400 (`inner`)."""
    if (
        not isinstance(value, str)
        or not value.strip()
        or len(value) > MAX_NAME_LENGTH
        or not is_plain_text(value)
    ):
        raise bad_request(inner, f"{field} is required: 1 to {MAX_NAME_LENGTH} characters.")
    return value


def json_object(body: Any, inner: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise bad_request(inner, "The request body must be a JSON object.")
    return body


async def read_policy_contract(request: Request, limit: int) -> tuple[str, str]:
    """A `{name, arguments}` policy contract: its name and its validated VW arguments; 400
    `InvalidPolicyContract` or `InvalidPolicyConfiguration` otherwise."""
    body = json_object(
        await read_json(request, limit, "InvalidPolicyContract"), "InvalidPolicyContract"
    )
    name = required_text(body.get("name"), "name", "InvalidPolicyContract")
    try:
        arguments = validate_arguments(body.get("arguments"))
    except ArgumentsError as exc:
        raise bad_request("InvalidPolicyConfiguration", str(exc)) from None
    return name, arguments
