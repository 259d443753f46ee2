"""POST events/{eventId}/reward and .../activate: log durably, answer 204."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from app.api.common import authorize, json_object, read_json
from app.api.rank import valid_event_id
from app.errors import bad_request, not_found
from policies.features import is_number

REWARD_MIN, REWARD_MAX = -1.0, 1.0


def _unknown(event_id: str) -> Exception:
    return not_found(f"No rank call with eventId '{event_id}' was logged.")


async def reward(request: Request) -> Response:
    svc = authorize(request)
    event_id = valid_event_id(request.path_params["event_id"], "InvalidRewardRequest")
    body = json_object(
        await read_json(request, svc.settings.max_body_bytes, "InvalidRewardRequest"),
        "InvalidRewardRequest",
    )
    value = body.get("value")
    if not is_number(value):
        raise bad_request("InvalidRewardRequest", "value is required and must be a number.")
    if not REWARD_MIN <= value <= REWARD_MAX:
        raise bad_request(
            "InvalidRewardRequest", f"value must be between {REWARD_MIN} and {REWARD_MAX}."
        )
    if not await svc.writer.add_reward(event_id, float(value)):
        raise _unknown(event_id)
    return Response(status_code=204)


async def activate(request: Request) -> Response:
    svc = authorize(request)
    event_id = valid_event_id(request.path_params["event_id"], "InvalidEventIdToActivate")
    if not await svc.writer.add_activation(event_id):
        raise _unknown(event_id)
    return Response(status_code=204)
