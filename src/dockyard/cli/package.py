"""``dockyard package MODEL``: a saved model → the model.tar.gz its framework's managed image loads.

The layouts per framework live in ``dockyard.strategy.packaging``.
"""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from dockyard.strategy.packaging import (
    PackageError,
    frameworks,
    guess_framework,
    package_model,
)

console = Console()


@click.command("package")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--framework", default=None,
              help=f"The model's framework: {', '.join(frameworks())}.  [default: guessed from the file name]")
@click.option("--code", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Directory with inference.py (and requirements.txt), stored under code/.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=Path("model.tar.gz"),
              show_default=True, help="The archive to write.")
def package_command(model: Path, framework: str | None, code: Path | None, output: Path) -> None:
    """Package a saved MODEL (file, or TensorFlow SavedModel directory) as SageMaker model data."""
    try:
        chosen = framework or (guess_framework(model) if model.exists() else None)
        if chosen is not None and chosen not in frameworks():
            raise PackageError(f"{chosen} has no managed image; the frameworks that do: {', '.join(frameworks())}.")
        chosen, entries = package_model(model, output, framework=chosen, code=code)
    except PackageError as exc:
        raise click.ClickException(str(exc)) from None
    console.print(f"[green]✓[/] {output} for the managed {chosen} image: {', '.join(entries)}", highlight=False, soft_wrap=True)
    console.print(f"Deploy it with ModelDataUrl={output.resolve().as_uri()} (or upload it to S3 for AWS).",
                  highlight=False, soft_wrap=True)
