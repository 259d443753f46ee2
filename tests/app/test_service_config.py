"""Service configuration: Personalizer's validation rules and what a change implies (§2.1)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from app import service_config
from app.service_config import REQUIRED, ConfigError, Rules, defaults, validate

INVALID = "InvalidServiceConfiguration"
MODE = "InvalidLearningModeServiceConfiguration"


@pytest.fixture
def current() -> dict:
    return defaults()


def body(current: dict, **changes) -> dict:
    out = dict(current)
    out.update(changes)
    return out


def refused(body_: object, current: dict, inner: str | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as error:
        validate(body_, current)
    if inner is not None:
        assert error.value.inner == inner, str(error.value)
    assert str(error.value)
    return error.value


# ---------------------------------------------------------------- defaults


def test_defaults_are_personalizers(current):
    assert current["rewardWaitTime"] == "PT10M"
    assert current["defaultReward"] == 0
    assert current["rewardAggregation"] == "earliest"
    assert current["explorationPercentage"] == 0.2
    assert current["logRetentionDays"] == 90
    assert current["modelRetrainDays"] == 2
    assert current["learningMode"] == "Online"
    assert current["logMirrorEnabled"] is False
    assert set(REQUIRED) <= set(current)


def test_defaults_validate_without_a_new_model(current):
    change = validate(dict(current), current)
    assert change.new_model is False
    for key in REQUIRED:
        assert change.document[key] == current[key]
    assert change.document["learningMode"] == "Online"
    assert change.document["logMirrorEnabled"] is False


def test_document_is_normalised(current):
    change = validate(
        body(current, rewardWaitTime="04:00:00", rewardAggregation="Average", defaultReward=1),
        current,
    )
    assert change.document["rewardWaitTime"] == "PT4H"
    assert change.document["rewardAggregation"] == "average"
    assert change.document["defaultReward"] == 1.0
    assert isinstance(change.document["defaultReward"], float)
    datetime.fromisoformat(change.document["lastConfigurationEditDate"])


def test_optional_fields_default_to_the_current_ones(current):
    current = dict(current, learningMode="Apprentice", modelRetrainDays=5)
    minimal = {key: current[key] for key in REQUIRED}
    change = validate(minimal, current)
    assert change.document["learningMode"] == "Apprentice"
    assert change.document["modelRetrainDays"] == 5
    assert change.new_model is False


# ---------------------------------------------------------------- required fields and types


@pytest.mark.parametrize("key", REQUIRED)
def test_each_required_field_is_required(current, key):
    missing = body(current)
    del missing[key]
    assert key in str(refused(missing, current, INVALID))
    assert key in str(refused(body(current, **{key: None}), current, INVALID))


@pytest.mark.parametrize("value", [None, [], "PT10M", 3])
def test_body_must_be_an_object(current, value):
    refused(value, current, INVALID)


# ---------------------------------------------------------------- ranges


@pytest.mark.parametrize(
    "wait", ["PT5S", "00:00:05", "PT10M", "PT4H", "PT12H", "P1D", "P2D", "2.00:00:00"]
)
def test_reward_wait_time_between_5_seconds_and_2_days(current, wait):
    change = validate(body(current, rewardWaitTime=wait, logRetentionDays=-1), current)
    assert change.document["rewardWaitTime"] == service_config.durations.format_iso(
        service_config.durations.parse(wait)
    )


@pytest.mark.parametrize("wait", ["PT4S", "PT4.9S", "PT0S", "P2DT1S", "P3D", "soon", 600, True])
def test_reward_wait_time_out_of_range_is_refused(current, wait):
    refused(body(current, rewardWaitTime=wait, logRetentionDays=-1), current, INVALID)


@pytest.mark.parametrize("reward", [-1, -1.0, -0.5, 0, 0.25, 1, 1.0])
def test_default_reward_between_minus_one_and_one(current, reward):
    change = validate(body(current, defaultReward=reward), current)
    assert change.document["defaultReward"] == reward


@pytest.mark.parametrize("reward", [-1.01, 1.01, 2, float("nan"), float("inf"), "0", True])
def test_default_reward_out_of_range_is_refused(current, reward):
    refused(body(current, defaultReward=reward), current, INVALID)


@pytest.mark.parametrize("exploration", [0, 0.0, 0.2, 0.5, 1, 1.0])
def test_exploration_between_zero_and_one(current, exploration):
    change = validate(body(current, explorationPercentage=exploration), current)
    assert change.document["explorationPercentage"] == exploration


@pytest.mark.parametrize("exploration", [-0.01, 1.01, 20, float("nan"), "0.2", False])
def test_exploration_out_of_range_is_refused(current, exploration):
    refused(body(current, explorationPercentage=exploration), current, INVALID)


@pytest.mark.parametrize(
    "aggregation", ["earliest", "sum", "average", "median", "min", "max", "SUM", "Earliest"]
)
def test_reward_aggregations(current, aggregation):
    change = validate(body(current, rewardAggregation=aggregation), current)
    assert change.document["rewardAggregation"] == aggregation.lower()


@pytest.mark.parametrize("aggregation", ["latest", "", "mean", 1, ["sum"]])
def test_unknown_reward_aggregation_is_refused(current, aggregation):
    refused(body(current, rewardAggregation=aggregation), current, INVALID)


@pytest.mark.parametrize("export", ["PT1S", "PT5S", "PT5M", "01:00:00", "P7D"])
def test_model_export_frequency_in_range(current, export):
    change = validate(body(current, modelExportFrequency=export), current)
    assert service_config.durations.parse(change.document["modelExportFrequency"]) == (
        service_config.durations.parse(export)
    )
    assert change.new_model is False


@pytest.mark.parametrize("export", ["PT0S", "PT0.5S", "P7DT1S", "never"])
def test_model_export_frequency_out_of_range_is_refused(current, export):
    refused(body(current, modelExportFrequency=export), current, INVALID)


@pytest.mark.parametrize("mode", ["Online", "Apprentice", "LoggingOnly"])
def test_learning_modes(current, mode):
    assert validate(body(current, learningMode=mode), current).document["learningMode"] == mode


@pytest.mark.parametrize("mode", ["online", "Offline", "", 1])
def test_unknown_learning_mode_is_refused(current, mode):
    refused(body(current, learningMode=mode), current, INVALID)


# ---------------------------------------------------------------- logRetentionDays


@pytest.mark.parametrize(
    ("wait", "days"),
    [("PT10M", 2), ("PT10M", 90), ("PT10M", -1), ("P1D", 2), ("P2D", 3), ("P2D", -1)],
)
def test_log_retention_covers_the_wait_time_plus_a_day(current, wait, days):
    change = validate(
        body(current, rewardWaitTime=wait, logRetentionDays=days, modelRetrainDays=0), current
    )
    assert change.document["logRetentionDays"] == days


@pytest.mark.parametrize(
    ("wait", "days"),
    [("PT10M", 1), ("PT10M", 0), ("P1D", 1), ("P2D", 2), ("PT10M", -2), ("PT10M", -90)],
)
def test_log_retention_shorter_than_wait_time_plus_a_day_is_refused(current, wait, days):
    refused(body(current, rewardWaitTime=wait, logRetentionDays=days, modelRetrainDays=0), current)


@pytest.mark.parametrize("days", [2.5, "90", True, None])
def test_log_retention_must_be_an_integer(current, days):
    refused(body(current, logRetentionDays=days), current)


def test_log_retention_up_to_int32_max_is_accepted(current):
    document = validate(body(current, logRetentionDays=2**31 - 1), current).document
    assert document["logRetentionDays"] == 2**31 - 1


def test_log_retention_above_int32_is_refused(current):
    refused(body(current, logRetentionDays=2**31), current)


# ---------------------------------------------------------------- modelRetrainDays


@pytest.mark.parametrize(("retrain", "days"), [(0, 90), (2, 90), (90, 90), (500, -1)])
def test_model_retrain_days_between_zero_and_retention(current, retrain, days):
    change = validate(body(current, modelRetrainDays=retrain, logRetentionDays=days), current)
    assert change.document["modelRetrainDays"] == retrain


@pytest.mark.parametrize(("retrain", "days"), [(-1, 90), (91, 90), (2.0, 90), ("2", 90)])
def test_model_retrain_days_out_of_range_is_refused(current, retrain, days):
    refused(body(current, modelRetrainDays=retrain, logRetentionDays=days), current, INVALID)


# ---------------------------------------------------------------- other fields


def test_log_mirroring_is_refused(current):
    refused(body(current, logMirrorEnabled=True, logMirrorSasUri="https://x/y?sig=z"), current)
    refused(body(current, logMirrorEnabled=True), current, INVALID)


def test_log_mirroring_disabled_is_accepted(current):
    document = validate(body(current, logMirrorEnabled=False), current).document
    assert document["logMirrorEnabled"] is False


@pytest.mark.parametrize(
    "key", ["isAutoOptimizationEnabled", "isInferenceExplainabilityEnabled", "logMirrorEnabled"]
)
def test_flags_must_be_booleans(current, key):
    refused(body(current, **{key: "false"}), current, INVALID)
    refused(body(current, **{key: 0}), current, INVALID)


def test_flags_are_kept(current):
    change = validate(
        body(current, isAutoOptimizationEnabled=True, isInferenceExplainabilityEnabled=True),
        current,
    )
    assert change.document["isAutoOptimizationEnabled"] is True
    assert change.document["isInferenceExplainabilityEnabled"] is True
    assert change.new_model is False


def test_auto_optimization_frequency_and_start_date(current):
    change = validate(
        body(
            current,
            autoOptimizationFrequency="P27D",
            autoOptimizationStartDate="2022-09-01T21:02:42Z",
        ),
        current,
    )
    assert change.document["autoOptimizationFrequency"] == "P27D"
    assert change.document["autoOptimizationStartDate"] == "2022-09-01T21:02:42"
    refused(body(current, autoOptimizationFrequency="often"), current, INVALID)
    refused(body(current, autoOptimizationFrequency="PT30M"), current, INVALID)  # under 1 h
    refused(body(current, autoOptimizationStartDate="yesterday"), current, INVALID)


def test_start_date_with_an_offset_is_stored_in_utc(current):
    change = validate(body(current, autoOptimizationStartDate="2022-09-01T21:02:42+02:00"), current)
    assert change.document["autoOptimizationStartDate"] == "2022-09-01T19:02:42"


def test_the_real_services_example_is_accepted():
    # REC test_update_configuration (reference §2.1).
    example = {
        "rewardWaitTime": "PT4H",
        "defaultReward": 1.0,
        "rewardAggregation": "average",
        "explorationPercentage": 0.3,
        "modelExportFrequency": "PT3M",
        "logRetentionDays": -1,
        "lastConfigurationEditDate": "2022-10-25T23:14:43",
        "learningMode": "Online",
        "isAutoOptimizationEnabled": True,
        "autoOptimizationFrequency": "P27D",
        "autoOptimizationStartDate": "2022-09-01T21:02:42",
        "modelRetrainDays": 2,
        "isInferenceExplainabilityEnabled": False,
    }
    document = validate(example, defaults()).document
    for key, value in example.items():
        if key != "lastConfigurationEditDate":
            assert document[key] == value, key


# ---------------------------------------------------------------- learning mode vs reward settings


REWARD_CHANGES = [
    {"rewardWaitTime": "PT4H"},
    {"defaultReward": -1.0},
    {"rewardAggregation": "sum"},
    {"rewardWaitTime": "PT20M", "defaultReward": 0.5},
]


@pytest.mark.parametrize("changes", REWARD_CHANGES)
@pytest.mark.parametrize("mode", ["Apprentice", "LoggingOnly"])
def test_learning_mode_with_reward_settings_is_refused(current, changes, mode):
    refused(body(current, learningMode=mode, **changes), current, MODE)


@pytest.mark.parametrize("changes", REWARD_CHANGES)
def test_learning_mode_with_reward_settings_is_refused_back_to_online(current, changes):
    current = dict(current, learningMode="Apprentice")
    refused(body(current, learningMode="Online", **changes), current, MODE)


def test_learning_mode_with_reward_settings_spelled_differently_is_allowed(current):
    # Same values, other spellings: not a change of the reward settings.
    change = validate(
        body(
            current,
            learningMode="Apprentice",
            rewardWaitTime="00:10:00",
            rewardAggregation="Earliest",
            defaultReward=0,
        ),
        current,
    )
    assert change.document["learningMode"] == "Apprentice"
    assert change.new_model is False


@pytest.mark.parametrize("mode", ["Apprentice", "LoggingOnly"])
def test_learning_mode_only_change_keeps_the_model(current, mode):
    change = validate(body(current, learningMode=mode), current)
    assert change.document["learningMode"] == mode
    assert change.new_model is False


def test_learning_mode_with_exploration_change_is_allowed(current):
    change = validate(body(current, learningMode="Apprentice", explorationPercentage=0.5), current)
    assert change.document["learningMode"] == "Apprentice"
    assert change.new_model is True


@pytest.mark.parametrize("changes", [*REWARD_CHANGES, {"explorationPercentage": 0.3}])
def test_reward_settings_or_exploration_change_means_a_new_model(current, changes):
    change = validate(body(current, **changes), current)
    assert change.new_model is True
    assert {key: change.document[key] for key in changes} == changes


@pytest.mark.parametrize(
    "changes",
    [
        {"modelExportFrequency": "PT1M"},
        {"logRetentionDays": 30},
        {"modelRetrainDays": 7},
        {"isAutoOptimizationEnabled": True},
        {"isInferenceExplainabilityEnabled": True},
        {"autoOptimizationFrequency": "P10D"},
        {"rewardWaitTime": "00:10:00"},
        {"rewardWaitTime": "PT600S"},
        {"rewardAggregation": "EARLIEST"},
        {"defaultReward": 0},
        {"explorationPercentage": 0.2},
    ],
)
def test_other_changes_keep_the_model(current, changes):
    assert validate(body(current, **changes), current).new_model is False


# ---------------------------------------------------------------- Rules


def test_rules_of_a_document(current):
    document = validate(
        body(
            current,
            rewardWaitTime="PT4H",
            defaultReward=-0.5,
            rewardAggregation="Median",
            explorationPercentage=0.3,
            modelExportFrequency="00:01:00",
            learningMode="Online",
        ),
        current,
    ).document
    rules = Rules.of(document)
    assert rules == Rules(
        wait=timedelta(hours=4),
        default_reward=-0.5,
        aggregation="median",
        exploration=0.3,
        export_every=timedelta(minutes=1),
        learning_mode="Online",
        retention_days=document["logRetentionDays"],
    )


def test_rules_of_the_defaults(current):
    rules = Rules.of(current)
    assert rules.wait == timedelta(minutes=10)
    assert rules.export_every == timedelta(seconds=5)
    assert rules.learning_mode == "Online"
