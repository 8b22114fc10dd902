"""The CLI for the first hour, against a real server: ``invoke`` and ``delete``; ``logs`` shows the
running instances (``--all`` the stopped ones too); tables fit 80 columns; every command takes
``-h``, shows the ``DOCKYARD_*`` variable an option reads, and says in one line when no server
answers; ``demo --keep`` leaves an endpoint that survives a restart and says what to run next."""

from __future__ import annotations

import os
import platform
import shlex
import subprocess
import sys
import time

import click
import pytest
from botocore.exceptions import ClientError
from servers import Server

from dockyard.cli.client import get_json
from dockyard.cli.main import main
from e2e.deploy import FAST_WAIT, create_endpoint
from e2e.models import SKLEARN_URI, iris_classifier, package

NO_SERVER = "http://127.0.0.1:1"
ROW = "5.1,3.5,1.4,0.2"


def dockyard(*args: str, url: str, columns: int = 200, env: dict[str, str] | None = None,
             timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dockyard", *args], capture_output=True, text=True, timeout=timeout,
                          check=False, env={**os.environ, "DOCKYARD_URL": url, "COLUMNS": str(columns), **(env or {})})


def names(sm) -> dict[str, list[str]]:
    return {"endpoints": [e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]],
            "configs": [c["EndpointConfigName"] for c in sm.list_endpoint_configs()["EndpointConfigs"]],
            "models": [m["ModelName"] for m in sm.list_models()["Models"]]}


@pytest.fixture(scope="module")
def iris_endpoint(sm, tmp_path_factory) -> str:
    tarball = package(tmp_path_factory.mktemp("cli"), iris_classifier())
    create_endpoint(sm, "cli-invoke", {"PrimaryContainer": {"Image": SKLEARN_URI, "ModelDataUrl": tarball.as_uri()}})
    return "cli-invoke"


def test_invoke_prints_the_answer_from_a_body_or_a_file(server, iris_endpoint, tmp_path):
    out = dockyard("invoke", iris_endpoint, "--body", ROW, "--content-type", "text/csv", url=server.url)
    assert (out.returncode, out.stdout, out.stderr) == (0, "[0]\n", "")
    rows = tmp_path / "rows.csv"
    rows.write_text(f"{ROW}\n6.9,3.2,5.7,2.3\n")
    out = dockyard("invoke", iris_endpoint, "--file", str(rows), "--content-type", "text/csv", "--accept",
                   "application/json", "--target-variant", "AllTraffic", url=server.url)
    assert (out.returncode, out.stdout) == (0, "[0, 2]\n")


@pytest.mark.parametrize(("args", "message"), [
    (["--body", ROW, "--target-variant", "Nope"], "Error: ValidationError: "),
    (["--body", ROW, "--content-type", "application/x-nothing"], "Error: ModelError: "),
    (["--body", ROW, "--file", __file__], "Error: give the request body with exactly one of --body TEXT or --file PATH"),
    ([], "Error: give the request body with exactly one of --body TEXT or --file PATH"),
])
def test_invoke_errors_are_one_line(server, iris_endpoint, args, message):
    out = dockyard("invoke", iris_endpoint, *args, url=server.url)
    assert out.returncode == 1
    assert out.stderr.startswith(message) and out.stderr.count("\n") == 1, out.stderr
    assert out.stdout == ""


def test_delete_removes_the_endpoint_and_with_the_flag_its_config_and_models(server, sm, tmp_path):
    tarball = package(tmp_path, iris_classifier()).as_uri()
    for name in ("cli-del-a", "cli-del-b"):
        create_endpoint(sm, name, {"PrimaryContainer": {"Image": SKLEARN_URI, "ModelDataUrl": tarball}})
    out = dockyard("delete", "cli-del-a", url=server.url)
    assert (out.returncode, out.stdout) == (0, "Deleted endpoint cli-del-a\n")
    left = names(sm)
    assert "cli-del-a" not in left["endpoints"] and "cli-del-a" in left["configs"] and "cli-del-a" in left["models"]
    out = dockyard("delete", "cli-del-b", "--with-config-and-models", url=server.url)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "Deleted endpoint cli-del-b\nDeleted endpoint config cli-del-b\nDeleted model cli-del-b\n"
    left = names(sm)
    assert all("cli-del-b" not in group for group in left.values())
    out = dockyard("delete", "cli-del-b", url=server.url)
    assert out.returncode == 1 and out.stderr.startswith("Error: ValidationException: Could not find endpoint")
    sm.delete_endpoint_config(EndpointConfigName="cli-del-a")
    sm.delete_model(ModelName="cli-del-a")


@pytest.mark.parametrize("args", [["endpoints"], ["logs", "x"], ["stats", "x"], ["invoke", "x", "--body", "1"],
                                  ["delete", "x"]])
def test_every_command_says_the_same_line_when_no_server_answers(args):
    out = dockyard(*args, url=NO_SERVER)
    assert out.returncode == 1
    assert out.stderr == f"Error: cannot reach dockyard at {NO_SERVER}: is `dockyard serve` running?\n"


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], click.Command]]:
    found: list[tuple[tuple[str, ...], click.Command]] = []
    for name, command in group.commands.items():
        found.append(((*prefix, name), command))
        if isinstance(command, click.Group):
            found += _commands(command, (*prefix, name))
    return found


