"""Promotion: one gate for every way a challenger can become the champion, and the rollback.

The admin endpoint, Personalizer's `applyFromEvaluation` and the scheduled auto-optimization all
call `promote`: the evidence is read, the gate (`policies.gate`) decides, and the swap or the
refusal is written to the audit table with that evidence. `force` overrides the gate and is
recorded as forced.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

from app.service_config import Rules
from app.settings import Settings
from app.store import evaluations, lease, roles
from app.store.db import AsyncEngine
from app.store.roles import Audit, RoleError
from policies import gate
from policies.gate import Evidence, GateRules, Verdict
from policies.quantiles import normal_quantile


class Service(Protocol):
    """What promotion needs of the running service (app.service.Service has it)."""

    engine: AsyncEngine
    settings: Settings
    rules: Rules

    async def reload(self) -> None:
        """Apply a change of roles in this process now (the others follow its NOTIFY)."""


@dataclass(frozen=True)
class PromotionResult:
    promoted: bool
    verdict: Verdict
    forced: bool

    def to_json(self) -> dict[str, Any]:
        return {"promoted": self.promoted, "forced": self.forced, **self.verdict.to_json()}


def rules_of(svc: Service) -> GateRules:
    settings = svc.settings
    return GateRules(
        min_events=settings.promotion_min_events,
        min_lift=settings.promotion_min_lift,
        min_ess=settings.promotion_min_ess,
    )


def _no_evidence() -> Evidence:
    nan = math.nan
    return Evidence(0, nan, nan, nan, nan, "none: no event scored by both policies", 0.0, 0.0)


async def shadow_verdict(svc: Service, challenger_id: int, champion_id: int) -> Verdict:
    """The gate on the progressive-validation scores both policies recorded in shadow."""
    data = await roles.paired_scores(svc.engine, challenger_id, champion_id)
    evidence = gate.evidence(**data) if data["reward"].size else _no_evidence()
    return gate.decide(evidence, rules_of(svc))


async def promote(
    svc: Service,
    verdict: Verdict,
    *,
    policy_id: int | None,
    policy_name: str,
    champion_id: int,
    force: bool,
    key_id: str,
    source: str,
    arguments: str | None = None,
    evaluation_id: str | None = None,
    fenced_by: lease.Term | None = None,
) -> PromotionResult:
    """Make the candidate the champion when the verdict allows it (or `force`); audit either
    way. A candidate with `policy_id` is a challenger (its model trained in shadow serves); one
    without is installed with `arguments` and a fresh model (from an evaluation). `fenced_by`:
    the learner's term, when the learner decides (auto-optimization)."""
    if policy_id is None and arguments is None:
        raise ValueError("a candidate without a policy needs its arguments")
    promoted = verdict.promote or force
    audit = Audit(
        action="promote" if promoted else "refuse",
        forced=force,
        source=source,
        key_id=key_id,
        policy_id=policy_id,
        policy_name=policy_name,
        previous_id=champion_id,
        evidence=verdict.to_json(),
        evaluation_id=evaluation_id,
    )
    if not promoted:
        await roles.record(svc.engine, audit, fenced_by)
        return PromotionResult(promoted, verdict, force)
    if policy_id is None:
        await roles.install(svc.engine, policy_name, arguments, audit, fenced_by)  # type: ignore[arg-type]
    else:
        await roles.swap(svc.engine, audit, fenced_by)
    await svc.reload()  # this process switches now; the others on the notification
    return PromotionResult(promoted, verdict, force)


async def rollback(svc: Service, key_id: str) -> Audit:
    """Restore the champion that the newest promotion (or rollback) replaced."""
    last = await roles.last_swap(svc.engine)
    if last is None:
        raise RoleError("nothing", "No promotion has been made; there is nothing to roll back.")
    if last["action"] == "rollback":
        raise RoleError(
            "nothing", "The last promotion was already rolled back; there is nothing to roll back."
        )
    if await roles.champion_id(svc.engine) != last["policy_id"]:
        raise RoleError(
            "changed",
            "The champion changed after the last promotion (a configuration change); "
            "there is nothing to roll back.",
        )
    audit = Audit(
        action="rollback",
        forced=False,
        source="admin",
        key_id=key_id,
        policy_id=last["previous_id"],
        policy_name=await roles.policy_name(svc.engine, last["previous_id"]),
        previous_id=last["policy_id"],
        evidence={"reverts": last["id"], "revertedAction": last["action"]},
    )
    await roles.swap(svc.engine, audit)
    await svc.reload()
    return audit


