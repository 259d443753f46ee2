"""Editing a VW command line: the values of an option, whatever its spelling (`--long v`,
`--long=v`, `-s v`, `-sv`), and the command line with an option set or removed. Used by
`with_epsilon` and by the policy-optimization search."""

from __future__ import annotations


def with_option(tokens: list[str], long: str, short: str | None, value: str) -> list[str]:
    """`tokens` with the option's value replaced in place (or the option appended)."""
    for i, token in enumerate(tokens):
        if _flag(token, long, short) and i + 1 < len(tokens):
            head = [*tokens[:i], token, value]
        elif token.startswith(f"--{long}="):
            head = [*tokens[:i], f"--{long}={value}"]
        elif _attached(token, short):
            head = [*tokens[:i], f"-{short}{value}"]
        else:
            continue
        return head + without_option(tokens[len(head) :], long, short)
    return [*tokens, f"--{long}" if short is None else f"-{short}", value]


def option_values(tokens: list[str], long: str, short: str | None = None) -> list[str]:
    """The values given to an option, in order, whatever its spelling."""
    values = []
    for i, token in enumerate(tokens):
        if _flag(token, long, short) and i + 1 < len(tokens):
            values.append(tokens[i + 1])
        elif token.startswith(f"--{long}="):
            values.append(token.split("=", 1)[1])
        elif _attached(token, short):
            values.append(token[2:])
    return values


def without_option(tokens: list[str], long: str, short: str | None = None) -> list[str]:
    """`tokens` without the option (`--long v`, `--long=v`, `-s v`, `-sv`) and its values."""
    out: list[str] = []
    skip = False
    for token in tokens:
        if skip:
            skip = False
        elif _flag(token, long, short):
            skip = True
        elif not (token.startswith(f"--{long}=") or _attached(token, short)):
            out.append(token)
    return out


def _flag(token: str, long: str, short: str | None) -> bool:
    return token == f"--{long}" or (short is not None and token == f"-{short}")


def _attached(token: str, short: str | None) -> bool:
    """`-sVALUE`: a short option with its value in the same token."""
    return short is not None and len(token) > 2 and token[0] == "-" and token[1] == short
