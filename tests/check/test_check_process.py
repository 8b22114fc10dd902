"""``dockyard check DIR`` on the process runtime: a good BYOC directory and the managed scikit-learn
server pass; deliberately broken containers fail, naming the check they break."""

from __future__ import annotations

import socket
import subprocess
import sys

import joblib
import pytest
from check_helpers import container_dir, run_check, statuses
from click.testing import CliRunner
from e2e.models import SKLEARN_URI, iris_classifier

from dockyard.check.procnet import listening_ports
from dockyard.cli.main import main
from dockyard.runtime.contract import DEFAULT_PORT
from dockyard.runtime.ports import free_port
from dockyard.strategy.scaffolds import SCAFFOLDS, render

# Short budgets: the broken containers would otherwise take SageMaker's full 4 minutes and 30 s. A
# container that never becomes healthy is given SHORT_STARTUP; one that does, all the time it needs.
FAST = ["--startup-timeout", "60", "--stop-grace", "1", "--concurrency", "4"]
SHORT_STARTUP = ["--startup-timeout", "1.5"]


def test_the_byoc_scaffold_honours_the_contract(tmp_path):
    project = tmp_path / "byoc"
    render(SCAFFOLDS["byoc"], project)
    code, report = run_check(*FAST, str(project), "--model-dir", str(project / "model"))
    assert code == 0, report
    assert report["ok"] and report["runtime"] == "process"
    assert statuses(report) == {
        "serve": "pass", "bind-port": "pass", "ping": "pass", "ping-latency": "pass", "multi-model": "skip",
        "invocations": "pass", "content-type": "pass", "accept": "pass", "concurrency": "pass",
        "model-read-only": "skip", "sigterm": "pass",
    }
    invocation = next(c for c in report["checks"] if c["id"] == "invocations")
    assert '{"species": ["setosa"]}' in invocation["detail"]


def test_the_managed_sklearn_server_with_the_managed_scaffold_honours_the_contract(tmp_path):
    project = tmp_path / "managed"
    render(SCAFFOLDS["managed"], project)
    joblib.dump(iris_classifier(), project / "model" / "model.joblib")
    payload = tmp_path / "rows.json"
    payload.write_text("[[5.1, 3.5, 1.4, 0.2], [6.9, 3.2, 5.7, 2.3]]")
    # Stopping means tearing down an interpreter with scikit-learn loaded: on a busy machine that takes
    # more than FAST's 1 s (still far inside SageMaker's 30 s).
    code, report = run_check(*FAST, "--stop-grace", "10", SKLEARN_URI, "--runtime", "process",
                             "--model-dir", str(project / "model"),
                             "--env", "SAGEMAKER_PROGRAM=inference.py",
                             "--payload", str(payload), "--content-type", "application/json")
    assert code == 0, [c for c in report["checks"] if c["status"] == "fail"]
    assert [c["id"] for c in report["checks"] if c["status"] not in ("pass", "skip")] == []
    invocation = next(c for c in report["checks"] if c["id"] == "invocations")["detail"]
    assert '{"species": ["setosa", "virginica"]}' in invocation


@pytest.mark.parametrize(
    ("behaviour", "failed", "in_detail"),
    [
        ({"ping": False}, "ping", "HTTP 404"),
        ({"ignores_sigterm": True}, "sigterm", "still running 1 s after SIGTERM"),
        ({"ping_delay": 2.3}, "ping-latency", "the platform waits 2 s"),
    ],
    ids=["no-ping", "ignores-sigterm", "slow-ping"],
)
def test_a_broken_container_fails_the_check_it_breaks(tmp_path, behaviour, failed, in_detail):
    budget = SHORT_STARTUP if failed == "ping" else []
    code, report = run_check(*FAST, str(container_dir(tmp_path / "broken", **behaviour)), *budget)
    assert code == 1
    assert report["failed"] == [failed]
    result = next(c for c in report["checks"] if c["id"] == failed)
    assert in_detail in result["detail"]
    assert result["hint"]


def test_a_container_on_the_wrong_port_is_told_where_it_listens(tmp_path):
    port = free_port()
    code, report = run_check(*FAST, str(container_dir(tmp_path / "broken", port=port)), *SHORT_STARTUP)
    assert code == 1
    assert report["failed"] == ["bind-port"]
    hint = next(c for c in report["checks"] if c["id"] == "bind-port")["hint"]
    assert hint.startswith(f"It listens on {port} instead.")
    assert "SAGEMAKER_BIND_TO_PORT" in hint
    # the check stopped it: nothing listens there any more
    assert statuses(report)["sigterm"] == "pass"


