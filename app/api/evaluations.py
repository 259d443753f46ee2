"""evaluations (Personalizer's offline evaluations), applyFromEvaluation, and the HTML report.

v1.x creates with POST (201, the Evaluation and a Location header); 2022-09-01-preview with PUT
`evaluations/{id}` (200, empty body). The job runs in the background (Running → Succeeded or
Failed); GET shows the v1.x `policyResults` or the 2022 `content` shape.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from app.api.common import authorize, caller, json_object, read_json, required_text
from app.custom_policies import MAX_CUSTOM_POLICIES, CustomPolicyError, check_count, validated
from app.errors import ApiError, bad_request, conflict, not_found
from app.loop.evaluations import FIXED
from app.promotion import EvaluationError, apply_from_evaluation
from app.report import render_html
from app.service import Service
from app.store import evaluations
from app.store.roles import RoleError
from app.timestamps import iso, parse_moment
from policies.evaluation_report import INTERVALS, WINDOWS, regroup

V2022 = "2022-09-01-preview"
INNER = "InvalidEvaluationContract"
V1_STATUS = {"Running": "pending", "Succeeded": "completed", "Failed": "failed"}


def _time(value: Any, field: str, inner: str = INNER) -> datetime:
    if not isinstance(value, str):
        raise bad_request(inner, f"{field} is required: an ISO 8601 date and time.")
    try:
        return parse_moment(value)
    except ValueError as exc:
        raise bad_request(inner, f"{field}: {exc}") from None


def _count(value: str | None, field: str) -> int | None:
    if value is None:
        return None
    if not re.fullmatch("[0-9]{1,9}", value):
        raise bad_request("BadRequest", f"{field} must be a non-negative integer.")
    return int(value)


def _contract(body: Any) -> dict[str, Any]:
    """The evaluation row of a create request; 400 with Personalizer's codes when invalid."""
    body = json_object(body, INNER)
    name = required_text(body.get("name"), "name", INNER)
    start = _time(body.get("startTime"), "startTime")
    end = _time(body.get("endTime"), "endTime")
    if start >= end:
        raise bad_request(INNER, "startTime must be before endTime.")
    given = body.get("policies", [])
    if not isinstance(given, list) or not all(isinstance(p, dict) for p in given):
        raise bad_request(INNER, "policies must be an array of {name, arguments}.")
    try:
        check_count(len(given))
        custom = validated(
            (required_text(p.get("name"), "Each policy's name", "InvalidPolicyContract"),
             p.get("arguments"))
            for p in given
        )  # fmt: skip
    except CustomPolicyError as exc:
        if exc.reason == "too-many":
            raise bad_request(
                INNER, f"A maximum of {MAX_CUSTOM_POLICIES} custom policies are allowed."
            ) from None
        if exc.reason == "duplicate":
            raise bad_request(
                "DuplicateCustomPolicyNames",
                f"Custom policy names should be unique and differ from {', '.join(FIXED)}: "
                f"'{exc.name}'.",
            ) from None
        raise bad_request("InvalidPolicyConfiguration", f"{exc.name}: {exc}") from None
    optimize = False
    for flag in ("enableOfflineExperimentation", "enablePolicyOptimization"):
        value = body.get(flag)
        if value is not None and not isinstance(value, bool):
            raise bad_request(INNER, f"{flag} must be true or false.")
        optimize = optimize or bool(value)
    return {
        "name": name,
        "start_time": start,
        "end_time": end,
        "evaluation_type": "Manual",
        "request": {"policies": custom, "optimize": optimize},
    }


async def _create(svc: Service, evaluation_id: str, body: Any) -> dict[str, Any]:
    row = _contract(body)
    if not await evaluations.count_window(svc.engine, row["start_time"], row["end_time"]):
        raise bad_request(
            "NoLogsExistInDateRange",
            "No final events were logged between startTime and endTime "
            "(only decisions made in Online mode whose events are final are evaluated).",
        )
    if not await evaluations.create(svc.engine, {"id": evaluation_id, **row}):
        raise bad_request("EvaluationAlreadyExists", f"Evaluation '{evaluation_id}' exists.")
    svc.runner.wake()  # in a single process, start at once (other workers use NOTIFY)
    return await _row(svc, evaluation_id)  # 404 only if deleted in between


async def create_evaluation(request: Request) -> Response:
    """POST (v1.x): 201, the Evaluation and its Location."""
    svc = authorize(request, admin=True)
    body = await read_json(request, svc.settings.max_body_bytes, INNER)
    row = await _create(svc, uuid.uuid4().hex, body)
    location = f"{request.url.path.rstrip('/')}/{row['id']}"
    return JSONResponse(_v1(row), status_code=201, headers={"Location": location})


