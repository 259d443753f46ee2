"""Validation of a policy's VW command line and the epsilon rewrite (reference §2.2)."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import vowpal_wabbit_next as vw

from policies.arguments import (
    DEFAULT_ARGUMENTS,
    MAX_ARGUMENTS_LENGTH,
    ArgumentsError,
    validate,
    with_epsilon,
)
from policies.features import Action
from policies.vw import Policy

ROOT = Path(__file__).resolve().parents[2]
SPEC_DEFAULT = "--cb_explore_adf --epsilon 0.2 --power_t 0 -l 0.001 --cb_type mtr -q ::"


@pytest.fixture(autouse=True)
def _in_empty_directory(tmp_path, monkeypatch):
    """Run in an empty directory: a file option that slipped through would show up there."""
    monkeypatch.chdir(tmp_path)
    yield
    assert list(tmp_path.iterdir()) == [], "validation must not create files"


# ---------------------------------------------------------------- accepted


def test_default_arguments_are_personalizers():
    assert DEFAULT_ARGUMENTS == SPEC_DEFAULT


def test_default_arguments_validate():
    assert validate(DEFAULT_ARGUMENTS) == DEFAULT_ARGUMENTS


@pytest.mark.parametrize(
    "arguments",
    [
        "--cb_explore_adf",
        "--cb_explore_adf --epsilon 0.1",
        "--cb_explore_adf --epsilon=0.1 -q ::",
        "--cb_explore_adf --squarecb --gamma_scale 10",
        "--cb_explore_adf --softmax --lambda 5",
        "--cb_explore_adf --cb_type ips -l 0.5 --power_t 0.5",
        "-q :: --cb_explore_adf --epsilon 0.3",
        "--cb_explore_adf --l1 -0.0 --epsilon 0.05",
    ],
)
def test_valid_arguments_are_accepted(arguments):
    assert validate(arguments) == arguments


def test_surrounding_whitespace_is_stripped():
    assert validate(f"  {DEFAULT_ARGUMENTS}   ") == DEFAULT_ARGUMENTS


def of_length(length: int) -> str:
    """The default arguments padded to `length` with trailing zeros on the learning rate."""
    arguments = DEFAULT_ARGUMENTS.replace(" -l 0.001", "") + " -l 0.001"
    return arguments + "0" * (length - len(arguments))


def test_maximum_length_is_accepted():
    arguments = of_length(1024)
    assert len(arguments) == MAX_ARGUMENTS_LENGTH == 1024
    assert validate(arguments) == arguments


# ---------------------------------------------------------------- refused


@pytest.mark.parametrize("arguments", ["", "   ", None, 42, ["--cb_explore_adf"]])
def test_empty_or_non_string_arguments_are_refused(arguments):
    with pytest.raises(ArgumentsError):
        validate(arguments)


def test_longer_than_1024_characters_is_refused():
    arguments = of_length(1025)
    assert len(arguments) == 1025
    with pytest.raises(ArgumentsError, match="1024"):
        validate(arguments)


@pytest.mark.parametrize(
    "arguments",
    [
        "--epsilon 0.2 --power_t 0",
        "--cb_adf --epsilon 0.2",
        "--cb_explore --epsilon 0.2 3",
        "--cb_type cb_explore_adf",
        "--cb_explore_adfx",
        "cb_explore_adf",
    ],
)
def test_missing_cb_explore_adf_is_refused(arguments):
    with pytest.raises(ArgumentsError, match="--cb_explore_adf"):
        validate(arguments)


@pytest.mark.parametrize(
    ("extra", "shown"),
    [
        ("-d data.txt", "-d"),
        ("--data data.txt", "--data"),
        ("--data=data.txt", "--data"),
        ("-f model.vw", "-f"),
        ("--final_regressor model.vw", "--final_regressor"),
        ("-i model.vw", "-i"),
        ("--initial_regressor model.vw", "--initial_regressor"),
        ("--save_resume", "--save_resume"),
        ("--json", "--json"),
        ("--dsjson", "--dsjson"),
        ("--quiet", "--quiet"),
        ("--readable_model readable.txt", "--readable_model"),
        ("--invert_hash inverted.txt", "--invert_hash"),
        ("--extra_metrics metrics.json", "--extra_metrics"),
        ("--no_stdin", "--no_stdin"),
        ("--dry_run", "--dry_run"),
        ("--id model-7", "--id"),
        ("--preserve_performance_counter", "--preserve_performance_counter"),
        ("--predict_only_model", "--predict_only_model"),
        ("--binary_parser", "--binary_parser"),
        ("--driver_output stderr", "--driver_output"),
        ("--driver_output_off", "--driver_output_off"),
        ("--log_level info", "--log_level"),
        ("--log_output stderr", "--log_output"),
        ("--limit_output 10", "--limit_output"),
        ("-p predictions.txt", "-p"),
        ("--predictions predictions.txt", "--predictions"),
        ("-c", "-c"),
        ("--cache_file cache.bin", "--cache_file"),
        ("--audit", "--audit"),
        ("--daemon --port 26542", "--daemon"),
    ],
)
def test_forbidden_options_are_refused(extra, shown):
    for arguments in (f"{DEFAULT_ARGUMENTS} {extra}", f"{extra} {DEFAULT_ARGUMENTS}"):
        with pytest.raises(ArgumentsError, match="not allowed") as refused:
            validate(arguments)
        assert shown in str(refused.value).split(": ", 1)[1].rstrip(".").split(", ")


def test_every_forbidden_option_is_listed():
    with pytest.raises(ArgumentsError) as refused:
        validate(f"{DEFAULT_ARGUMENTS} --quiet -f m.vw --json")
    listed = str(refused.value).split(": ", 1)[1].rstrip(".").split(", ")
    assert sorted(listed) == sorted(["--quiet", "-f", "--json"])


def test_positional_data_file_is_refused(tmp_path):
    data = tmp_path / "train.json"
    data.write_text("")
    try:
        with pytest.raises(ArgumentsError):
            validate(f"{data} {DEFAULT_ARGUMENTS}")
    finally:
        data.unlink()


def test_dictionary_file_option_is_refused(tmp_path):
    dictionary = tmp_path / "dict.txt"
    dictionary.write_text("a 1\n")
    try:
        with pytest.raises(ArgumentsError):
            validate(f"--cb_explore_adf --dictionary_path {tmp_path} --dictionary u:dict.txt")
    finally:
        dictionary.unlink()


VALIDATE_IN_CHILD = """
import sys
from policies.arguments import ArgumentsError, validate
try:
    validate(sys.argv[1])
