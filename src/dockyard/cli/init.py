"""``dockyard init <strategy> DIR``: write a runnable project for a container strategy.

The scaffolds and their files are defined in ``dockyard.strategy.scaffolds``.
"""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from dockyard.strategy.advisor import managed_frameworks
from dockyard.strategy.scaffolds import SCAFFOLDS, ScaffoldError, render

console = Console()


def _help() -> str:
    lines = "\n".join(f"  {s.name:<9} {s.summary}" for s in SCAFFOLDS.values())
    return (
        "Write a project for STRATEGY into DIRECTORY: it deploys through boto3 and prints a prediction "
        f"as generated.\n\n\b\n{lines}\n\nNot sure which? Run `dockyard advise`."
    )


@click.command("init", help=_help())
@click.argument("strategy", type=click.Choice(list(SCAFFOLDS)))
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", default=None, help="Endpoint name.  [default: from DIRECTORY]")
@click.option("--framework", type=click.Choice(managed_frameworks()), default="sklearn", show_default=True,
              help="The model's framework (the managed scaffold comes for each; the others use scikit-learn).")
@click.option("--force", is_flag=True, help="Write into a directory that is not empty.")
def init_command(strategy: str, directory: Path, name: str | None, framework: str, force: bool) -> None:
    scaffold = SCAFFOLDS[strategy]
    try:
        written = render(scaffold, directory, name=name, force=force, framework=framework)
    except ScaffoldError as exc:
        raise click.ClickException(str(exc)) from None
    console.print(f"[green]✓[/] {strategy} project in [bold]{directory}[/] ({len(written)} files)")
    for path in written:
        console.print(f"  {path.relative_to(directory)}", highlight=False)
    console.print("\nNext, with a dockyard server running (`dockyard serve`):")
    console.print(f"  cd {directory}", highlight=False)
    for command in scaffold.commands:
        suffix = " --endpoint-url http://127.0.0.1:8780" if command.startswith("python deploy.py") else ""
        console.print(f"  {command}{suffix}", highlight=False, soft_wrap=True)
    console.print("README.md says more, including how to run it on AWS.")
