"""``dockyard images``: the managed images — list them, and build them with no registry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from dockyard.images.catalogue import CATALOGUE

console = Console()
NAMES = [m.name for m in CATALOGUE]


@click.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
@click.pass_context
def images(ctx: click.Context, as_json: bool) -> None:
    """Managed images: the framework servers dockyard provides, and their AWS URI aliases.

    Lists each image with the AWS image URIs it answers to (any account, region and tag), the
    framework version installed here and whether the process runtime can run it.
    """
    if ctx.invoked_subcommand is not None:
        return
    rows = listing()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table("Image", "AWS repositories", "Installed here", "Process runtime", "Docker image",
                  caption="AWS image URIs: <account>.dkr.ecr.<region>.amazonaws.com/<repository>:<tag>, any "
                          "account, region and tag. The process runtime serves GPU tags on the CPU.")
    for row in rows:
        installed = f"{row['distribution']} {row['installed_version']}" if row["installed_version"] else "-"
        usable = "[green]usable[/]" if row["usable"] else f"[red]{row['install']}[/]"
        repositories = "\n".join(uri.split("/", 1)[1].removesuffix(":<tag>") for uri in row["aws_uri_patterns"])
        table.add_row(row["image"], repositories, installed, usable, row["docker_image"])
    console.print(table)


def listing() -> list[dict[str, Any]]:
    """One record per managed image, as ``dockyard images --json`` prints them."""
    from dockyard.images.build import LABEL_FRAMEWORK_VERSION
    from dockyard.runtime.docker_engine import EngineUnavailable, connect

    try:
        client = connect()
    except EngineUnavailable:
        client = None
    rows = []
    for managed in CATALOGUE:
        installed = managed.installed_version()
        rows.append({
            "name": managed.name,
            "image": managed.dockyard_name,
            "aws_uri_patterns": list(managed.uri_patterns),
            "example_uri": managed.example_uri,
            "distribution": managed.distribution,
            "installed_version": installed,
            # The process runtime runs a managed image with the framework installed here.
            "usable": installed is not None,
            "install": f"pip install 'dockyard[{managed.extra}]'",
            "docker_image": _docker_column(client, f"{managed.dockyard_name}:latest", managed.distribution,
                                           LABEL_FRAMEWORK_VERSION),
        })
    return rows


def _docker_column(client, tag: str, distribution: str, label: str) -> str:
    if client is None:
        return "no engine"
    import docker

    try:
        image = client.images.get(tag)
    except docker.errors.ImageNotFound:
        return f"not built: dockyard images build {tag.split('/')[1].split(':')[0]}"
    return f"{distribution} {image.labels.get(label, '?')} ({image.short_id.removeprefix('sha256:')})"


@images.command()
@click.argument("names", nargs=-1, required=True, type=click.Choice([*NAMES, "all"]))
@click.option("--base", envvar="DOCKYARD_BASE_IMAGE", show_envvar=True, default=None,
              help="Python base image.  [default: python:3.11-slim if present, else dockyard/base:bookworm, "
                   "made from Debian packages with mmdebstrap]")
@click.option("--find-links", multiple=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Directory with CPU wheels (torch).  [default: pip's configured find-links]")
@click.option("--index-url", default=None, help="A package index with CPU builds of torch.")
@click.option("--no-cache", is_flag=True, help="Build every layer afresh.")
@click.option("--no-aws-tags", is_flag=True, help="Tag with the dockyard name only, not with AWS image URIs.")
def build(names: tuple[str, ...], base: str | None, find_links: tuple[Path, ...], index_url: str | None,
          no_cache: bool, no_aws_tags: bool) -> None:
    """Build managed images NAMES (sklearn, …, or all) into the local container engine."""
    import docker

    from dockyard.images.build import BuildOptions
    from dockyard.images.build import build as run
    from dockyard.images.build_base import BuildError
    from dockyard.runtime.docker_engine import EngineUnavailable, connect

    options = BuildOptions(base=base, find_links=find_links, index_url=index_url, no_cache=no_cache,
                           aws_tags=not no_aws_tags)
    with console.status("Connecting to the container engine") as status:

        def progress(line: str) -> None:
            # Build steps stay on screen; everything else (pip, mmdebstrap) scrolls by in the status line.
            if line.startswith(("Step ", "Building ", "Creating ", "Importing ", "Pulling ")):
                console.print(line, markup=False, highlight=False)
            status.update(line[:120].replace("[", "\\["))

        try:
            built = run(connect(), names, options, progress)
        except (BuildError, EngineUnavailable) as exc:
            raise click.ClickException(str(exc)) from None
        except docker.errors.APIError as exc:
            raise click.ClickException(f"The container engine refused: {exc.explanation or exc}") from None
    for image in built:
        console.print(f"[green]Built[/] {image.name} ({image.framework_version}, {image.image_id[7:19]}):")
        for tag in image.tags:
            console.print(f"  {tag}", markup=False, highlight=False)
