"""Personalizer JSON features → the VW JSON document a policy ranks and learns from.

Rules (Personalizer's): `contextFeatures` and each action's `features` are lists of objects;
an object value is a namespace; strings are one-hot (`key` + `value`), numbers are weights,
booleans are flags, arrays must hold numbers only; `null` is the string "null"; a name that
starts with `_` is ignored (so no user feature can reach VW's special `_label…` keys).

Layout (Personalizer's, so exported logs read the same in `vw --dsjson`): the context goes
under the key "FromUrl"; each action is `{"_tag": id, "i": {"constant": 1, "id": id},
"j": [features…]}` under `_multi`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import msgspec

CONTEXT_KEY = "FromUrl"
MAX_ACTIONS = 50
MAX_ID_LENGTH = 256
MAX_DEPTH = 8
# Characters Personalizer refused in namespace names: codes < 33, ':' , '|' and 126–140.
_FORBIDDEN = {chr(c) for c in range(33)} | {":", "|"} | {chr(c) for c in range(126, 141)}


_SAFE_INT = 2**1023  # integers below this in magnitude convert to a finite float


class FeatureError(ValueError):
    """The request's features break Personalizer's rules; the message says which."""


def is_number(value: Any) -> bool:
    """A finite JSON number (not a bool); integers too large for a double are not."""
    kind = type(value)
    if kind is float:
        return math.isfinite(value)
    if kind is int and -_SAFE_INT < value < _SAFE_INT:
        return True
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def is_plain_text(value: str) -> bool:
    """Text that can be stored and hashed: no NUL character, no lone surrogate."""
    if "\x00" in value:
        return False
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _text(value: str, where: str) -> str:
    if not is_plain_text(value):
        raise FeatureError(f"{where}: text contains a NUL character or invalid Unicode.")
    return value


class Action(msgspec.Struct, frozen=True):
    """A candidate action: its id and its (cleaned) features. A struct, so that a decoder can
    produce actions straight from a request body."""

    id: str
    features: list[dict[str, Any]]


def clean_features(items: Any, where: str) -> list[dict[str, Any]]:
    """Validate a list of feature objects and return it without ignored (`_`) names."""
    if not isinstance(items, list):
        raise FeatureError(f"{where} must be an array of objects.")
    cleaned = []
    for item in items:
        if item is None:
            raise FeatureError(f"{where} contains null value.")
        if not isinstance(item, dict):
            raise FeatureError(f"{where}: features are not in key value pair format.")
        cleaned.append(_clean_object(item, where, depth=1))
    return cleaned


def _clean_object(obj: dict[str, Any], where: str, depth: int) -> dict[str, Any]:
    if depth > MAX_DEPTH:
        raise FeatureError(f"{where}: namespaces are nested deeper than {MAX_DEPTH} levels.")
    out: dict[str, Any] = {}
    for key, value in obj.items():
        if key == "":
            raise FeatureError(
                "Context features and action features cannot use the empty string as an id."
            )
        if key.startswith("_"):
            continue
        out[_text(key, where)] = _clean_value(key, value, where, depth)
    return out


def _clean_value(key: str, value: Any, where: str, depth: int) -> Any:
    kind = type(value)
    if kind is str:
        return _text(value, where)
    if kind is float or kind is int:  # the common cases first, exactly (bool is not int here)
        if not is_number(value):
            raise FeatureError(f"{where}: feature '{key}' is not a finite number.")
        return value
    if value is None:
        return "null"
    if isinstance(value, str):
        return _text(value, where)
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        if not is_number(value):
            raise FeatureError(f"{where}: feature '{key}' is not a finite number.")
        return value
    if isinstance(value, dict):
        bad = _FORBIDDEN.intersection(key)
        if bad:
            codes = ", ".join(str(ord(c)) for c in sorted(bad))
            raise FeatureError(
                f"{where}: namespace '{key}' contains a forbidden character (code {codes})."
            )
        return _clean_object(value, where, depth + 1)
    if isinstance(value, list):
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
            raise FeatureError("Features should not contain array with non-number items.")
        if not all(is_number(v) for v in value):
            raise FeatureError(f"{where}: feature '{key}' holds a number that is not finite.")
        return value
    raise FeatureError(f"{where}: feature '{key}' has an unsupported type.")


def names_allowed(items: list[dict[str, Any]], namespaces: bool = True) -> bool:
    """True when no name in `items` is empty and no namespace (an object value, at any depth)
    has a forbidden character in its name; `namespaces=False` when the objects are known to
    hold none. With it, features a typed decoder has checked (text, finite numbers, booleans,
    arrays of numbers, namespaces within MAX_DEPTH) and with no ignored (`_`) name are clean as
    they are: `clean_features` would return them unchanged."""
    for obj in items:
        if "" in obj:
            return False
        # most objects hold no namespace: `map` finds that without a Python loop
        if namespaces and dict in map(type, obj.values()):
            for key, value in obj.items():
                if type(value) is dict and (
                    _FORBIDDEN.intersection(key) or not names_allowed([value])
                ):
                    return False
    return True


def has_features(items: list[dict[str, Any]]) -> bool:
    """True when at least one feature survives cleaning (empty namespaces do not count)."""
    for item in items:  # noqa: SIM110 (a loop, not any(): this runs for every action of every rank)
        if _object_has_feature(item):
            return True
    return False


def _object_has_feature(obj: dict[str, Any]) -> bool:
    for value in obj.values():
        if isinstance(value, dict):
            if _object_has_feature(value):
                return True
        elif value is not False and not (isinstance(value, list) and not value):
            return True  # VW makes no feature of `false` or of an empty array
    return False


def parse_actions(raw: Any) -> list[Action]:
    """Validate the `actions` array: 1–50 objects with unique, non-empty ids."""
    if not isinstance(raw, list):
        raise FeatureError("Actions must be an array.")
    if not 1 <= len(raw) <= MAX_ACTIONS:
        raise FeatureError(f"Action count should be between 1 and {MAX_ACTIONS}.")
    actions: list[Action] = []
    seen: set[str] = set()
    for item in raw:
        if item is None:
            raise FeatureError("Actions contains null value.")
        if not isinstance(item, dict):
            raise FeatureError("Each action must be an object with 'id' and 'features'.")
        action_id = item.get("id")
        if not isinstance(action_id, str):
            raise FeatureError("Action ids must be strings.")
        if not action_id.strip():
            raise FeatureError("Action ids must not be empty.")
        _text(action_id, "Action ids")
        if len(action_id) > MAX_ID_LENGTH:
            raise FeatureError(f"Action ids must be at most {MAX_ID_LENGTH} characters.")
        if action_id in seen:
            raise FeatureError(f"Action ids must be unique; '{action_id}' appears twice.")
        seen.add(action_id)
        if item.get("features") is None:
            raise FeatureError("Every action should have at least one non-null action feature.")
        features = clean_features(item["features"], f"Action '{action_id}' features")
        if not has_features(features):
            raise FeatureError("Every action should have at least one non-null action feature.")
        actions.append(Action(action_id, features))
    return actions


def vw_document(context: list[dict[str, Any]], actions: Sequence[Action]) -> dict[str, Any]:
    """The VW JSON document for one decision over `actions` (already cleaned)."""
    return {
        CONTEXT_KEY: context,
        "_multi": [
            {"_tag": a.id, "i": {"constant": 1, "id": a.id}, "j": a.features} for a in actions
        ],
    }
