"""Feature cleaning, action parsing and the VW document (Personalizer's rules, reference §1.3)."""

from __future__ import annotations

import json
import math

import pytest
import vowpal_wabbit_next as vw

from policies.features import (
    CONTEXT_KEY,
    MAX_ACTIONS,
    MAX_DEPTH,
    MAX_ID_LENGTH,
    Action,
    FeatureError,
    clean_features,
    has_features,
    parse_actions,
    vw_document,
)

# Codes the reference forbids in namespace names: < 32, 32 (space), 58 ':', 124 '|', 126–140.
FORBIDDEN_CODES = [*range(33), 58, 124, *range(126, 141)]


def clean(items):
    return clean_features(items, "Context features")


def nested(levels: int) -> dict:
    """A feature object holding `levels` namespaces nested one inside the other."""
    inner: dict = {"leaf": 1}
    for level in range(levels):
        inner = {f"ns{level}": inner}
    return inner


def parse(document: dict) -> list[vw.Example]:
    workspace = vw.Workspace(["--cb_explore_adf", "--quiet"])
    return vw.JsonFormatParser(workspace).parse_json(json.dumps(document))


# ---------------------------------------------------------------- cleaning: kept values


def test_scalars_are_kept_as_given():
    item = {"s": "gold", "i": 3, "neg": -2.5, "zero": 0, "f": 0.125, "t": True, "no": False}
    assert clean([item]) == [item]
    cleaned = clean([item])[0]
    assert cleaned["t"] is True and cleaned["no"] is False
    assert isinstance(cleaned["i"], int) and not isinstance(cleaned["i"], bool)


def test_null_becomes_the_string_null_at_every_level():
    cleaned = clean([{"a": None, "ns": {"b": None, "deeper": {"c": None}}}])
    assert cleaned == [{"a": "null", "ns": {"b": "null", "deeper": {"c": "null"}}}]


@pytest.mark.parametrize("array", [[1, 2, 3], [0.5, -1.25], [1, 2.5], [], [0]])
def test_numeric_arrays_are_kept(array):
    assert clean([{"vector": array}]) == [{"vector": array}]
    assert clean([{"ns": {"vector": array}}]) == [{"ns": {"vector": array}}]


def test_namespaces_are_kept_with_their_features():
    item = {"user": {"tier": "gold", "age": 31, "loc": {"city": "Paris"}}, "flag": True}
    assert clean([item]) == [item]


def test_several_objects_keep_their_order():
    items = [{"a": 1}, {"b": "x"}, {"c": {"d": 2}}]
    assert clean(items) == items


def test_cleaning_does_not_change_the_request():
    items = [{"_hidden": 1, "n": None, "ns": {"_x": 2, "y": 3}}]
    snapshot = json.loads(json.dumps(items))
    clean(items)
    assert items == snapshot


# ---------------------------------------------------------------- cleaning: ignored names


def test_underscore_names_are_dropped_at_every_level():
    items = [
        {
            "_top": "x",
            "keep": 1,
            "_namespace": {"a": 1, "b": {"c": 2}},
            "ns": {"_feature": 5, "kept": "y", "inner": {"_deep": [1, 2], "z": None}},
        }
    ]
    assert clean(items) == [{"keep": 1, "ns": {"kept": "y", "inner": {"z": "null"}}}]


def test_underscore_names_are_dropped_before_their_values_are_checked():
    # A value that would be refused is not looked at when its name is ignored.
    items = [{"_bad": ["text"], "_nan": math.nan, "ns": {"_ns|pipe": {"x": 1}}, "ok": 1}]
    assert clean(items) == [{"ok": 1, "ns": {}}]


def test_a_name_with_underscore_inside_is_kept():
    assert clean([{"a_b": 1, "ns": {"c_": 2}}]) == [{"a_b": 1, "ns": {"c_": 2}}]


# ---------------------------------------------------------------- cleaning: refusals


@pytest.mark.parametrize(
    "array",
    [["a"], [1, "2"], [None], [1, None], [True], [1, False], [[1, 2]], [{"a": 1}]],
)
def test_non_numeric_arrays_are_refused(array):
    with pytest.raises(FeatureError, match="array with non-number items"):
        clean([{"vector": array}])
    with pytest.raises(FeatureError):
        clean([{"ns": {"vector": array}}])


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_refused(value):
    with pytest.raises(FeatureError):
        clean([{"x": value}])
    with pytest.raises(FeatureError):
        clean([{"ns": {"x": value}}])
    with pytest.raises(FeatureError):
        clean([{"x": [1.0, value]}])


