"""``dockyard check IMAGE|DIR``: run a container and report, check by check, whether it honours the
SageMaker container contract. The checks live in ``dockyard.check``."""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from dockyard.check.contract import (
    SAMPLE_CONTENT_TYPE,
    SAMPLE_PAYLOAD,
    CheckOptions,
    check,
)
from dockyard.check.results import Report, Status
from dockyard.check.targets import ProcessTarget, StartFailed, Target
from dockyard.images import catalogue

MARKS = {Status.PASS: "[green]✓[/]", Status.FAIL: "[red]✗[/]", Status.WARN: "[yellow]![/]", Status.SKIP: "[dim]-[/]"}


def _environment(pairs: tuple[str, ...]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{pair!r} is not NAME=VALUE", param_hint="--env")
        env[name] = value
    return env


def resolve_target(image: str, runtime: str, workdir: Path, model_dir: Path | None, env: dict[str, str]) -> Target:
    """A directory or (with --runtime process) a managed image runs as a process; any image with an engine."""
    path = Path(image)
    if path.is_dir():
        if runtime == "docker":
            raise click.UsageError(f"{image} is a directory: it runs on the process runtime. Build an image to check it with docker.")
        if not (path / "serve").is_file():
            raise click.ClickException(f"{image} has no `serve` file: a container directory needs an executable `serve`.")
        return ProcessTarget(str(path.resolve()), workdir, model_dir, env)
    if runtime == "process":
        if catalogue.resolve(image) is None:
            raise click.UsageError(f"{image} is neither a directory nor a managed image: the process runtime cannot run it.")
        return ProcessTarget(image, workdir, model_dir, env)
    try:
        from dockyard.check.docker_target import DockerTarget
    except ImportError:
        raise click.ClickException("Checking an image needs the docker SDK: pip install 'dockyard[docker]'.") from None
    from dockyard.runtime.docker_engine import EngineUnavailable

    try:
        return DockerTarget(image, model_dir, env)
    except EngineUnavailable as exc:
        raise click.ClickException(str(exc)) from None


def show(console: Console, report: Report) -> None:
    table = Table("", "Check", "Result", title=f"{report.target} ({report.runtime} runtime)", title_justify="left")
    for result in report.results:
        table.add_row(MARKS[result.status], result.title, result.detail)
    console.print(table)
    for result in report.results:
        if result.hint:
            console.print(f"{MARKS[result.status]} [bold]{result.id}[/]: {result.hint}", highlight=False)
    if report.log_tail:
        console.rule("container log (last lines)")
        console.print(report.log_tail, markup=False, highlight=False)
    failed = report.failed
    verdict = f"[red]{len(failed)} check(s) failed: {', '.join(failed)}[/]" if failed else "[green]honours the contract[/]"
    console.print(verdict)


@click.command("check")
@click.argument("image")
@click.option("--payload", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Request body for /invocations.  [default: one iris row as text/csv]")
@click.option("--content-type", default=None, help=f"Content-Type of the payload.  [default: {SAMPLE_CONTENT_TYPE}]")
@click.option("--accept", default=None, help="Accept header of the sample invocation.  [default: none]")
@click.option("--model-dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Model data to give the container (at /opt/ml/model for an image).")
@click.option("--env", "env_pairs", multiple=True, metavar="NAME=VALUE", help="Extra environment; repeatable.")
@click.option("--runtime", type=click.Choice(["auto", "process", "docker"]), default="auto", show_default=True,
              help="auto: a directory runs as a process, an image with the container engine.")
@click.option("--startup-timeout", type=click.FloatRange(min=0.1), default=240.0, show_default=True,
              help="Seconds the container has to answer /ping with 200.")
@click.option("--stop-grace", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
              help="Seconds between SIGTERM and SIGKILL.")
@click.option("--invoke-timeout", type=click.FloatRange(min=0.1), default=60.0, show_default=True,
              help="Seconds an /invocations request may take.")
@click.option("--concurrency", type=click.IntRange(min=2), default=8, show_default=True,
              help="Requests sent at once by the concurrency check.")
@click.option("--multi-model/--no-multi-model", default=None,
              help="Check the multi-model API.  [default: when the image's label claims it]")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def check_command(
    image: str, payload: Path | None, content_type: str | None, accept: str | None, model_dir: Path | None,
    env_pairs: tuple[str, ...], runtime: str, startup_timeout: float, stop_grace: float, invoke_timeout: float,
    concurrency: int, multi_model: bool | None, as_json: bool,
) -> None:
    """Run IMAGE (or a directory with an executable `serve`) and check it against the SageMaker container
    contract: `serve`, ports, /ping, /invocations, content negotiation, concurrency, SIGTERM. Exits 1 if
    a check fails."""
    options = CheckOptions(
        payload=payload.read_bytes() if payload else SAMPLE_PAYLOAD,
        content_type=content_type or SAMPLE_CONTENT_TYPE,
        accept=accept,
        payload_given=payload is not None,
        startup_timeout=startup_timeout,
        invoke_timeout=invoke_timeout,
        stop_grace=stop_grace,
        concurrency=concurrency,
        multi_model=multi_model,
        has_model=model_dir is not None,
    )
    console = Console(stderr=as_json)
    with tempfile.TemporaryDirectory(prefix="dockyard-check-") as tmp:
        try:
            target = resolve_target(image, runtime, Path(tmp), model_dir, _environment(env_pairs))
        except StartFailed as exc:
            raise click.ClickException(str(exc)) from None
        with console.status(f"Checking {image}…"):
            report = asyncio.run(check(target, options))
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        show(console, report)
    if not report.ok:
        raise SystemExit(1)
