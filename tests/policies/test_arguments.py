"""Validation of a policy's VW command line (an allowlist of options) and the epsilon rewrite
(reference §2.2)."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import vowpal_wabbit_next as vw

from policies.arguments import (
    _ALLOWED,
    DEFAULT_ARGUMENTS,
    MAX_ARGUMENTS_LENGTH,
    ArgumentsError,
    validate,
    with_epsilon,
)
from policies.features import Action
from policies.vw import Policy, example_text

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
        # --opt=value, short options with the value attached, exponents, negative numbers
        "--cb_explore_adf --epsilon=0.1 --learning_rate=0.5 --bit_precision=18 --cb_type=ips",
        "--cb_explore_adf -l0.5 -b18 -qab",
        "--cb_explore_adf --l1 1E-07 --l2 1e-6 -l .5 --power_t 5E-1",
        "--cb_explore_adf --softmax --lambda -1 --l1 -1E-07 --l2 -.5",
        # list options take every value up to the next option
        "--cb_explore_adf -q ab cd --interactions abc ab --cubic abc",
        "--cb_explore_adf --quadratic=ab cd --epsilon 0.1",
    ],
)
def test_valid_arguments_are_accepted(arguments):
    assert validate(arguments) == arguments


# One sample per allowed option, grouped as in policies/arguments.py.
ALLOWED_SAMPLES = [
    "--epsilon 0.1",
    "--first_only",
    "--first 2",
    "--bag 3 --greedify",
    "--cover 3 --psi 0.5 --nounif",
    "--softmax --lambda 2",
    "--squarecb --gamma_scale 5 --gamma_exponent 0.4",
    "--squarecb --elim --mellowness 0.01 --cb_min_cost 0 --cb_max_cost 1",
    "--cb_type dr",
    "--learning_rate 0.1",
    "--power_t 0.5 --initial_t 1 --decay_learning_rate 0.9",
    "--adaptive --normalized --invariant",
    "--sgd",
    "--l1 1e-6 --l2 1e-6",
    "--quadratic ab --cubic abc --interactions abcd",
    "--ignore_linear a --noconstant",
    "--bit_precision 18",
    "--dsjson --quiet",
]


@pytest.mark.parametrize("sample", ALLOWED_SAMPLES)
def test_each_allowed_option_is_accepted(sample):
    arguments = f"--cb_explore_adf {sample}"
    assert validate(arguments) == arguments


def test_the_samples_cover_the_allowlist():
    named = {token[2:] for sample in ALLOWED_SAMPLES for token in sample.split() if "--" in token}
    assert named | {"cb_explore_adf"} == set(_ALLOWED)


@pytest.mark.parametrize(
    "arguments",
    [
        # every spelling policies/optimization.py emits (`_set`, `_with_interactions`)
        "--cb_explore_adf --epsilon 0.2 -l 0.1 --cb_type ips",
        "--cb_explore_adf --epsilon 0.2 --learning_rate 0.1 --cb_type mtr --power_t 0",
        "--cb_explore_adf --epsilon 0.2 --learning_rate=0.1 --power_t 0.5",
        "--cb_explore_adf --epsilon 0.2 -l0.1 --power_t 0.5",
        "--cb_explore_adf --epsilon 0.2 -l 0.0333333 --cb_type mtr -q ab -q ac -q bc",
        "--cb_explore_adf --epsilon 0.2 -l 0.003 --power_t 0 -q ::",
    ],
)
def test_what_policy_optimization_emits_is_accepted(arguments):
    assert validate(arguments) == arguments


# Microsoft's published Personalizer argument strings.
PUBLISHED = [
    # The default (LL `CBDefaultLearningPolicy`): Personalizer's docs show it with a leading
    # space, in MicrosoftDocs/azure-docs articles/ai-services/personalizer/concept-active-learning.md
    # ("The following .json is an example of a learning policy"); the SDK tests assert it after
    # reset_policy (Azure/azure-sdk-for-net sdk/personalizer/Azure.AI.Personalizer/tests/
    # Personalizer/ConfigurationsTests.cs, ResetPolicy).
    " --cb_explore_adf --epsilon 0.2 --power_t 0 -l 0.001 --cb_type mtr -q ::",
    # Azure/azure-sdk-for-net sdk/personalizer/Azure.AI.Personalizer/tests/Personalizer/
    # EvaluationsTests.cs, CreateEvaluation ("Custom Policy 1"); the same string in the older
    # Microsoft.Azure.CognitiveServices.Personalizer tests.
    "--cb_explore_adf --epsilon 0.2 --dsjson --cb_type ips -l 0.5 --l1 1E-07 --power_t 0.5",
    # microsoft/learning-loop src/Tests/Common/Trainer/LearnMetricsParserTests.cs, CB_ML_ARGS.
    "--cb_explore_adf --epsilon 0.2 --power_t 0 -l 1e-05 --cb_type ips -q OE -q GS -q OS",
    # microsoft/learning-loop deploy/learning-loop-sample.bicep, loopEnvVarMachineLearningArguments.
    "--cb_explore_adf --epsilon 0.2 --power_t 0 -l 0.001 --cb_type ips -q ::",
    # microsoft/learning-loop TestMachineLearningArgsHelper: testPolicyNoEpsilon, and the result
    # of UpdateExplorationPercentage(testPolicyWithEpsilon, 0.3).
    "--cb_explore_adf --power_t 0 -l 0.001 --cb_type mtr -q ::",
    "--cb_explore_adf --epsilon 0.3 --power_t 0 -l 0.001 --cb_type mtr -q ::",
]


@pytest.mark.parametrize("arguments", PUBLISHED)
def test_personalizers_published_arguments_are_accepted(arguments):
    assert validate(arguments) == arguments.strip()


# Azure/azure-sdk-for-net sdk/personalizer/Azure.AI.Personalizer/tests/Personalizer/
# ConfigurationsTests.cs, UpdateAndGetPolicy (and azure-sdk-for-python's test_configuration.py).
PUBLISHED_WITH_IGNORE = (
    "--cb_explore_adf --quadratic GT --quadratic MR --quadratic GR --quadratic ME --quadratic OT "
    "--quadratic OE --quadratic OR --quadratic MS --quadratic GX --ignore A --cb_type ips "
    "--epsilon 0.2"
)


def test_ignore_is_refused_because_the_vw_binding_refuses_it():
    """`--ignore` (and `--keep`) are off the allowlist only because vowpal-wabbit-next refuses
    them; when it accepts them, this fails and they can join the allowlist."""
    for option in ("--ignore A", "--keep A"):
        assert "not supported" in vw_message(f"--cb_explore_adf {option}")
    with pytest.raises(ArgumentsError) as refused:
        validate(PUBLISHED_WITH_IGNORE)
    assert listed(refused.value) == ["--ignore"]
    rest = PUBLISHED_WITH_IGNORE.replace(" --ignore A", "")
    assert validate(rest) == rest


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


def listed(error: ArgumentsError) -> list[str]:
    """The options a "not allowed" message names, in its order."""
    message = str(error)
    assert "not allowed" in message, message
    return message.split(": ", 1)[1].rstrip(".").split(", ")


# VW 9.9's options that read or write files, use the network, write output or change the input
# format (its `--help`, grouped as there), Personalizer's denylist (LL `VwOptionValidator.cs`),
# and multi-slot. None is on the allowlist.
REFUSED = [
    # Input
    ("-d data.txt", "-d"),
    ("--data data.txt", "--data"),
    ("--data=data.txt", "--data"),
    ("--daemon", "--daemon"),
    ("--foreground", "--foreground"),
    ("--port 26542", "--port"),
    ("--num_children 2", "--num_children"),
    ("--pid_file vw.pid", "--pid_file"),
    ("--port_file vw.port", "--port_file"),
    ("-c", "-c"),
    ("--cache", "--cache"),
    ("--cache_file cache.bin", "--cache_file"),
    ("-k", "-k"),
    ("--kill_cache", "--kill_cache"),
    ("--compressed", "--compressed"),
    ("--no_stdin", "--no_stdin"),
    ("--no_daemon", "--no_daemon"),
    ("--json", "--json"),
    ("--binary_parser", "--binary_parser"),
    ("--flatbuffer", "--flatbuffer"),
    ("--chain_hash", "--chain_hash"),
    # Logging
    ("--driver_output stderr", "--driver_output"),
    ("--driver_output_off", "--driver_output_off"),
    ("--log_level info", "--log_level"),
    ("--log_output stderr", "--log_output"),
    ("--limit_output 10", "--limit_output"),
    ("-P 10", "-P"),
    ("--progress 10", "--progress"),
    # Output model
    ("-f model.vw", "-f"),
    ("-fmodel.vw", "-f"),
    ("--final_regressor model.vw", "--final_regressor"),
    ("--final_regressor=model.vw", "--final_regressor"),
    ("--readable_model readable.txt", "--readable_model"),
    ("--invert_hash inverted.txt", "--invert_hash"),
    ("--hexfloat_weights", "--hexfloat_weights"),
    ("--dump_json_weights_experimental weights.json", "--dump_json_weights_experimental"),
    (
        "--dump_json_weights_include_feature_names_experimental",
        "--dump_json_weights_include_feature_names_experimental",
    ),
    (
        "--dump_json_weights_include_extra_online_state_experimental",
        "--dump_json_weights_include_extra_online_state_experimental",
    ),
    ("--predict_only_model", "--predict_only_model"),
    ("--save_resume", "--save_resume"),
    ("--preserve_performance_counters", "--preserve_performance_counters"),
    ("--preserve_performance_counter", "--preserve_performance_counter"),
    ("--save_per_pass", "--save_per_pass"),
    ("--output_feature_regularizer_binary reg.bin", "--output_feature_regularizer_binary"),
    ("--output_feature_regularizer_text reg.txt", "--output_feature_regularizer_text"),
    ("--id model-7", "--id"),
    # Parallelization and the network
    ("--span_server 127.0.0.1", "--span_server"),
    ("--span_server_port 26543", "--span_server_port"),
    ("--unique_id 1", "--unique_id"),
    ("--total 2", "--total"),
    ("--node 1", "--node"),
    ("--sendto 127.0.0.1:26542", "--sendto"),
    # Prediction output
    ("-p predictions.txt", "-p"),
    ("--predictions predictions.txt", "--predictions"),
    ("-r raw.txt", "-r"),
    ("--raw_predictions raw.txt", "--raw_predictions"),
    # Weights
    ("-i model.vw", "-i"),
    ("--initial_regressor model.vw", "--initial_regressor"),
    ("--input_feature_regularizer reg.bin", "--input_feature_regularizer"),
    ("--feature_mask mask.vw", "--feature_mask"),
    # Diagnostics and metrics files
    ("-a", "-a"),
    ("--audit", "--audit"),
    ("--audit_regressor audit.txt", "--audit_regressor"),
    ("--dry_run", "--dry_run"),
    ("--extra_metrics metrics.json", "--extra_metrics"),
    ("--epsilon_decay_audit audit.txt", "--epsilon_decay_audit"),
    # Feature files
    ("--dictionary u:dict.txt", "--dictionary"),
    ("--dictionary_path .", "--dictionary_path"),
    # Passes over a data file
    ("--passes 2", "--passes"),
    ("--holdout_off", "--holdout_off"),
    ("-t", "-t"),
    ("--testonly", "--testonly"),
    # Multi-slot (a later feature), and anything else off the list
    ("--ccb_explore_adf", "--ccb_explore_adf"),
    ("--random_seed 7", "--random_seed"),
    ("--no_such_option 3", "--no_such_option"),
    ("--learn 0.5", "--learn"),  # no abbreviation of an allowed option
    ("--l 0.5", "--l"),  # a short name written as a long one
    ("-- -q ab", "--"),  # the end of the options: VW would read what follows as data
]


@pytest.mark.parametrize(("extra", "shown"), REFUSED, ids=[extra for extra, _ in REFUSED])
def test_options_off_the_allowlist_are_refused(extra, shown):
    for arguments in (f"{DEFAULT_ARGUMENTS} {extra}", f"{extra} {DEFAULT_ARGUMENTS}"):
        with pytest.raises(ArgumentsError, match="not allowed") as refused:
            validate(arguments)
        assert shown in listed(refused.value)


def test_every_refused_option_is_listed_once_in_order():
    with pytest.raises(ArgumentsError) as refused:
        validate(f"{DEFAULT_ARGUMENTS} --invert_hash ih.txt -f m.vw --json --invert_hash x -f n")
    assert listed(refused.value) == ["--invert_hash", "-f", "--json"]
    assert str(refused.value) == (
        "Policy arguments contain options that are not allowed: --invert_hash, -f, --json."
    )


@pytest.mark.parametrize(
    ("arguments", "shown"),
    [
        # LL `CBInitialCommandLine`, the client's command line before a model exists
        # (reference §2.2).
        ("--cb_explore_adf --json --quiet --epsilon 1.0 --first_only --id N/A", ["--json", "--id"]),
    ],
)
def test_published_arguments_with_refused_options_name_them(arguments, shown):
    with pytest.raises(ArgumentsError) as refused:
        validate(arguments)
    assert listed(refused.value) == shown


@pytest.mark.parametrize(
    "arguments",
    [
        # LL `CCBDefaultLearningPolicy` (multi-slot, reference §2.2)
        "--ccb_explore_adf --epsilon 0.2 --power_t 0 -l 0.001 --cb_type mtr -q ::",
        # microsoft/learning-loop LearnMetricsParserTests.cs, CA_ML_ARGS (continuous actions)
        "--cats 128 --min_value 185 --max_value 23959 --bandwidth 1 --epsilon 0.2 -l 0.5 "
        "--l1 1E-07 --power_t 0.5 --coin --loss_option 1",
    ],
)
def test_other_problem_types_are_refused(arguments):
    with pytest.raises(ArgumentsError, match="--cb_explore_adf"):
        validate(arguments)


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ("--cb_explore_adf train.json", "train.json"),
        ("--cb_explore_adf --epsilon 0.1 train", "train"),  # --epsilon takes one value
        ("--cb_explore_adf -l0.5 train", "train"),
        ("--cb_explore_adf --epsilon=0.1 train", "train"),
        ("--cb_explore_adf --adaptive true", "true"),  # a switch takes none
        ("--cb_explore_adf --dsjson data.json", "data.json"),
        ("--cb_explore_adf -q ab/cd", "ab/cd"),
        ("--cb_explore_adf --cb_type ../ips", "../ips"),
        ("--cb_explore_adf -q a:b /etc/passwd", "/etc/passwd"),
    ],
)
def test_files_are_refused(arguments, named):
    with pytest.raises(ArgumentsError, match="must not name files") as refused:
        validate(arguments)
    assert f"'{named}'" in str(refused.value)


def test_vw_reads_a_token_that_is_no_options_value_as_data():
    """Why such a token is refused: VW opens it as a data file."""
    assert "data file 'train'" in vw_message("--cb_explore_adf --epsilon 0.1 train")
    assert "data file 'train'" in vw_message("--cb_explore_adf --adaptive train")


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


# ---------------------------------------------------------------- accepted and ignored


@pytest.mark.parametrize("ignored", ["--dsjson", "--quiet", "--dsjson --quiet"])
def test_dsjson_and_quiet_are_stored_but_not_run(ignored):
    arguments = f"--cb_explore_adf --epsilon 0.2 {ignored} --cb_type ips -l 0.5"
    assert validate(arguments) == arguments  # what is stored and shown
    assert with_epsilon(arguments, 0.3) == "--cb_explore_adf --epsilon 0.3 --cb_type ips -l 0.5"
    squarecb = f"--cb_explore_adf --squarecb {ignored}"
    assert with_epsilon(squarecb, 0.3) == "--cb_explore_adf --squarecb"


def test_dsjson_would_change_nothing_in_vw_anyway():
    """Stripping `--dsjson` is a precaution: vowpal-wabbit-next parses each example with the
    JSON parser it is given, so the probabilities and the model are the same with it."""
    actions = [Action(f"a{i}", [{"k": f"v{i}"}, {"Brand": {"b": i % 2}}]) for i in range(4)]
    context = [{"u": {"t": 1}}, {"Geo": {"c": "x"}}]

    def learned(arguments: str) -> tuple[list[list[float]], bytes]:
        policy = Policy(arguments)
        pmfs = []
        for n in range(30):
            example = example_text(context, actions)
            pmfs.append(policy.score_and_learn(example, n % 4, -float(n % 4 == 1), 0.25))
        return pmfs, policy.to_bytes()

    plain = learned(with_epsilon(DEFAULT_ARGUMENTS, 0.2))
    assert learned(f"{DEFAULT_ARGUMENTS} --dsjson") == plain


# ---------------------------------------------------------------- stored under older rules

# Accepted by the denylist this allowlist replaced; refused now.
OLDER_RULES = (
    "--cb_explore_adf --epsilon 0.2 -l 0.01 --cb_type mtr -q :: --random_seed 7 --permutations"
)


def test_arguments_stored_under_older_rules_still_build_a_policy():
    with pytest.raises(ArgumentsError, match="not allowed"):
        validate(OLDER_RULES)
    policy = Policy(with_epsilon(OLDER_RULES, 0.2))
    actions = [Action(f"a{i}", [{"k": f"v{i}"}]) for i in range(3)]
    assert sum(policy.pmf([{"u": {"t": 1}}], actions)) == pytest.approx(1.0)