def test_empty_key_is_refused_at_every_level():
    message = "cannot use the empty string as an id"
    with pytest.raises(FeatureError, match=message):
        clean([{"": 1}])
    with pytest.raises(FeatureError, match=message):
        clean([{"ns": {"": 1}}])
    with pytest.raises(FeatureError, match=message):
        clean([{"ns": {"inner": {"": "x"}}}])
    with pytest.raises(FeatureError, match=message):
        clean([{"": {"x": 1}}])


@pytest.mark.parametrize("code", FORBIDDEN_CODES)
def test_forbidden_characters_in_namespace_names_are_refused(code):
    with pytest.raises(FeatureError, match=f"code {code}"):
        clean([{f"us{chr(code)}er": {"tier": "gold"}}])
    with pytest.raises(FeatureError):
        clean([{"outer": {f"in{chr(code)}": {"x": 1}}}])


@pytest.mark.parametrize("code", [33, 57, 59, 123, 125, 141, 200, 0x4E2D])
def test_allowed_characters_in_namespace_names(code):
    name = f"ns{chr(code)}x"
    assert clean([{name: {"f": 1}}]) == [{name: {"f": 1}}]


def test_nesting_within_the_depth_limit_is_accepted():
    item = nested(MAX_DEPTH - 1)
    assert clean([item]) == [item]


@pytest.mark.parametrize("levels", [MAX_DEPTH + 1, MAX_DEPTH + 5, 200])
def test_nesting_beyond_the_depth_limit_is_refused(levels):
    with pytest.raises(FeatureError, match="nested deeper"):
        clean([nested(levels)])


@pytest.mark.parametrize("items", [None, {"a": 1}, "a", 3])
def test_features_must_be_an_array(items):
    with pytest.raises(FeatureError, match="must be an array"):
        clean(items)


def test_null_item_is_refused():
    with pytest.raises(FeatureError, match="contains null value"):
        clean([{"a": 1}, None])


@pytest.mark.parametrize("item", ["a", 1, [{"a": 1}], True])
def test_items_must_be_objects(item):
    with pytest.raises(FeatureError, match="key value pair"):
        clean([item])


def test_unsupported_value_type_is_refused():
    with pytest.raises(FeatureError, match="unsupported type"):
        clean([{"x": object()}])


@pytest.mark.parametrize(
    "items",
    [
        [{"a\x00b": 1}],
        [{"a": "x\x00"}],
        [{"ns": {"k": "\ud800"}}],
        [{"\udfff": 1}],
    ],
)
def test_nul_and_lone_surrogates_are_refused(items):
    with pytest.raises(FeatureError):
        clean(items)


@pytest.mark.parametrize("value", [10**400, -(10**400)])
def test_integers_beyond_a_double_are_refused(value):
    with pytest.raises(FeatureError):
        clean([{"x": value}])
    with pytest.raises(FeatureError):
        clean([{"x": [1, value]}])


def test_large_integers_within_a_double_are_kept():
    assert clean([{"x": 2**53, "v": [10**300]}]) == [{"x": 2**53, "v": [10**300]}]


@pytest.mark.parametrize("action_id", ["a\x00", "\ud800"])
def test_ids_with_nul_or_lone_surrogates_are_refused(action_id):
    with pytest.raises(FeatureError):
        parse_actions([{"id": action_id, "features": [{"f": 1}]}])


# ---------------------------------------------------------------- has_features


@pytest.mark.parametrize(
    "items",
    [[], [{}], [{}, {}], [{"ns": {}}], [{"ns": {"inner": {}}}], [{"v": []}], [{"ns": {"v": []}}]],
)
def test_has_features_false_without_any_feature(items):
    assert has_features(items) is False


@pytest.mark.parametrize(
    "items",
    [
        [{"a": 1}],
        [{}, {"a": "x"}],
        [{"ns": {"inner": {"x": "y"}}}],
        [{"v": [0.5]}],
        [{"ns": {}, "b": True}],
        [{"n": "null"}],
    ],
)
def test_has_features_true_with_a_feature(items):
    assert has_features(items) is True