@pytest.mark.parametrize(("path", "command"), _commands(main), ids=lambda v: " ".join(v) if isinstance(v, tuple) else "")
def test_dash_h_works_and_shows_every_variable_an_option_reads(path, command):
    out = dockyard(*path, "-h", url=NO_SERVER, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("Usage: ")
    for param in command.params:
        for variable in ([param.envvar] if isinstance(param.envvar, str) else param.envvar or []):
            assert variable in out.stdout, f"{' '.join(path)} {param.name} reads {variable}"


def test_serve_help_lists_every_setting_variable():
    import dataclasses

    from dockyard.settings import Settings, env_name

    out = dockyard("serve", "-h", url=NO_SERVER, timeout=60)
    for field in dataclasses.fields(Settings):
        assert env_name(field.name) in out.stdout


def test_tables_fit_80_columns_without_cutting_cells(server, sm, tmp_path):
    name = "a-rather-long-endpoint-name-for-the-table-width-test-1234567"
    create_endpoint(sm, name, {"PrimaryContainer": {"Image": SKLEARN_URI,
                                                    "ModelDataUrl": package(tmp_path, iris_classifier()).as_uri()}})
    for args in (["endpoints"], ["stats", name]):
        out = dockyard(*args, url=server.url, columns=80)
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        assert max(map(len, lines)) <= 80, out.stdout
        assert "…" not in out.stdout, out.stdout
        assert name[:12] in out.stdout  # the start of a wrapped name
    # The process runtime's instances run on this host: the node both tables show.
    assert get_json(server.url, f"/_dockyard/endpoints/{name}/stats")["containers"][0]["node"] == platform.node()
    assert get_json(server.url, "/_dockyard/endpoints")["endpoints"][name]["AllTraffic"]["nodes"] == [platform.node()]
    sm.delete_endpoint(EndpointName=name)


def test_logs_show_running_instances_and_all_shows_stopped_ones(server, sm, tmp_path):
    tarball = package(tmp_path, iris_classifier()).as_uri()
    create_endpoint(sm, "cli-logs", {"PrimaryContainer": {"Image": SKLEARN_URI, "ModelDataUrl": tarball}})
    sm.create_endpoint_config(EndpointConfigName="cli-logs-2", ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": "cli-logs", "InitialInstanceCount": 1, "InstanceType": "ml.c5.large"}])
    sm.update_endpoint(EndpointName="cli-logs", EndpointConfigName="cli-logs-2")
    sm.get_waiter("endpoint_in_service").wait(EndpointName="cli-logs", WaiterConfig=FAST_WAIT)
    live = dockyard("logs", "cli-logs", url=server.url)
    assert live.returncode == 0, live.stderr
    everything = dockyard("logs", "cli-logs", "--all", url=server.url)
    assert (live.stdout.count("/ primary"), everything.stdout.count("/ primary")) == (1, 2)
    assert "(stopped)" not in live.stdout and everything.stdout.count("(stopped)") == 1
    sm.delete_endpoint(EndpointName="cli-logs")


def wait_until_serving(rt, timeout: float = 120.0) -> None:
    """Until the restored endpoint answers (a restarted server says ServiceUnavailable meanwhile)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            rt.invoke_endpoint(EndpointName="dockyard-demo", ContentType="text/csv", Body=ROW)
            return
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ServiceUnavailable" or time.monotonic() > deadline:
                raise
        time.sleep(0.1)


@pytest.mark.slow
def test_demo_keep_leaves_an_endpoint_that_survives_a_restart(tmp_path):
    state = tmp_path / "state"
    server = Server(state, tmp_path / "server.log").start()
    try:
        out = dockyard("demo", "--keep", url=server.url, env={"DOCKYARD_STATE_DIR": str(state)})
        assert out.returncode == 0, out.stdout + out.stderr
        sm = server.client("sagemaker")
        model_data = sm.describe_model(ModelName="dockyard-demo")["PrimaryContainer"]["ModelDataUrl"]
        assert model_data == (state / "demo" / "model.tar.gz").as_uri()
        steps = [line.strip() for line in out.stdout.splitlines() if line.startswith(("  dockyard ", "  python "))]
        assert steps[0].startswith("dockyard invoke dockyard-demo") and steps[2].startswith("dockyard delete dockyard-demo")
        again = dockyard("demo", "--keep", url=server.url, env={"DOCKYARD_STATE_DIR": str(state)})
        assert again.returncode == 1
        assert again.stderr.startswith("Error: dockyard-demo already exists") and again.stderr.count("\n") == 1
        server.stop()
        server.start()
        sm.get_waiter("endpoint_in_service").wait(EndpointName="dockyard-demo", WaiterConfig=FAST_WAIT)
        wait_until_serving(server.client("sagemaker-runtime", retries={"max_attempts": 1, "mode": "standard"}))
        for step in steps:  # the printed commands work as printed
            argv = shlex.split(step)
            argv[:1] = [sys.executable, "-m", "dockyard"] if argv[0] == "dockyard" else [sys.executable]
            done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
            assert done.returncode == 0, f"{step}\n{done.stderr}"
        assert names(sm) == {"endpoints": [], "configs": [], "models": []}
    finally:
        server.stop()