async def put_evaluation(request: Request) -> Response:
    """PUT evaluations/{id} (2022-09-01-preview): 200 with an empty body."""
    svc = authorize(request, admin=True)
    evaluation_id = required_text(request.path_params["evaluation_id"], "evaluationId", INNER)
    body = await read_json(request, svc.settings.max_body_bytes, INNER)
    await _create(svc, evaluation_id, body)
    return Response(status_code=200)


async def _row(svc: Service, evaluation_id: str) -> dict[str, Any]:
    row = await evaluations.get(svc.engine, evaluation_id)
    if row is None:
        raise not_found(f"Evaluation '{evaluation_id}' does not exist.", "EvaluationNotFound")
    return row


async def get_evaluation(request: Request) -> JSONResponse:
    svc = authorize(request, admin=True)
    row = await _row(svc, request.path_params["evaluation_id"])
    if request.scope.get("api_version") != V2022:
        return JSONResponse(_v1(row))
    query = request.query_params
    start = _time(query.get("startTime"), "startTime", "BadRequest")
    end = _time(query.get("endTime"), "endTime", "BadRequest")
    if start >= end:
        raise bad_request("BadRequest", "startTime must be before endTime.")
    interval = query.get("intervalInMinutes", "5")
    if interval not in {str(i) for i in INTERVALS}:
        raise bad_request(
            "BadRequest", f"intervalInMinutes must be one of {', '.join(map(str, INTERVALS))}."
        )
    window = query.get("window", "Expanding")
    if window not in WINDOWS:
        raise bad_request("BadRequest", f"window must be one of {', '.join(WINDOWS)}.")
    return JSONResponse(_v2022(row, start, end, int(interval), window))


async def list_evaluations(request: Request) -> JSONResponse:
    svc = authorize(request, admin=True)
    rows = await evaluations.list_all(svc.engine)
    if request.scope.get("api_version") != V2022:
        return JSONResponse([_v1(r, results=False) for r in rows])
    skip = _count(request.query_params.get("skip"), "skip") or 0
    top = _count(request.query_params.get("top"), "top")
    page = rows[skip:] if top is None else rows[skip : skip + top]
    return JSONResponse({"value": [_header(r) for r in page], "nextLink": None})


async def delete_evaluation(request: Request) -> Response:
    svc = authorize(request, admin=True)
    if not await evaluations.delete(svc.engine, request.path_params["evaluation_id"]):
        raise not_found("Evaluation does not exist.", "EvaluationNotFound")
    return Response(status_code=204)


async def apply(request: Request) -> Response:
    """configurations/applyFromEvaluation: the evaluated policy becomes the champion, if the
    gate passes on the evaluation's evidence (409 with the evidence when not)."""
    svc = authorize(request, admin=True)
    body = json_object(await read_json(request, svc.settings.max_body_bytes, INNER), INNER)
    evaluation_id = required_text(body.get("evaluationId"), "evaluationId", INNER)
    policy_name = required_text(body.get("policyName"), "policyName", INNER)
    force = body.get("force", False)
    if not isinstance(force, bool):
        raise bad_request(INNER, "force must be true or false.")
    try:
        outcome = await apply_from_evaluation(
            svc,
            evaluation_id,
            policy_name,
            force=force,
            key_id=caller(request),
            source="applyFromEvaluation",
        )
    except EvaluationError as exc:
        if exc.reason == "missing":
            raise not_found(str(exc), "EvaluationNotFound") from None
        if exc.reason == "stale":
            raise conflict("ChampionChanged", str(exc)) from None
        raise bad_request(INNER, str(exc)) from None
    except RoleError as exc:
        if exc.reason == "limit":
            raise conflict("TooManyChallengers", str(exc)) from None
        raise conflict("ChampionChanged", str(exc)) from None
    if outcome is not None and not outcome.promoted:
        raise conflict(
            "PromotionRefused",
            "The evaluation does not show the policy is better than Online: "
            + "; ".join(outcome.verdict.reasons),
            outcome.to_json(),
        )
    return Response(status_code=204)


async def report_page(request: Request) -> Response:
    """/admin/evaluations/{id}/report: the self-contained HTML page (`?format=json`: data)."""
    svc = authorize(request, admin=True)
    row = await _row(svc, request.path_params["evaluation_id"])
    if row["status"] != "Succeeded" or not row["report"]:
        message = row["error"] or "The evaluation is still running."
        raise ApiError(409, "Conflict", f"No report: {message}", "EvaluationNotFinished")
    if request.query_params.get("format") == "json":
        return JSONResponse(row["report"])
    return HTMLResponse(render_html(row["report"]))


