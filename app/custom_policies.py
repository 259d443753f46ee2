"""The custom policies of an offline evaluation (`POST evaluations` and `decision-service
evaluate`): at most `MAX_CUSTOM_POLICIES`, names unique (case-insensitively) and none of the
policies every evaluation compares, each a valid VW command line. Each caller words the errors
in its own terms."""

from __future__ import annotations

from collections.abc import Iterable

from app.loop.evaluations import FIXED
from policies.arguments import ArgumentsError, validate

MAX_CUSTOM_POLICIES = 10


class CustomPolicyError(ValueError):
    """Why the custom policies are refused: `reason` is `too-many`, `duplicate` (`name` clashes
    with another or with a fixed policy) or `arguments` (`name`'s arguments; the message is
    why)."""

    def __init__(self, reason: str, name: str = "", message: str = "") -> None:
        super().__init__(message or reason)
        self.reason = reason
        self.name = name


def check_count(count: int) -> None:
    if count > MAX_CUSTOM_POLICIES:
        raise CustomPolicyError("too-many")


def validated(given: Iterable[tuple[str, object]]) -> list[dict[str, str]]:
    """`(name, arguments)` pairs, in order → `{name, arguments}` with normalised arguments;
    CustomPolicyError at the first one refused."""
    policies: list[dict[str, str]] = []
    seen = {n.lower() for n in FIXED}
    for name, arguments in given:
        if name.lower() in seen:
            raise CustomPolicyError("duplicate", name)
        seen.add(name.lower())
        try:
            policies.append({"name": name, "arguments": validate(arguments)})
        except ArgumentsError as exc:
            raise CustomPolicyError("arguments", name, str(exc)) from None
    check_count(len(policies))
    return policies