def test_a_container_on_8080_fails_bind_port_without_waiting_for_the_budget(tmp_path):
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", DEFAULT_PORT)) == 0:
            pytest.skip(f"something else listens on port {DEFAULT_PORT} on this machine")
    # The full default budget (240 s): the check must see the listener table, not wait it out.
    code, report = run_check("--stop-grace", "1", str(container_dir(tmp_path / "on-8080", port=DEFAULT_PORT)))
    assert code == 1
    assert report["failed"] == ["bind-port"]
    result = next(c for c in report["checks"] if c["id"] == "bind-port")
    assert result["detail"].startswith(f"it listens on port {DEFAULT_PORT}, not on SAGEMAKER_BIND_TO_PORT=")
    assert result["hint"].startswith(f"It listens on {DEFAULT_PORT} instead.")
    assert statuses(report)["sigterm"] == "pass"


def test_a_slow_first_ping_while_starting_is_a_warning(tmp_path):
    # Like AWS's scikit-learn BYOC sample: the first /ping loads the model, later ones are instant.
    code, report = run_check(*FAST, str(container_dir(tmp_path / "loads-on-ping", first_ping_delay=2.5)))
    assert code == 0, report
    result = next(c for c in report["checks"] if c["id"] == "ping-latency")
    assert result["status"] == "warn"
    assert result["detail"].startswith("the first /ping to answer 200 took 2.")
    assert "the platform keeps polling during start-up" in result["detail"]


def test_a_server_that_cannot_answer_while_busy_fails_concurrency(tmp_path):
    # One request at a time, 0.6 s each: a ping behind four invocations waits longer than 2 s.
    code, report = run_check(*FAST, str(container_dir(tmp_path / "serial", threaded=False, invoke_delay=0.6)),
                             "--invoke-timeout", "10")
    assert code == 1
    assert report["failed"] == ["concurrency"]
    assert "/ping during them" in next(c for c in report["checks"] if c["id"] == "concurrency")["detail"]


def test_the_multi_model_api_is_checked_when_asked_for(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    code, report = run_check(*FAST, str(container_dir(tmp_path / "mme", multi_model=True)),
                             "--multi-model", "--model-dir", str(model))
    assert code == 0, report
    assert statuses(report)["multi-model"] == "pass"
    detail = next(c for c in report["checks"] if c["id"] == "multi-model")["detail"]
    assert "/models/dockyard-check/invoke" in detail and "DELETE unloaded it" in detail
    assert "POST /models/dockyard-check/invoke" in next(c for c in report["checks"] if c["id"] == "invocations")["detail"]


def test_a_container_without_the_multi_model_api_fails_multi_model(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    code, report = run_check(*FAST, str(container_dir(tmp_path / "single")), "--multi-model", "--model-dir", str(model))
    assert code == 1
    assert report["failed"] == ["multi-model"]
    assert "GET /models → HTTP 404" in next(c for c in report["checks"] if c["id"] == "multi-model")["detail"]


def test_ignoring_content_negotiation_is_a_warning_not_a_failure(tmp_path):
    code, report = run_check(*FAST, str(container_dir(tmp_path / "lax", negotiates=False)))
    assert code == 0
    assert statuses(report)["content-type"] == statuses(report)["accept"] == "warn"


def test_serve_that_exits_fails_serve_and_shows_its_log(tmp_path):
    directory = tmp_path / "crashes"
    directory.mkdir()
    (directory / "serve").write_text("#!/bin/sh\necho 'cannot load the model' >&2\nexit 3\n")
    (directory / "serve").chmod(0o755)
    code, report = run_check(*FAST, str(directory))
    assert code == 1 and report["failed"] == ["serve"]
    assert "exited with code 3" in report["checks"][0]["detail"]
    assert "cannot load the model" in report["log_tail"]
    assert statuses(report)["sigterm"] == "skip"


def test_serve_that_is_not_executable_is_named(tmp_path):
    directory = container_dir(tmp_path / "plain")
    (directory / "serve").chmod(0o644)
    code, report = run_check(*FAST, str(directory))
    assert code == 1 and report["failed"] == ["serve"]
    assert "chmod +x" in report["checks"][0]["detail"]


def test_the_cli_exits_non_zero_and_prints_hints_for_people(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "dockyard", "check", *FAST, str(container_dir(tmp_path / "broken", ignores_sigterm=True))],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 1
    assert "1 check(s) failed: sigterm" in done.stdout
    assert "Handle SIGTERM" in done.stdout


def test_a_directory_without_serve_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(main, ["check", str(tmp_path)])
    assert result.exit_code == 1
    assert "has no `serve` file" in result.output


def test_listening_ports_are_read_from_proc_net_tcp():
    table = (
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
        "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1\n"
        "   1: 0100007F:9C40 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 222 1\n"
    )
    assert listening_ports(table) == [8080]
    assert listening_ports(table, inodes={999}) == []