# -- shapes ------------------------------------------------------------------------------------


def _header(row: dict[str, Any]) -> dict[str, Any]:
    """The 2022 Evaluation without results."""
    header: dict[str, Any] = {
        "id": row["id"],
        "name": row["name"],
        "startTime": iso(row["start_time"]),
        "endTime": iso(row["end_time"]),
        "creationTime": iso(row["created_at"]),
        "status": row["status"],
        "evaluationType": row["evaluation_type"],
    }
    if row.get("error"):
        header["description"] = row["error"]
    return header


def _summary_v1(entry: dict[str, Any], window: str, stamp: str | None) -> dict[str, Any]:
    return {
        "timeStamp": stamp,
        "ipsEstimatorNumerator": entry["ipsEstimatorNumerator"],
        "ipsEstimatorDenominator": entry["ipsEstimatorDenominator"],
        "snipsEstimatorDenominator": entry["snipsEstimatorDenominator"],
        "aggregateTimeWindow": window,
        "nonZeroProbability": entry["nonZeroProbability"],
        "sumOfSquares": entry["sumOfSquares"],
        "confidenceInterval": entry["confidenceInterval"],
        "averageReward": entry["averageReward"],
    }


def _v1(row: dict[str, Any], results: bool = True) -> dict[str, Any]:
    """The v1.x Evaluation: status in lower case, `policyResults` with Personalizer's sums."""
    report = row.get("report") or {}
    body: dict[str, Any] = {
        "id": row["id"],
        "name": row["name"],
        "startTime": iso(row["start_time"]),
        "endTime": iso(row["end_time"]),
        "jobId": row["id"],
        "status": V1_STATUS.get(row["status"], row["status"]),
        "evaluationType": row["evaluation_type"],
        "creationTime": iso(row["created_at"]),
        "optimalPolicy": report.get("optimalPolicy", row.get("optimal_policy")),
        "featureImportance": [],
    }
    if row.get("error"):
        body["description"] = row["error"]
    if not results:
        return body
    window = f"PT{report.get('intervalMinutes', 5)}M"
    body["policyResults"] = [
        {
            "name": p["name"],
            "arguments": p["arguments"],
            "policySource": p["source"],
            "summary": [
                _summary_v1(entry, window, stamp)
                for entry, stamp in zip(p["timeseries"], report["bucketStarts"], strict=True)
            ],
            "totalSummary": _summary_v1(p["total"], "PT0S", None),
            "estimates": _extras(p["total"]),
        }
        for p in report.get("policies", [])
    ]
    return body


def _extras(total: dict[str, Any]) -> dict[str, Any]:
    """What this service adds to Personalizer's figures."""
    keys = ("ips", "ipsRobust", "snips", "snipsRobust", "dm", "dr", "effectiveSampleSize",
            "maxWeight", "difference")  # fmt: skip
    return {k: total.get(k) for k in keys}


def _v2022(
    row: dict[str, Any], start: datetime, end: datetime, interval: int, window: str
) -> dict[str, Any]:
    body = _header(row)
    report = row.get("report")
    if not report:
        return {**body, "content": {"value": []}}
    body["optimalPolicy"] = report.get("optimalPolicy")
    stored = report["intervalMinutes"]
    width = interval if interval % stored == 0 else stored  # never finer than the data
    shaped = regroup(report, width, window) if width != stored or window != "Rolling" else report
    low, high = start.timestamp(), end.timestamp()
    keep = [  # the buckets that overlap [startTime, endTime)
        i
        for i, stamp in enumerate(shaped["bucketStarts"])
        if low - width * 60 < datetime.fromisoformat(stamp).timestamp() < high
    ]
    value = []
    for policy in shaped["policies"]:
        total = policy["total"]
        value.append(
            {
                "name": policy["name"],
                "arguments": policy["arguments"],
                "slotId": "",
                "policySource": policy["source"],
                "summary": {
                    "expectedReward": total["ips"]["value"],
                    "confidenceInterval": [total["ips"]["lower"], total["ips"]["upper"]],
                    "intervalMethod": total["ips"]["method"],
                    "events": total["events"],
                    **_extras(total),
                },
                "timeseries": {
                    "data": [
                        {
                            "timeStamp": shaped["bucketStarts"][i],
                            "expectedReward": policy["timeseries"][i]["ips"],
                            "confidenceInterval": [
                                policy["timeseries"][i]["lower"],
                                policy["timeseries"][i]["upper"],
                            ],
                        }
                        for i in keep
                    ]
                },
            }
        )
    body["content"] = {
        "startTime": iso(start),
        "endTime": iso(end),
        "intervalInMinutes": width,
        "value": value,
    }
    return body