def test_has_features_after_cleaning_ignores_underscore_names():
    assert has_features(clean([{"_a": 1, "ns": {"_b": "x"}}])) is False
    assert has_features(clean([{"_a": 1, "ns": {"b": "x"}}])) is True


# ---------------------------------------------------------------- parse_actions


def actions_json(n: int) -> list[dict]:
    return [{"id": f"a{i}", "features": [{"color": f"c{i}"}]} for i in range(n)]


@pytest.mark.parametrize("n", [1, 2, MAX_ACTIONS])
def test_parse_actions_accepts_one_to_fifty(n):
    parsed = parse_actions(actions_json(n))
    assert [a.id for a in parsed] == [f"a{i}" for i in range(n)]
    assert all(a.features == [{"color": f"c{i}"}] for i, a in enumerate(parsed))


@pytest.mark.parametrize("n", [0, MAX_ACTIONS + 1])
def test_parse_actions_refuses_counts_outside_one_to_fifty(n):
    with pytest.raises(FeatureError, match="between 1 and 50"):
        parse_actions(actions_json(n))


@pytest.mark.parametrize("raw", [None, {"id": "a"}, "a"])
def test_parse_actions_requires_an_array(raw):
    with pytest.raises(FeatureError):
        parse_actions(raw)


def test_parse_actions_cleans_action_features():
    raw = [{"id": "a", "features": [{"_label_cost": -1, "size": None, "ns": {"_x": 1, "y": 2}}]}]
    assert parse_actions(raw) == [Action("a", [{"size": "null", "ns": {"y": 2}}])]


def test_parse_actions_refuses_bad_features():
    with pytest.raises(FeatureError, match="non-number"):
        parse_actions([{"id": "a", "features": [{"v": ["x"]}]}])
    with pytest.raises(FeatureError):
        parse_actions([{"id": "a", "features": {"v": 1}}])


def test_id_of_maximum_length_is_accepted():
    long_id = "x" * MAX_ID_LENGTH
    assert MAX_ID_LENGTH == 256
    assert parse_actions([{"id": long_id, "features": [{"a": 1}]}])[0].id == long_id


def test_id_longer_than_maximum_is_refused():
    with pytest.raises(FeatureError, match="at most 256"):
        parse_actions([{"id": "x" * (MAX_ID_LENGTH + 1), "features": [{"a": 1}]}])


@pytest.mark.parametrize("action_id", ["", " ", "\t"])
def test_empty_ids_are_refused(action_id):
    with pytest.raises(FeatureError, match="must not be empty"):
        parse_actions([{"id": action_id, "features": [{"a": 1}]}])


@pytest.mark.parametrize("action_id", [None, 1, ["a"], {"a": 1}])
def test_non_string_ids_are_refused(action_id):
    with pytest.raises(FeatureError):
        parse_actions([{"id": action_id, "features": [{"a": 1}]}])


def test_missing_id_is_refused():
    with pytest.raises(FeatureError):
        parse_actions([{"features": [{"a": 1}]}])


def test_duplicate_ids_are_refused():
    raw = [{"id": i, "features": [{"f": i}]} for i in ("a", "b", "a")]
    with pytest.raises(FeatureError, match="unique"):
        parse_actions(raw)


def test_ids_differing_only_in_case_are_distinct():
    raw = [{"id": "a", "features": [{"f": 1}]}, {"id": "A", "features": [{"f": 2}]}]
    assert [a.id for a in parse_actions(raw)] == ["a", "A"]


def test_null_action_is_refused():
    with pytest.raises(FeatureError, match="Actions contains null value"):
        parse_actions([{"id": "a", "features": [{"f": 1}]}, None])


FEATURELESS = "Every action should have at least one non-null action feature."


@pytest.mark.parametrize(
    "action",
    [
        {"id": "a"},
        {"id": "a", "features": None},
        {"id": "a", "features": []},
        {"id": "a", "features": [{}]},
        {"id": "a", "features": [{"ns": {}}]},
        {"id": "a", "features": [{"v": []}]},
        {"id": "a", "features": [{"_hidden": 1, "ns": {"_x": "y"}}]},
    ],
)
def test_action_without_features_is_refused(action):
    with pytest.raises(FeatureError, match=FEATURELESS):
        parse_actions([{"id": "ok", "features": [{"f": 1}]}, action])


