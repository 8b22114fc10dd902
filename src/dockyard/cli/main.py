"""``dockyard``: serve, demo, endpoints, logs, stats — plus the commands registered at the end,
which live in their own modules (invoke, delete, images, advise, init, check, package).

Tables fit the terminal (80 columns when it is unknown): long cells wrap, never end in "…"."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from dockyard import __version__
from dockyard.cli.advise import advise_command
from dockyard.cli.check import check_command
from dockyard.cli.client import get_json, sagemaker_clients, talking_to, url_option
from dockyard.cli.endpoint import delete_command, invoke_command
from dockyard.cli.images import images
from dockyard.cli.init import init_command
from dockyard.cli.package import package_command
from dockyard.settings import (
    DEFAULT_PORT,
    Settings,
    SettingsError,
    env_name,
    settings_help,
)

console = Console()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dockyard")
def main() -> None:
    """dockyard: the SageMaker hosting plane you run yourself."""


@main.command(epilog=settings_help())
@click.option("--host", default=None, help=f"Address to listen on.  [env var: {env_name('host')}; default: 127.0.0.1]")
@click.option("--port", type=int, default=None,
              help=f"Port for both APIs.  [env var: {env_name('port')}; default: {DEFAULT_PORT}]")
@click.option("--state-dir", type=click.Path(path_type=Path), default=None,
              help=f"Where state, logs and caches live.  [env var: {env_name('state_dir')}]")
@click.option("--runtime", type=click.Choice(["process", "docker", "ray"]), default=None,
              help=f"Where containers run.  [env var: {env_name('runtime')}; default: process]")
@click.option("--ray-address", default=None,
              help=f"--runtime ray: the cluster's head (host:port), or auto.  [env var: {env_name('ray_address')}; default: auto]")
@click.option("--ray-containers", type=click.Choice(["process", "docker"]), default=None,
              help=f"--runtime ray: how a node runs an instance's containers.  [env var: {env_name('ray_containers')}; "
                   "default: process]")
@click.option("--credentials", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="INI file of [sections] with aws_access_key_id and aws_secret_access_key, and optionally "
                   "aws_session_token (like ~/.aws/credentials): every request must be SigV4-signed with one of them; the console signs in "
                   f"with one.  [env var: {env_name('credentials')}]")
@click.option("--insecure-no-auth", is_flag=True, default=None,
              help=f"Allow a non-loopback --host without --credentials.  [env var: {env_name('insecure_no_auth')}]")
@click.option("--tls-cert", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help=f"Serve HTTPS with this certificate chain (PEM).  [env var: {env_name('tls_cert')}]")
@click.option("--tls-key", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help=f"The private key of --tls-cert (PEM).  [env var: {env_name('tls_key')}]")
@click.option("--metrics-open", is_flag=True, default=None,
              help=f"Answer /metrics unsigned even with --credentials.  [env var: {env_name('metrics_open')}]")
@click.option("--log-level", default="INFO", show_default=True, envvar="DOCKYARD_LOG_LEVEL", show_envvar=True)
@click.option("--allow-path", "allow_paths", multiple=True, type=click.Path(path_type=Path),
              callback=lambda _ctx, _param, paths: tuple(p.absolute() for p in paths) or None,
              help=f"Read local model data and images only under DIR (repeatable).  [env var: {env_name('allow_paths')}; "
                   "default: home and current directory, none with --credentials]")
def serve(log_level: str, **flags: object) -> None:
    """Serve the SageMaker control plane and runtime API on one port."""
    from dockyard.server import serve as run

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings.from_env(None, **flags)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    scheme = "https" if settings.tls_cert else "http"
    console.print(
        f"dockyard {__version__} on [bold]{scheme}://{settings.host}:{settings.port}[/] "
        f"(runtime {settings.runtime}, state {settings.state_dir}, "
        f"{'SigV4 credentials from ' + str(settings.credentials) if settings.credentials else 'no authentication'})"
    )
    try:
        run(settings)
    except OSError as exc:
        # Most often the port is taken: say which, without a traceback.
        raise click.ClickException(f"cannot serve on {settings.host}:{settings.port}: {exc.strerror or exc}") from None


@main.command()
@url_option
@click.option("--keep", is_flag=True, help="Leave the endpoint running (on --endpoint-url) instead of cleaning up.")
def demo(url: str, keep: bool) -> None:
    """Train a tiny model, deploy it on an embedded server, invoke it, clean up."""
    from dockyard.cli.demo import run_demo

    try:
        run_demo(console, url if keep else None)
    except SettingsError as exc:  # --keep reads the state dir from DOCKYARD_STATE_DIR
        raise click.ClickException(str(exc)) from None


@main.command()
@url_option
def endpoints(url: str) -> None:
    """List endpoints with their status."""
    sm, _ = sagemaker_clients(url, retries=False)
    table = _table("Name", "Status", "Nodes", "Created", "Last modified", "Last exit")
    with talking_to(url):
        readiness = get_json(url, "/_dockyard/endpoints")["endpoints"]
        for page in sm.get_paginator("list_endpoints").paginate():
            for ep in page["Endpoints"]:
                variants = readiness.get(ep["EndpointName"], {})
                table.add_row(
                    ep["EndpointName"], _status(ep["EndpointStatus"], variants), _nodes(variants),
                    _time(ep["CreationTime"]), _time(ep["LastModifiedTime"]), _last_exit(variants),
                )
    console.print(table)


@main.command()
@url_option
@click.argument("endpoint")
@click.option("-n", "--lines", default=100, show_default=True, help="Lines per container.")
@click.option("--all", "show_all", is_flag=True, help="Also the containers of instances that no longer run.")
def logs(url: str, endpoint: str, lines: int, show_all: bool) -> None:
    """Show the stdout/stderr of every container of ENDPOINT's running instances."""
    data = get_json(url, f"/_dockyard/endpoints/{endpoint}/logs?lines={lines}")
    shown = [e for e in data["logs"] if show_all or e["live"]]
    if not shown:
        stopped = len({e["instance"] for e in data["logs"]})
        more = f"; --all shows the {stopped} that stopped" if stopped else ""
        console.print(f"No running instance of endpoint {endpoint} has logs{more}.")
    for entry in shown:
        console.rule(f"{entry['instance']} / {entry['container']}{'' if entry['live'] else ' (stopped)'}")
        for line in entry["lines"]:
            console.print(line, markup=False, highlight=False)


