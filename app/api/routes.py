"""Personalizer's paths under every API version it served.

`/personalizer/v1.0/…` and `/personalizer/v1.1-preview.N/…` carry the version in the path;
`/personalizer/…` needs `?api-version=2022-09-01-preview`. The handlers read the version from
`scope["api_version"]` where a response differs between versions.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api import challengers, configuration, evaluations, events, health, logs, model, rank
from app.errors import bad_request, error_response

PATH_VERSIONS = ("v1.0", "v1.1-preview.1", "v1.1-preview.2", "v1.1-preview.3")
QUERY_VERSIONS = ("2022-09-01-preview",)


def personalizer_routes() -> list[BaseRoute]:
    return [
        Route("/rank", rank.rank, methods=["POST"]),
        Route("/events/{event_id:path}/reward", events.reward, methods=["POST"]),
        Route("/events/{event_id:path}/activate", events.activate, methods=["POST"]),
        Route("/configurations/service", configuration.get_service, methods=["GET"]),
        Route("/configurations/service", configuration.put_service, methods=["PUT"]),
        Route("/configurations/policy", configuration.get_policy, methods=["GET"]),
        Route("/configurations/policy", configuration.put_policy, methods=["PUT"]),
        Route("/configurations/policy", configuration.reset_policy, methods=["DELETE"]),
        Route("/model", model.export_model, methods=["GET"]),
        Route("/model", model.import_model, methods=["PUT"]),
        Route("/model", model.reset_model, methods=["DELETE"]),
        Route("/model/properties", model.model_properties, methods=["GET"]),
        Route("/logs", logs.delete_logs, methods=["DELETE"]),
        Route("/logs/properties", logs.log_properties, methods=["GET"]),
        Route("/evaluations", evaluations.list_evaluations, methods=["GET"]),
        Route("/evaluations", evaluations.create_evaluation, methods=["POST"]),
        Route("/evaluations/{evaluation_id}", evaluations.get_evaluation, methods=["GET"]),
        Route("/evaluations/{evaluation_id}", evaluations.put_evaluation, methods=["PUT"]),
        Route("/evaluations/{evaluation_id}", evaluations.delete_evaluation, methods=["DELETE"]),
        Route("/configurations/applyFromEvaluation", evaluations.apply, methods=["POST"]),
    ]


class Versioned:
    """Sets `scope["api_version"]`: the path's version, or the checked `api-version` query."""

    def __init__(self, app: ASGIApp, version: str | None = None) -> None:
        self.app = app
        self.version = version

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        version = self.version
        if version is None and scope["type"] == "http":
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            given = query.get("api-version", [None])[0]
            if given not in QUERY_VERSIONS:
                error = bad_request(
                    "InvalidApiVersion",
                    f"Unsupported api-version '{given}'. Use one of {', '.join(QUERY_VERSIONS)}, "
                    f"or a versioned path: {', '.join('/personalizer/' + v for v in PATH_VERSIONS)}."
                    if given
                    else "The api-version query parameter is required on this path "
                    f"(supported: {', '.join(QUERY_VERSIONS)}).",
                )
                await error_response(error)(scope, receive, send)
                return
            version = given
        await self.app({**scope, "api_version": version}, receive, send)


def admin_routes() -> list[BaseRoute]:
    """The service's own admin API (admin key): challengers, promotion, the audit, reports."""
    return [
        Route("/admin/policies", challengers.list_policies, methods=["GET"]),
        Route("/admin/policies", challengers.add_policy, methods=["POST"]),
        Route("/admin/policies/rollback", challengers.rollback_champion, methods=["POST"]),
        Route("/admin/policies/{name:path}/promote", challengers.promote_policy, methods=["POST"]),
        Route("/admin/policies/{name:path}", challengers.retire_policy, methods=["DELETE"]),
        Route("/admin/promotions", challengers.list_promotions, methods=["GET"]),
        Route(
            "/admin/evaluations/{evaluation_id}/report", evaluations.report_page, methods=["GET"]
        ),
    ]


def routes() -> list[BaseRoute]:
    api = personalizer_routes()
    mounts: list[BaseRoute] = [
        Mount(f"/personalizer/{v}", app=Versioned(Router(api), v)) for v in PATH_VERSIONS
    ]
    mounts.append(Mount("/personalizer", app=Versioned(Router(api))))
    health_routes: list[BaseRoute] = [
        Route("/healthz", health.healthz, methods=["GET"]),
        Route("/livez", health.livez, methods=["GET"]),
        Route("/readyz", health.readyz, methods=["GET"]),
    ]
    # the calls of every request, first and without a mount (their answers are the same in
    # every version)
    hot: list[BaseRoute] = [
        route
        for v in PATH_VERSIONS
        for route in (
            Route(f"/personalizer/{v}/rank", rank.rank, methods=["POST"]),
            Route(
                f"/personalizer/{v}/events/{{event_id:path}}/reward",
                events.reward,
                methods=["POST"],
            ),
            Route(
                f"/personalizer/{v}/events/{{event_id:path}}/activate",
                events.activate,
                methods=["POST"],
            ),
        )
    ]
    return [*hot, *health_routes, *admin_routes(), *mounts]
