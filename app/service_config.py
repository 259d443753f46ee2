"""Personalizer's service configuration: defaults, validation, and what a change implies."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from app import durations
from policies.features import is_number
from policies.join import AGGREGATIONS
from policies.ranking import LEARNING_MODES

MIN_WAIT = timedelta(seconds=5)
MAX_WAIT = timedelta(days=2)
MIN_EXPORT = timedelta(seconds=1)
MAX_EXPORT = timedelta(days=7)
MIN_AUTO_FREQUENCY = timedelta(hours=1)  # auto-optimization replays two weeks of logs
INT32_MAX = 2**31 - 1

REQUIRED = (
    "rewardWaitTime", "defaultReward", "rewardAggregation", "explorationPercentage",
    "modelExportFrequency", "logRetentionDays",
)  # fmt: skip
REWARD_SETTINGS = ("rewardWaitTime", "defaultReward", "rewardAggregation")


def defaults() -> dict[str, Any]:
    """A new loop's configuration (Personalizer's defaults, but a 5 s model export)."""
    now = _now()
    return {
        "rewardWaitTime": "PT10M",
        "defaultReward": 0.0,
        "rewardAggregation": "earliest",
        "explorationPercentage": 0.2,
        "modelExportFrequency": "PT5S",
        "logRetentionDays": 90,
        "lastConfigurationEditDate": now,
        "learningMode": "Online",
        "isAutoOptimizationEnabled": False,
        "autoOptimizationFrequency": "P28D",
        "autoOptimizationStartDate": now,
        "modelRetrainDays": 2,
        "isInferenceExplainabilityEnabled": False,
        "logMirrorEnabled": False,
    }


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0, tzinfo=None).isoformat()


@dataclass(frozen=True)
class Change:
    document: dict[str, Any]
    new_model: bool  # reward settings or exploration changed: a fresh model (Personalizer's rule)


class ConfigError(ValueError):
    def __init__(self, inner: str, message: str) -> None:
        super().__init__(message)
        self.inner = inner


def _number(body: dict[str, Any], key: str, low: float, high: float) -> float:
    value = body[key]
    if not is_number(value):
        raise ConfigError("InvalidServiceConfiguration", f"{key} must be a number.")
    if not low <= value <= high:
        raise ConfigError("InvalidServiceConfiguration", f"{key} must be between {low} and {high}.")
    return float(value)


def _duration(body: dict[str, Any], key: str, low: timedelta, high: timedelta) -> timedelta:
    try:
        value = durations.parse(body[key])
    except ValueError as exc:
        raise ConfigError("InvalidServiceConfiguration", f"{key}: {exc}.") from None
    if not low <= value <= high:
        raise ConfigError(
            "InvalidServiceConfiguration",
            f"{key} must be between {durations.format_iso(low)} and {durations.format_iso(high)}.",
        )
    return value


def _boolean(body: dict[str, Any], key: str, current: dict[str, Any]) -> bool:
    value = body.get(key, current.get(key, False))
    if not isinstance(value, bool):
        raise ConfigError("InvalidServiceConfiguration", f"{key} must be true or false.")
    return value


def validate(body: Any, current: dict[str, Any]) -> Change:
    """Check a PUT body against Personalizer's rules; returns the document to store."""
    if not isinstance(body, dict):
        raise ConfigError("InvalidServiceConfiguration", "The body must be a JSON object.")
    missing = [k for k in REQUIRED if body.get(k) is None]
    if missing:
        raise ConfigError(
            "InvalidServiceConfiguration", f"Missing required fields: {', '.join(missing)}."
        )
    wait = _duration(body, "rewardWaitTime", MIN_WAIT, MAX_WAIT)
    default_reward = _number(body, "defaultReward", -1.0, 1.0)
    aggregation = body["rewardAggregation"]
    if not isinstance(aggregation, str) or aggregation.lower() not in AGGREGATIONS:
        raise ConfigError(
            "InvalidServiceConfiguration",
            f"rewardAggregation must be one of: {', '.join(AGGREGATIONS)}.",
        )
    exploration = _number(body, "explorationPercentage", 0.0, 1.0)
    export = _duration(body, "modelExportFrequency", MIN_EXPORT, MAX_EXPORT)
    retention = body["logRetentionDays"]
    if isinstance(retention, bool) or not isinstance(retention, int):
        raise ConfigError("InvalidLogRetentionDays", "logRetentionDays must be an integer.")
    if retention < -1 or retention > INT32_MAX:
        raise ConfigError(
            "InvalidLogRetentionDays", f"logRetentionDays must be between -1 and {INT32_MAX}."
        )
    if retention != -1 and retention * 86400 < wait.total_seconds() + 86400:
        raise ConfigError(
            "InvalidLogRetentionDays",
            "logRetentionDays must be -1 (keep forever) or cover the reward wait time plus one day.",
        )
    mode = body.get("learningMode", current.get("learningMode", "Online"))
    if mode not in LEARNING_MODES:
        raise ConfigError(
            "InvalidServiceConfiguration",
            f"learningMode must be one of: {', '.join(LEARNING_MODES)}.",
        )
    retrain = body.get("modelRetrainDays", current.get("modelRetrainDays", 2))
    if (
        isinstance(retrain, bool)
        or not isinstance(retrain, int)
        or retrain < 0
        or (retention != -1 and retrain > retention)
    ):
        raise ConfigError(
            "InvalidServiceConfiguration",
            "modelRetrainDays must be between 0 and logRetentionDays.",
        )
    if _boolean(body, "logMirrorEnabled", current):
        raise ConfigError(
            "InvalidServiceConfiguration",
            "Log mirroring is not supported; read the logs from the database instead.",
        )
    auto_frequency = body.get("autoOptimizationFrequency", current.get("autoOptimizationFrequency"))
    try:
        every = durations.parse(auto_frequency)
        if every < MIN_AUTO_FREQUENCY:
            raise ValueError("at least 1 hour")
        auto_frequency = durations.format_iso(every)
    except ValueError as exc:
        raise ConfigError(
            "InvalidServiceConfiguration", f"autoOptimizationFrequency: {exc}."
        ) from None

    document = {
        "rewardWaitTime": durations.format_iso(wait),
        "defaultReward": default_reward,
        "rewardAggregation": aggregation.lower(),
        "explorationPercentage": exploration,
        "modelExportFrequency": durations.format_iso(export),
        "logRetentionDays": retention,
        "lastConfigurationEditDate": _now(),
        "learningMode": mode,
        "isAutoOptimizationEnabled": _boolean(body, "isAutoOptimizationEnabled", current),
        "autoOptimizationFrequency": auto_frequency,
        "autoOptimizationStartDate": _date(body, "autoOptimizationStartDate", current),
        "modelRetrainDays": retrain,
        "isInferenceExplainabilityEnabled": _boolean(
            body, "isInferenceExplainabilityEnabled", current
        ),
        "logMirrorEnabled": False,
    }
    reward_changed = any(_differs(document, current, k) for k in REWARD_SETTINGS)
    if reward_changed and mode != current.get("learningMode", "Online"):
        raise ConfigError(
            "InvalidLearningModeServiceConfiguration",
            "The learning mode cannot be changed in the same call as the reward wait time, "
            "the default reward or the reward aggregation.",
        )
    new_model = reward_changed or _differs(document, current, "explorationPercentage")
    return Change(document, new_model)