@pytest.mark.parametrize("item", ["a", 1, ["a"]])
def test_non_object_action_is_refused(item):
    with pytest.raises(FeatureError):
        parse_actions([item])


# ---------------------------------------------------------------- vw_document


def test_document_layout():
    context = [{"user": {"tier": "gold"}}, {"hour": 9}]
    actions = [Action("art", [{"topic": "art"}]), Action("news", [{"topic": "news", "len": 3}])]
    document = vw_document(context, actions)
    assert CONTEXT_KEY == "FromUrl"
    assert set(document) == {"FromUrl", "_multi"}
    assert document["FromUrl"] == context
    assert document["_multi"] == [
        {"_tag": "art", "i": {"constant": 1, "id": "art"}, "j": [{"topic": "art"}]},
        {"_tag": "news", "i": {"constant": 1, "id": "news"}, "j": [{"topic": "news", "len": 3}]},
    ]


def test_document_is_json_serialisable_and_keeps_action_order():
    actions = [Action(f"id-{i}", [{"f": i}]) for i in (3, 1, 2)]
    document = json.loads(json.dumps(vw_document([{"a": 1}], actions)))
    assert [entry["_tag"] for entry in document["_multi"]] == ["id-3", "id-1", "id-2"]
    assert [entry["i"]["id"] for entry in document["_multi"]] == ["id-3", "id-1", "id-2"]


@pytest.mark.parametrize("n", [1, 3, MAX_ACTIONS])
def test_vw_parses_one_shared_and_one_example_per_action(n):
    context = clean([{"user": {"tier": "gold", "age": 31, "vip": True, "v": [1, 2]}}])
    actions = parse_actions(
        [{"id": f"a{i}", "features": [{"color": f"c{i}", "size": None}]} for i in range(n)]
    )
    examples = parse(vw_document(context, actions))
    assert len(examples) == 1 + n
    assert examples[0].get_label().shared is True
    assert [e.tag for e in examples[1:]] == [a.id for a in actions]
    assert examples[0].feat_group_indices, "context features must reach the shared example"
    for example in examples[1:]:
        assert example.get_label().label is None
        assert ord("i") in example.feat_group_indices
        assert ord("j") in example.feat_group_indices


def test_vw_parses_every_accepted_feature_kind():
    context = clean(
        [{"s": "x", "n": 1.5, "b": True, "z": None, "v": [1, 2.5], "e": [], "ns": nested(3)}]
    )
    actions = parse_actions([{"id": "a", "features": [{"k": "v"}]}])
    assert len(parse(vw_document(context, actions))) == 2


def labels(examples: list[vw.Example]) -> list[str]:
    return [repr(e.get_label()) for e in examples]


def test_label_keys_in_raw_features_would_reach_vw():
    # Guard for the next test: without cleaning, VW reads `_label_…` keys as label data.
    label = {"_label_cost": -1, "_label_probability": 0.5}
    raw = [Action("a", [{"c": "x", **label}]), Action("b", [{"c": "y"}])]
    plain = [Action("a", [{"c": "x"}]), Action("b", [{"c": "y"}])]
    context = [{"u": {"t": 1}}]
    assert labels(parse(vw_document(context, raw))) != labels(parse(vw_document(context, plain)))


def test_user_label_features_cannot_reach_vw():
    raw_context = [{"_label_cost": -1, "_labelIndex": 0, "user": {"_label_cost": 5, "t": "g"}}]
    raw_actions = [
        {
            "id": "a",
            "features": [
                {"c": "x", "_label_cost": -1, "_label_probability": 0.5, "_label_Action": 1}
            ],
        },
        {"id": "b", "features": [{"c": "y", "_label_cost": 1, "_label_probability": 0.5}]},
    ]
    context = clean(raw_context)
    actions = parse_actions(raw_actions)
    document = vw_document(context, actions)
    assert "_label_cost" not in json.dumps(document)
    assert "_labelIndex" not in json.dumps(document)
    examples = parse(document)
    assert len(examples) == 3
    assert examples[0].get_label().shared is True
    for example in examples[1:]:
        assert example.get_label().label is None
