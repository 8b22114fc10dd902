"""The advisor's decision tables: every strategy is reachable, every row is used, and each answer
carries its reasons, trade-offs, caveats and the next command — through the CLI as a user runs it."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from dockyard.cli.main import main
from dockyard.strategy.advisor import (
    CONTAINER,
    STRATEGIES,
    TOPOLOGY,
    Answers,
    advise,
    facts,
    first_match,
)
from dockyard.strategy.scaffolds import SCAFFOLDS

# (flags, strategy, a phrase its reasons must contain)
CASES = [
    ([], "managed", "no extra dependencies"),
    (["--extra-libraries"], "extend", "extra libraries"),
    (["--language", "go"], "byoc", "written in go"),
    (["--framework", "lightgbm"], "byoc", "No managed image serves lightgbm"),
    (["--trained-elsewhere"], "byom", "trained outside SageMaker"),
    (["--models", "3", "--chain"], "serial", "chain"),
    (["--models", "20", "--chain"], "serial", "at most 15 containers"),
    (["--models", "3", "--different-containers"], "direct", "Direct invocation"),
    (["--models", "40", "--shared-container"], "multimodel", "multi-model endpoint"),
    (["--models", "3", "--different-containers", "--traffic", "high"], "managed", "Separate endpoints"),
    (["--models", "3", "--latency-ms", "20"], "managed", "its own endpoint"),
    (["--models", "30", "--different-containers"], "managed", "separate endpoints"),
]


def run_advise(*flags: str) -> dict:
    result = CliRunner().invoke(main, ["advise", "--json", *flags])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.parametrize(("flags", "strategy", "phrase"), CASES, ids=[" ".join(c[0]) or "defaults" for c in CASES])
def test_each_answer_names_a_strategy_with_reasons_and_next_command(flags, strategy, phrase):
    advice = run_advise(*flags)
    assert advice["strategy"] == strategy
    assert any(phrase in reason for reason in advice["reasons"]), advice["reasons"]
    assert set(advice["trade_offs"]) == {"customization", "effort", "cost", "use_case"}
    scaffold = advice["next_command"].split()[2]
    assert advice["next_command"] == f"dockyard init {scaffold} my-model"
    assert scaffold in SCAFFOLDS


def test_every_strategy_and_every_table_row_is_reachable():
    used_rows = set()
    reached = set()
    for flags, _, _ in CASES:
        answers = answers_from(flags)
        known = facts(answers)
        used_rows.add(id(first_match(TOPOLOGY, known)))
        used_rows.add(id(first_match(CONTAINER, known)))
        reached.add(advise(answers).strategy.key)
    assert reached == set(STRATEGIES)
    assert used_rows == {id(rule) for rule in (*TOPOLOGY, *CONTAINER)}


def answers_from(flags: list[str]) -> Answers:
    """The Answers the CLI builds from ``flags`` (the same parsing, through click)."""
    values = {}
    ctx = main.commands["advise"].make_context("advise", ["--no-interactive", *flags])
    for name in ("framework", "extra_libraries", "language", "trained_elsewhere", "models", "chain",
                 "shared_container", "traffic", "latency_ms"):
        if ctx.params[name] is not None:
            values[name] = ctx.params[name]
    return Answers(**values)


def test_tables_end_with_a_catch_all_row():
    assert TOPOLOGY[-1].when == {} and CONTAINER[-1].when == {}


def test_multi_container_advice_warns_of_resource_contention_and_names_separate_endpoints():
    advice = run_advise("--models", "3", "--different-containers")
    assert any("resource contention" in c and "separate endpoints" in c for c in advice["caveats"])
    separate = run_advise("--models", "3", "--different-containers", "--traffic", "high")
    assert separate["topology"] == "separate"
    assert any("one endpoint per model" in c for c in separate["caveats"])


def test_multi_container_of_custom_containers_says_to_swap_the_images():
    advice = run_advise("--models", "2", "--chain", "--language", "rust")
    assert (advice["strategy"], advice["container"]) == ("serial", "byoc")
    assert any("replace each Image with your BYOC image" in c for c in advice["caveats"])


def test_dir_flag_goes_into_the_next_command():
    assert run_advise("--dir", "fraud-model")["next_command"] == "dockyard init managed fraud-model"


def test_interactive_questions_skip_what_earlier_answers_make_moot():
    # framework, language, extra libraries, trained elsewhere, models (1: no chain/traffic questions), latency
    result = CliRunner().invoke(main, ["advise", "--interactive"], input="sklearn\npython\nn\ny\n1\n0\n")
    assert result.exit_code == 0, result.output
    assert result.output.index("Framework of the model") < result.output.index("Language of the serving code")
    assert "Recommended: BYOM" in result.output
    assert "dockyard init byom my-model" in result.output
    assert "chain" not in result.output.lower().split("recommended")[0]


def test_interactive_asks_only_what_the_flags_leave_open():
    # Flags answer language and models; prompts: framework, extra libs, trained, chain, shared, traffic, latency.
    result = CliRunner().invoke(
        main, ["advise", "--interactive", "--language", "python", "--models", "4"],
        input="sklearn\nn\nn\nn\nn\nmedium\n0\n",
    )
    assert result.exit_code == 0, result.output
    assert "Language of the serving code" not in result.output
    assert "Recommended: Multi-container Direct" in result.output


@pytest.mark.parametrize("framework", ["xgboost", "pytorch", "tensorflow"])
def test_another_managed_framework_scaffolds_that_framework(framework):
    result = CliRunner().invoke(main, ["advise", "--interactive"], input=f"{framework}\npython\nn\nn\n1\n0\n")
    assert result.exit_code == 0, result.output
    assert "Recommended: Managed" in result.output
    assert f"dockyard init managed my-model --framework {framework}" in result.output


def test_another_framework_not_in_python_is_byoc():
    result = CliRunner().invoke(main, ["advise", "--interactive"], input="other\nR\nn\n1\n0\n")
    assert result.exit_code == 0, result.output
    assert "Recommended: BYOC" in result.output
    assert "extra" not in result.output.lower().split("recommended")[0]


def test_rejects_impossible_answers():
    result = CliRunner().invoke(main, ["advise", "--models", "0"])
    assert result.exit_code == 2
    assert "--models" in result.output


def test_many_models_in_one_container_lead_to_the_multi_model_scaffold():
    advice = run_advise("--models", "40", "--shared-container")
    assert advice["next_command"] == "dockyard init multi-model my-model"
    assert not any("cannot host" in caveat for caveat in advice["caveats"])
