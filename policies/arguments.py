"""Validation of a policy's VW command line: only options on an allowlist are accepted.

An accepted command line names no file, opens no socket and writes no output: every option is
one of `_ALLOWED` (the `--cb_explore_adf` learner, its exploration, learning rate, regularization,
interactions and bit precision), and every other token is the value of the option before it.
`validate` applies to what an admin configures now; a policy stored earlier is loaded without it
(`with_epsilon` and `Policy` only), so tightening the rules never stops a running loop.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from enum import Enum

from policies.command_line import option_values, with_option
from policies.vw import Policy

DEFAULT_POLICY_NAME = "default"
DEFAULT_ARGUMENTS = "--cb_explore_adf --epsilon 0.2 --power_t 0 -l 0.001 --cb_type mtr -q ::"
MAX_ARGUMENTS_LENGTH = 1024
MAX_BITS = 24  # 2^24 weights × the stride already needs hundreds of MiB


class _Takes(Enum):
    """How many of the following tokens VW gives an option (`--opt=v` and `-xv` attach one)."""

    NOTHING = 0  # a switch
    ONE = 1  # exactly the next token
    SOME = 2  # every following token up to the next option (VW's list options: `-q ab cd`)


_ALLOWED: dict[str, _Takes] = {
    # the learner, required
    "cb_explore_adf": _Takes.NOTHING,
    # exploration, and each algorithm's parameters (VW 9.9 `--cb_explore_adf --<algorithm> --help`)
    "epsilon": _Takes.ONE,
    "first_only": _Takes.NOTHING,
    "first": _Takes.ONE,
    "bag": _Takes.ONE,
    "greedify": _Takes.NOTHING,
    "cover": _Takes.ONE,
    "psi": _Takes.ONE,
    "nounif": _Takes.NOTHING,
    "softmax": _Takes.NOTHING,
    "lambda": _Takes.ONE,
    "squarecb": _Takes.NOTHING,
    "gamma_scale": _Takes.ONE,
    "gamma_exponent": _Takes.ONE,
    "elim": _Takes.NOTHING,
    "mellowness": _Takes.ONE,
    "cb_min_cost": _Takes.ONE,
    "cb_max_cost": _Takes.ONE,
    # the cost estimator
    "cb_type": _Takes.ONE,
    # learning rate and its schedule
    "learning_rate": _Takes.ONE,
    "power_t": _Takes.ONE,
    "initial_t": _Takes.ONE,
    "decay_learning_rate": _Takes.ONE,
    "adaptive": _Takes.NOTHING,
    "normalized": _Takes.NOTHING,
    "invariant": _Takes.NOTHING,
    "sgd": _Takes.NOTHING,
    # regularization
    "l1": _Takes.ONE,
    "l2": _Takes.ONE,
    # interactions and the constant (`--ignore` and `--keep` are not here: vowpal-wabbit-next
    # refuses them, as the feature filters they set live in the text parser it bypasses)
    "quadratic": _Takes.SOME,
    "cubic": _Takes.SOME,
    "interactions": _Takes.SOME,
    "ignore_linear": _Takes.SOME,
    "noconstant": _Takes.NOTHING,
    # the size of the weight table (at most MAX_BITS)
    "bit_precision": _Takes.ONE,
    # accepted and ignored (Personalizer's examples carry them): kept in the stored arguments,
    # never passed to VW (`Policy` runs VW quiet, and examples are parsed as VW JSON)
    "dsjson": _Takes.NOTHING,
    "quiet": _Takes.NOTHING,
}
_SHORT = {"l": "learning_rate", "q": "quadratic", "b": "bit_precision"}
_IGNORED = ("--dsjson", "--quiet")
# a token VW reads as a number, not as an option, when it starts with "-" ("-0.5", "-1E-07")
_NUMBER = re.compile(r"-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


class ArgumentsError(ValueError):
    """The policy arguments are not an acceptable VW command line; the message says why."""


@dataclass
class _Option:
    spelling: str  # as written, without its value: "-f", "--data"
    name: str  # the long name ("learning_rate" for "-l"); an unknown short option keeps its letter
    values: list[str]


def _parse(tokens: list[str]) -> tuple[list[_Option], list[str]]:
    """The options in order, each with its values, and the tokens that are no option's value
    (VW reads those as data files). An option off the allowlist takes no values here."""
    options: list[_Option] = []
    strays: list[str] = []
    taking: _Option | None = None  # the option the next non-option token belongs to
    for token in tokens:
        if token.startswith("-") and len(token) > 1 and not _NUMBER.fullmatch(token):
            if token.startswith("--"):
                name, equals, attached = token[2:].partition("=")
                option = _Option(f"--{name}", name, [attached] if equals else [])
            else:  # a short option, its value possibly attached: -l0.5, -b18, -qab
                letter, attached = token[1], token[2:]
                values = [attached] if attached else []
                option = _Option(f"-{letter}", _SHORT.get(letter, letter), values)
            options.append(option)
            takes = _ALLOWED.get(option.name, _Takes.NOTHING)
            wants_one = takes is _Takes.ONE and not option.values
            taking = option if takes is _Takes.SOME or wants_one else None
        elif taking is not None:
            taking.values.append(token)
            if _ALLOWED[taking.name] is _Takes.ONE:
                taking = None
        else:
            strays.append(token)
    return options, strays


def _runnable(tokens: list[str]) -> list[str]:
    """The tokens VW runs: without the options accepted and ignored (`--dsjson`, `--quiet`)."""
    return [token for token in tokens if token not in _IGNORED]


def validate(arguments: str) -> str:
    """Return the normalised command line or raise ArgumentsError."""
    if not isinstance(arguments, str) or not arguments.strip():
        raise ArgumentsError("Policy arguments must be a non-empty string.")
    if "\x00" in arguments or not arguments.isprintable():
        raise ArgumentsError("Policy arguments must be printable text.")
    if len(arguments) > MAX_ARGUMENTS_LENGTH:
        raise ArgumentsError(f"Policy arguments must be at most {MAX_ARGUMENTS_LENGTH} characters.")
    try:
        tokens = shlex.split(arguments)
    except ValueError as exc:
        raise ArgumentsError(f"Policy arguments cannot be parsed: {exc}.") from None
    options, strays = _parse(tokens)
    if not any(o.spelling == "--cb_explore_adf" for o in options):
        raise ArgumentsError("The learning policy must contain --cb_explore_adf.")
    refused = dict.fromkeys(o.spelling for o in options if o.name not in _ALLOWED)
    if refused:
        listed = ", ".join(refused)
        raise ArgumentsError(f"Policy arguments contain options that are not allowed: {listed}.")
    if strays:
        raise ArgumentsError(
            f"Policy arguments must not name files: '{strays[0]}' is no option's value, "
            "and VW would read it as a data file."
        )
    paths = [value for option in options for value in option.values if "/" in value]
    if paths:  # no allowed option takes a path
        raise ArgumentsError(f"Policy arguments must not name files: '{paths[0]}'.")
    _check_bits(options)
    try:
        policy = Policy(shlex.join(_runnable(tokens)))
    except Exception as exc:  # VW raises RuntimeError/CLIError with its own message
        raise ArgumentsError(f"VW rejected the policy arguments: {exc}") from None
    if not policy.is_single_slot_cb():
        raise ArgumentsError(
            "The policy must be a single-slot --cb_explore_adf policy "
            "(its predictions must be action probabilities)."
        )
    return arguments.strip()


def _check_bits(options: list[_Option]) -> None:
    for option in options:
        if option.name == "bit_precision" and any(
            not value.isdigit() or int(value) > MAX_BITS for value in option.values
        ):
            raise ArgumentsError(f"--bit_precision must be a whole number of at most {MAX_BITS}.")


_OTHER_EXPLORATION = {
    "first", "bag", "cover", "softmax", "regcb", "regcbopt", "squarecb", "synthcover", "rnd",
}  # fmt: skip


def with_epsilon(arguments: str, epsilon: float) -> str:
    """The command line VW runs: `--epsilon` set to `epsilon` (Personalizer's explorationPercentage),
    without the options accepted and ignored (`--dsjson`, `--quiet`).

    An existing `--epsilon` value is replaced in place; otherwise `--epsilon` is appended unless
    the arguments choose another exploration algorithm (then they are returned unchanged, but for
    the ignored options). Every policy built from stored arguments goes through here, and nothing
    here validates: a policy stored under older rules still loads.
    """
    given = shlex.split(arguments)
    tokens = _runnable(given)
    value = f"{epsilon:.6g}"
    chosen = _OTHER_EXPLORATION.intersection(o.name for o in _parse(tokens)[0])
    if option_values(tokens, "epsilon") or not chosen:
        return " ".join(with_option(tokens, "epsilon", None, value))
    return arguments if tokens == given else " ".join(tokens)