class EvaluationError(Exception):
    """applyFromEvaluation on an evaluation or a policy that cannot be applied."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason  # missing | unfinished | policy | stale


def replay_verdict(svc: Service, report: dict[str, Any], policy: dict[str, Any]) -> Verdict:
    """The gate on an evaluation's replay: the policy against Online on the same events.

    The optimization search picked its candidate as the best of several on these events, so
    for that candidate the bound is Bonferroni-corrected for the number compared (each
    candidate's interval holds at once with probability ≥ 1 − α, the chosen one's too)."""
    total = policy["total"]
    online = next(p for p in report["policies"] if p["source"] == "Online")
    difference = total.get("difference") or {}

    def number(x: Any) -> float:
        return math.nan if x is None else float(x)

    lower = number(difference.get("lower"))
    method = "gaussian, lower end of the two-sided 95% interval (offline replay)"
    compared = (report.get("optimization") or {}).get("candidatesCompared", 1)
    if policy["source"] == "OfflineExperimentation" and compared > 1:
        alpha = rules_of(svc).alpha
        se = (number(difference.get("value")) - lower) / normal_quantile(1 - alpha / 2)
        lower = number(difference.get("value")) - normal_quantile(1 - alpha / (2 * compared)) * se
        method = f"{method}, Bonferroni-corrected for {compared} candidates"

    evidence = Evidence(
        events=int(total["events"]),
        challenger_value=number(total["ips"]["value"]),
        champion_value=number(online["total"]["ips"]["value"]),
        difference=number(difference.get("value")),
        lower_bound=lower,
        interval_method=method,
        effective_sample_size=number(total["effectiveSampleSize"]),
        max_weight=number(total["maxWeight"]),
    )
    return gate.decide(evidence, rules_of(svc))


async def apply_from_evaluation(
    svc: Service,
    evaluation_id: str,
    policy_name: str,
    *,
    force: bool,
    key_id: str,
    source: str,
    fenced_by: lease.Term | None = None,
) -> PromotionResult | None:
    """Make an evaluated policy the champion, through the gate (None: it is already Online)."""
    row = await evaluations.get(svc.engine, evaluation_id)
    if row is None:
        raise EvaluationError("missing", f"Evaluation '{evaluation_id}' does not exist.")
    if row["status"] != "Succeeded" or not row["report"]:
        raise EvaluationError(
            "unfinished", f"Evaluation '{evaluation_id}' is {row['status']}, not Succeeded."
        )
    report = row["report"]
    policy = next((p for p in report["policies"] if p["name"] == policy_name), None)
    if policy is None:
        raise EvaluationError(
            "policy", f"Evaluation '{evaluation_id}' has no policy named '{policy_name}'."
        )
    if policy["source"] == "Online":
        return None
    if policy["source"] in ("Baseline", "Random"):
        raise EvaluationError(
            "policy", f"'{policy_name}' is a reference policy ({policy['source']}), not a "
            "learning policy; it cannot serve."
        )  # fmt: skip
    champion = await roles.champion_id(svc.engine)
    measured = report.get("champion") or {}
    if measured.get("id") != champion or measured.get("exploration") != svc.rules.exploration:
        raise EvaluationError(
            "stale",
            f"Evaluation '{evaluation_id}' compared '{policy_name}' with another champion or "
            "exploration than the current ones; run a new evaluation.",
        )
    return await promote(
        svc,
        replay_verdict(svc, report, policy),
        policy_id=None,
        policy_name=policy_name,
        champion_id=champion,
        force=force,
        key_id=key_id,
        source=source,
        arguments=policy["arguments"],
        evaluation_id=evaluation_id,
        fenced_by=fenced_by,
    )
