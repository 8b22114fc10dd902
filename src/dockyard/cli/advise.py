"""``dockyard advise``: which container strategy fits, asked interactively or given by flags.

The decision itself lives in ``dockyard.strategy.advisor``; this module only asks the questions
(rich prompts) and shows the advice (rich, or JSON for scripts).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from rich.console import Console
from rich.panel import Panel
from rich.prompt import Confirm, IntPrompt, Prompt
from rich.table import Table

from dockyard.strategy.advisor import (
    TRAFFIC_LEVELS,
    Advice,
    Answers,
    advise,
    managed_frameworks,
)


def ask(console: Console, given: dict[str, Any]) -> Answers:
    """Ask every question the flags left open, skipping those the earlier answers make moot."""
    values = {k: v for k, v in given.items() if v is not None}
    defaults = Answers()

    def question(name: str, prompt: Any) -> None:
        if name not in values:
            values[name] = prompt()

    frameworks = [*managed_frameworks(), "other"]
    question("framework", lambda: Prompt.ask(
        "Framework of the model", choices=frameworks, default=defaults.framework, console=console))
    question("language", lambda: Prompt.ask("Language of the serving code", default=defaults.language, console=console))
    if values["language"].strip().lower() == "python" and values["framework"] != "other":
        question("extra_libraries", lambda: Confirm.ask(
            "Does the serving code need libraries the framework's image lacks?", default=False, console=console))
    question("trained_elsewhere", lambda: Confirm.ask(
        "Was the model trained outside SageMaker (you have a saved model file)?", default=False, console=console))
    question("models", lambda: IntPrompt.ask("How many models will serve together?", default=1, console=console))
    if values["models"] > 1:
        question("chain", lambda: Confirm.ask(
            "Do they chain (one model's output is the next one's input)?", default=False, console=console))
        if not values["chain"]:
            question("shared_container", lambda: Confirm.ask(
                "Do they all run in the same container (same framework and serving code)?",
                default=True, console=console))
        question("traffic", lambda: Prompt.ask(
            "Expected traffic", choices=list(TRAFFIC_LEVELS), default=defaults.traffic, console=console))
    question("latency_ms", lambda: IntPrompt.ask(
        "Latency budget per request in ms (0: no particular budget)", default=0, console=console) or None)
    return Answers(**values)


def show(console: Console, advice: Advice) -> None:
    strategy = advice.strategy
    body = Table.grid(padding=(0, 1))
    body.add_column(style="bold")
    body.add_column()
    for reason in advice.reasons:
        body.add_row("why", reason)
    body.add_row("effort", strategy.effort)
    body.add_row("customization", strategy.customization)
    body.add_row("cost", strategy.cost)
    body.add_row("fits", strategy.use_case)
    if advice.container is not strategy:
        body.add_row("containers", f"{advice.container.title}: {advice.container.use_case}")
    for caveat in advice.caveats:
        body.add_row("[yellow]caveat[/]", caveat)
    body.add_row("next", f"[bold cyan]{advice.next_command}[/]")
    console.print(Panel(body, title=f"Recommended: [bold green]{strategy.title}[/]", title_align="left"))


@click.command("advise")
@click.option("--framework", default=None, help=f"The model's framework: {', '.join(managed_frameworks())} or another name.")
@click.option("--extra-libraries/--no-extra-libraries", default=None, help="The serving code needs libraries the managed image lacks.")
@click.option("--language", default=None, help="Language of the serving code.  [default: python]")
@click.option("--trained-elsewhere/--trained-on-sagemaker", default=None, help="The model was trained outside SageMaker.")
@click.option("--models", type=click.IntRange(min=1), default=None, help="How many models serve together.  [default: 1]")
@click.option("--chain/--no-chain", default=None, help="The models run one after another (a pipeline).")
@click.option("--shared-container/--different-containers", default=None,
              help="All models run in the same container (same framework and code).")
@click.option("--traffic", type=click.Choice(TRAFFIC_LEVELS), default=None, help="Expected traffic.  [default: medium]")
@click.option("--latency-ms", type=click.IntRange(min=1), default=None, help="Latency budget per request.")
@click.option("--dir", "directory", default="my-model", show_default=True, help="Project directory for the next command.")
@click.option("--interactive/--no-interactive", default=None,
              help="Ask the questions the flags leave open.  [default: when stdin is a terminal and no question flag is given]")
@click.option("--json", "as_json", is_flag=True, help="Print the advice as JSON.")
def advise_command(directory: str, interactive: bool | None, as_json: bool, **given: Any) -> None:
    """Recommend a container strategy (Managed, Extend, BYOC, BYOM, multi-container, multi-model)."""
    console = Console(stderr=as_json)
    if interactive is None:
        interactive = sys.stdin.isatty() and not as_json and all(v is None for v in given.values())
    try:
        if interactive:
            answers = ask(console, given)
        else:
            answers = Answers(**{k: v for k, v in given.items() if v is not None})
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    advice = advise(answers, directory)
    if as_json:
        click.echo(json.dumps(advice.to_json(), indent=2))
    else:
        show(console, advice)