@main.command()
@url_option
@click.option("--models", "show_models", is_flag=True,
              help="Also list a multi-model endpoint's models: loaded or not, hit rate, memory.")
@click.argument("endpoint")
def stats(url: str, endpoint: str, show_models: bool) -> None:
    """Per container of ENDPOINT: requests, errors, p50/p99 latency, CPU and memory; per
    serverless variant: cold starts, their mean duration, throttled requests; for an asynchronous
    endpoint: its backlog.

    Containers of one instance share its CPU and memory; this shows who uses what.
    """
    data = get_json(url, f"/_dockyard/endpoints/{endpoint}/stats")
    # One variant (the usual case) needs no column for it: the instance ID starts with its name.
    variants = len({row["variant"] for row in data["containers"]}) > 1
    table = _table(*(["Variant"] if variants else []), "Instance", "Node", "Container", "Requests", "Errors", "p50 ms",
                   "p99 ms", "CPU %", "Memory MiB", title=f"Endpoint {endpoint}")
    for row in data["containers"]:
        table.add_row(
            *([row["variant"]] if variants else []), row["instance"], row.get("node") or "-", row["container"],
            f"{row.get('count', 0):.0f}", f"{row.get('errors', 0):.0f}",
            _ms(row.get("p50")), _ms(row.get("p99")),
            "-" if row["cpu_percent"] is None else f"{row['cpu_percent']:.1f}",
            "-" if row["memory_bytes"] is None else f"{row['memory_bytes'] / 2**20:.1f}",
        )
    console.print(table)
    if data.get("serverless"):
        serverless = _table("Variant", "Cold starts", "Mean cold start ms", "Throttled", title="Serverless")
        for variant, row in data["serverless"].items():
            mean = row["cold_start_seconds"] / row["cold_starts"] if row["cold_starts"] else None
            serverless.add_row(variant, f"{row['cold_starts']:.0f}", _ms(mean), f"{row['throttled']:.0f}")
        console.print(serverless)
    if data.get("backlog"):
        backlog = data["backlog"]
        queue = _table("Backlog", "Per instance", "Oldest s", "Without capacity", title="Asynchronous inference")
        queue.add_row(f"{backlog['ApproximateBacklogSize']:.0f}", f"{backlog['ApproximateBacklogSizePerInstance']:.1f}",
                      f"{backlog['ApproximateAgeOfOldestRequest']:.1f}",
                      "yes" if backlog["HasBacklogWithoutCapacity"] else "no")
        console.print(queue)
    if show_models:
        _models_table(endpoint, data.get("models", []))


def _models_table(endpoint: str, rows: list[dict[str, Any]]) -> None:
    if not rows:
        console.print(f"Endpoint {endpoint} has no models loaded on demand (not a multi-model endpoint, or not "
                      "invoked yet).")
        return
    table = _table("Instance", "TargetModel", "Loaded", "Hits", "Misses", "Hit rate", "Memory MiB",
                   title=f"Models of {endpoint}")
    for row in rows:
        requests = row["hits"] + row["misses"]
        table.add_row(row["instance"], row["model"], "yes" if row["loaded"] else "no", str(row["hits"]),
                      str(row["misses"]), f"{100 * row['hits'] / requests:.0f} %" if requests else "-",
                      "-" if row["memory_bytes"] is None else f"{row['memory_bytes'] / 2**20:.1f}")
    console.print(table)


def _table(*columns: str, title: str | None = None) -> Table:
    table = Table(title=title)
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.2f}"


def _status(status: str, variants: dict[str, dict[str, int]]) -> str:
    """The status, and for an InService endpoint short of instances (healing) how many are ready."""
    ready = sum(v["ready"] for v in variants.values())
    desired = sum(v["desired"] for v in variants.values())
    if status == "InService" and ready < desired:
        return f"[yellow]InService ({ready}/{desired} ready)[/]"
    colour = {"InService": "green", "Failed": "red"}.get(status, "yellow")
    return f"[{colour}]{status}[/]"


def _last_exit(variants: dict[str, dict[str, Any]]) -> str:
    """The latest of the variants' last replaced instances: when and how its container ended."""
    return max((v["last_exit"] for v in variants.values() if v.get("last_exit")), default="-")


def _nodes(variants: dict[str, dict[str, Any]]) -> str:
    """Where the endpoint's instances run: each node, with how many instances when more than one."""
    counts: dict[str, int] = {}
    for variant in variants.values():
        for node in variant.get("nodes", []):
            counts[node] = counts.get(node, 0) + 1
    return ", ".join(node if n == 1 else f"{node} ×{n}" for node, n in sorted(counts.items())) or "-"


def _time(value: dt.datetime) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")


for _command in (invoke_command, delete_command, images, advise_command, init_command, check_command,
                 package_command):
    main.add_command(_command)
