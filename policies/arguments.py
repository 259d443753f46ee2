"""Validation of a policy's VW command line, as Personalizer validated it."""

from __future__ import annotations

import os
import shlex

from policies.vw import Policy

DEFAULT_POLICY_NAME = "default"
DEFAULT_ARGUMENTS = "--cb_explore_adf --epsilon 0.2 --power_t 0 -l 0.001 --cb_type mtr -q ::"
MAX_ARGUMENTS_LENGTH = 1024

# Options that read or write files, change the input format or the output (Personalizer's list).
_FORBIDDEN = {
    "data", "d", "initial_regressor", "i", "final_regressor", "f", "extra_metrics", "no_stdin",
    "dry_run", "id", "save_resume", "preserve_performance_counter", "predict_only_model",
    "dsjson", "binary_parser", "json", "quiet", "readable_model", "invert_hash",
    "driver_output", "driver_output_off", "log_level", "log_output", "limit_output",
    "cache", "c", "cache_file", "save_per_pass", "output_feature_regularizer_binary",
    "output_feature_regularizer_text", "feature_mask", "audit_regressor", "predictions", "p",
    "raw_predictions", "r", "daemon", "port", "pid_file", "port_file", "input_feature_regularizer",
    "compressed", "passes", "holdout_off", "onethread", "flatbuffer", "audit", "a",
    "help", "h", "version", "dictionary", "dictionary_path", "sendto", "testonly", "t",
}  # fmt: skip
MAX_BITS = 24  # 2^24 weights × the stride already needs hundreds of MiB


class ArgumentsError(ValueError):
    """The policy arguments are not an acceptable VW command line; the message says why."""


def _option_name(token: str) -> str | None:
    if token.startswith("--"):
        return token[2:].split("=", 1)[0]
    if token.startswith("-") and len(token) >= 2 and not _is_number(token):
        return token[1]
    return None


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


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
    names = [n for n in map(_option_name, tokens) if n is not None]
    if "cb_explore_adf" not in names:
        raise ArgumentsError("The learning policy must contain --cb_explore_adf.")
    refused = sorted({n for n in names if n in _FORBIDDEN})
    if refused:
        listed = ", ".join(("--" if len(n) > 1 else "-") + n for n in refused)
        raise ArgumentsError(f"Policy arguments contain options that are not allowed: {listed}.")
    for token in tokens:
        if _option_name(token) is None and ("/" in token or os.path.exists(token)):
            raise ArgumentsError(f"Policy arguments must not name files: '{token}'.")
    _check_bits(tokens)
    try:
        policy = Policy(arguments)
    except Exception as exc:  # VW raises RuntimeError/CLIError with its own message
        raise ArgumentsError(f"VW rejected the policy arguments: {exc}") from None
    if not policy.is_single_slot_cb():
        raise ArgumentsError(
            "The policy must be a single-slot --cb_explore_adf policy "
            "(its predictions must be action probabilities)."
        )
    return arguments.strip()


def _check_bits(tokens: list[str]) -> None:
    for i, token in enumerate(tokens):
        value = None
        if token in ("-b", "--bit_precision") and i + 1 < len(tokens):
            value = tokens[i + 1]
        elif token.startswith("--bit_precision="):
            value = token.split("=", 1)[1]
        elif token.startswith("-b") and len(token) > 2:
            value = token[2:]
        if value is not None and (not value.isdigit() or int(value) > MAX_BITS):
            raise ArgumentsError(f"--bit_precision must be a whole number of at most {MAX_BITS}.")


_OTHER_EXPLORATION = {
    "first", "bag", "cover", "softmax", "regcb", "regcbopt", "squarecb", "synthcover", "rnd",
}  # fmt: skip


def with_epsilon(arguments: str, epsilon: float) -> str:
    """The command line VW runs: `--epsilon` set to `epsilon` (Personalizer's explorationPercentage).

    An existing `--epsilon` value is replaced in place; otherwise `--epsilon` is appended unless
    the arguments choose another exploration algorithm (then they are returned unchanged).
    """
    tokens = shlex.split(arguments)
    value = f"{epsilon:.6g}"
    for i, token in enumerate(tokens):
        if token == "--epsilon" and i + 1 < len(tokens):
            tokens[i + 1] = value
            return " ".join(tokens)
        if token.startswith("--epsilon="):
            tokens[i] = f"--epsilon={value}"
            return " ".join(tokens)
    if _OTHER_EXPLORATION.intersection(n for n in map(_option_name, tokens) if n):
        return arguments
    return " ".join([*tokens, "--epsilon", value])