def _differs(new: dict[str, Any], old: dict[str, Any], key: str) -> bool:
    if key == "rewardWaitTime":
        return durations.parse(new[key]) != durations.parse(old.get(key, "PT0S"))
    return new[key] != old.get(key)


def _date(body: dict[str, Any], key: str, current: dict[str, Any]) -> str:
    value = body.get(key, current.get(key))
    if value is None:
        return _now()
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            "InvalidServiceConfiguration", f"{key} must be an ISO 8601 date-time."
        ) from None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC)
    return parsed.replace(tzinfo=None).isoformat()


@dataclass(frozen=True)
class Rules:
    """The configuration the learner and the rank path read, typed."""

    wait: timedelta
    default_reward: float
    aggregation: str
    exploration: float
    export_every: timedelta
    learning_mode: str
    retention_days: int  # -1: keep forever

    @classmethod
    def of(cls, document: dict[str, Any]) -> Rules:
        return cls(
            wait=durations.parse(document["rewardWaitTime"]),
            default_reward=float(document["defaultReward"]),
            aggregation=document["rewardAggregation"],
            exploration=float(document["explorationPercentage"]),
            export_every=durations.parse(document["modelExportFrequency"]),
            learning_mode=document.get("learningMode", "Online"),
            retention_days=int(document.get("logRetentionDays", -1)),
        )