except ArgumentsError:
    print("refused")
else:
    print("accepted")
"""


@pytest.mark.parametrize("option", ["--help", "-h", "--version"])
def test_help_and_version_are_refused_without_exiting(option):
    done = subprocess.run(
        [sys.executable, "-c", VALIDATE_IN_CHILD, f"{DEFAULT_ARGUMENTS} {option}"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert done.stdout.strip().splitlines()[-1:] == ["refused"]


def vw_message(arguments: str) -> str:
    try:
        vw.Workspace([*shlex.split(arguments), "--quiet"])
    except Exception as exc:
        return str(exc)
    raise AssertionError(f"VW accepted {arguments!r}")


@pytest.mark.parametrize(
    "arguments",
    [
        "--cb_explore_adf --no_such_option",
        "--cb_explore_adf --epsilon 2",
        "--cb_explore_adf --epsilon abc",
        "--cb_explore_adf --cb_type nope",
        "--cb_explore_adf -q",
        "--cb_explore_adf -l",
        "--cb_explore_adf --power_t x",
    ],
)
def test_invalid_vw_options_are_refused_with_vws_message(arguments):
    message = vw_message(arguments)
    with pytest.raises(ArgumentsError) as refused:
        validate(arguments)
    assert message
    assert message in str(refused.value)


def test_unbalanced_quotes_are_refused():
    with pytest.raises(ArgumentsError):
        validate('--cb_explore_adf --epsilon "0.2')


# ---------------------------------------------------------------- with_epsilon


def epsilons(arguments: str) -> list[float]:
    tokens = shlex.split(arguments)
    values = []
    for i, token in enumerate(tokens):
        if token == "--epsilon":
            values.append(float(tokens[i + 1]))
        elif token.startswith("--epsilon="):
            values.append(float(token.split("=", 1)[1]))
    return values


def without_epsilon(arguments: str) -> list[str]:
    tokens = shlex.split(arguments)
    out, skip = [], False
    for token in tokens:
        if skip:
            skip = False
        elif token == "--epsilon":
            skip = True
        elif not token.startswith("--epsilon="):
            out.append(token)
    return out


@pytest.mark.parametrize("epsilon", [0.0, 0.05, 0.5, 1.0, 0.123456, 0.001])
def test_with_epsilon_replaces_an_existing_epsilon(epsilon):
    result = with_epsilon(DEFAULT_ARGUMENTS, epsilon)
    assert epsilons(result) == [pytest.approx(epsilon, rel=1e-6)]
    assert without_epsilon(result) == without_epsilon(DEFAULT_ARGUMENTS)
    # In place: the option keeps its position.
    assert shlex.split(result).index("--epsilon") == shlex.split(DEFAULT_ARGUMENTS).index(
        "--epsilon"
    )
    assert validate(result) == result


def test_with_epsilon_replaces_the_equals_form():
    result = with_epsilon("--cb_explore_adf --epsilon=0.1 -q ::", 0.3)
    assert epsilons(result) == [pytest.approx(0.3)]
    assert without_epsilon(result) == ["--cb_explore_adf", "-q", "::"]
    assert validate(result) == result


@pytest.mark.parametrize("arguments", ["--cb_explore_adf -q ::", "--cb_explore_adf --cb_type ips"])
def test_with_epsilon_appends_one_when_absent(arguments):
    result = with_epsilon(arguments, 0.35)
    assert epsilons(result) == [pytest.approx(0.35)]
    assert without_epsilon(result) == shlex.split(arguments)
    assert validate(result) == result


@pytest.mark.parametrize(
    "arguments",
    [
        "--cb_explore_adf --squarecb -q ::",
        "--cb_explore_adf --squarecb --gamma_scale 10",
        "--cb_explore_adf --softmax --lambda 5",
        "--cb_explore_adf --first 2",
        "--cb_explore_adf --bag 3",
    ],
)
def test_with_epsilon_leaves_other_exploration_alone(arguments):
    assert with_epsilon(arguments, 0.4) == arguments


def test_with_epsilon_is_what_vw_explores_with():
    actions = [Action(f"a{i}", [{"k": f"v{i}"}]) for i in range(4)]
    context = [{"u": {"t": 1}}]

    def learned(arguments: str) -> list[float]:
        policy = Policy(arguments)
        for n in range(20):
            policy.learn(context, actions, n % 4, -1.0 if n % 4 == 1 else 0.0, 0.25)
        return policy.pmf(context, actions)

    greedy = learned(with_epsilon(DEFAULT_ARGUMENTS, 0.0))
    assert greedy == pytest.approx([0.0, 1.0, 0.0, 0.0], abs=1e-6)
    uniform = learned(with_epsilon(DEFAULT_ARGUMENTS, 1.0))
    assert uniform == pytest.approx([0.25] * 4, abs=1e-6)
    mixed = learned(with_epsilon("--cb_explore_adf -q ::", 0.4))
    assert mixed == pytest.approx([0.1, 0.7, 0.1, 0.1], abs=1e-6)
