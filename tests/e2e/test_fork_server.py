"""The process runtime's fork server: a scikit-learn container is forked from a pre-warmed parent
(a zygote) yet keeps the container contract — its own session and process group, only the
contract's environment, its log, the unprivileged user — dies with the server, and is replaced
when its zygote dies. Frameworks that are not fork-safe, and models whose Environment matters at
import, are spawned as before, as is every container with DOCKYARD_FORK_SERVER=false."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from servers import Server

from dockyard.runtime.privileges import container_user
from dockyard.runtime.processes import owned_pids
from dockyard.runtime.zygote import CONTAINER_NAME, ZYGOTE_NAME
from e2e.deploy import (
    create_endpoint,
    delete_all,
    invoke_until_answered,
    sigkill_server,
)
from e2e.models import SKLEARN_URI, iris_classifier, package
from e2e.test_least_privilege import (  # noqa: F401 (secret_server: a fixture)
    REPORTING_INFERENCE,
    SECRETS,
    assert_least_environment,
    invoke_report,
    secret_server,
)

ROW = "5.1,3.5,1.4,0.2"


@pytest.fixture(scope="module")
def server(secret_server: Server) -> Server:  # noqa: F811 (the imported fixture, requested)
    """A server whose own environment holds secrets (test_least_privilege's); this module's
    last test SIGKILLs it."""
    return secret_server


def name_of(pid: int) -> bytes:
    return Path(f"/proc/{pid}/comm").read_bytes().strip()


def stat_of(pid: int) -> dict[str, int]:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return {"ppid": int(fields[1]), "pgid": int(fields[2]), "sid": int(fields[3])}


def uids_of(pid: int) -> list[int]:
    (line,) = [line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("Uid:")]
    return [int(uid) for uid in line.split()[1:]]


def containers(srv: Server) -> dict[int, bytes]:
    """The server's container processes and fork servers: pid → process name."""
    found = {}
    for pid in owned_pids(str(srv.state_dir.resolve())):
        try:
            found[pid] = name_of(pid)
        except OSError:
            continue  # exited meanwhile
    return found


def new_container(srv: Server, before: set[int]) -> int:
    """The one container started since ``before``: a group leader (its model server's inference
    workers are in its group) that is not a zygote."""
    (pid,) = [p for p, name in containers(srv).items()
              if p not in before and name != ZYGOTE_NAME and stat_of(p)["pgid"] == p]
    return pid


def test_forked_container_keeps_the_contract(server, tmp_path):
    sm, rt = server.client("sagemaker"), server.client("sagemaker-runtime")
    before = set(containers(server))
    create_endpoint(sm, "forked", {"PrimaryContainer": {
        "Image": SKLEARN_URI, "ModelDataUrl": package(tmp_path, iris_classifier()).as_uri()}})
    body = rt.invoke_endpoint(EndpointName="forked", ContentType="text/csv", Body=ROW)["Body"].read()
    assert body.strip() == b"[0]"

    pid = new_container(server, before)
    assert name_of(pid) == CONTAINER_NAME  # forked, not spawned
    stat = stat_of(pid)
    assert name_of(stat["ppid"]) == ZYGOTE_NAME
    assert stat_of(stat["ppid"])["ppid"] == server.proc.pid  # the zygote is the server's child
    # Its own session and process group: a stop's SIGTERM to the group reaches only this container.
    assert stat["pgid"] == stat["sid"] == pid
    assert stat["pgid"] not in (os.getpgrp(), stat_of(stat["ppid"])["pgid"])
    user = container_user(os.environ.get("DOCKYARD_CONTAINER_USER", "nobody"))  # the server's setting
    assert uids_of(pid) == [user.uid if user else os.getuid()] * 4  # real, effective, saved, filesystem
    # stdout and stderr go to its own log file; stdin is /dev/null.
    log = os.readlink(f"/proc/{pid}/fd/1")
    assert log == os.readlink(f"/proc/{pid}/fd/2") and log.endswith(".log")
    assert "serving sklearn" in Path(log).read_text()
    assert os.readlink(f"/proc/{pid}/fd/0") == os.devnull
    # Neither its inherited environment block nor the one its code sees holds the server's secrets.
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert not [v for v in environ if v.split(b"=")[0].decode() in SECRETS]
    delete_all(sm, "forked")


def test_model_environment_replaces_the_zygotes(server, tmp_path):
    sm, rt = server.client("sagemaker"), server.client("sagemaker-runtime")
    before = set(containers(server))
    create_endpoint(sm, "env-forked", {"PrimaryContainer": {
        "Image": SKLEARN_URI, "ModelDataUrl": package(tmp_path, inference_py=REPORTING_INFERENCE).as_uri(),
        "Environment": {"GREETING": "hello"}}})
    report = invoke_report(rt, "env-forked")
    assert name_of(new_container(server, before)) == CONTAINER_NAME
    assert_least_environment(report["env"])
    delete_all(sm, "env-forked")


def test_an_import_time_variable_is_spawned(server, tmp_path):
    sm, rt = server.client("sagemaker"), server.client("sagemaker-runtime")
    before = set(containers(server))
    create_endpoint(sm, "omp", {"PrimaryContainer": {
        "Image": SKLEARN_URI, "ModelDataUrl": package(tmp_path, iris_classifier()).as_uri(),
        "Environment": {"OMP_NUM_THREADS": "1"}}})
    assert rt.invoke_endpoint(EndpointName="omp", ContentType="text/csv", Body=ROW)["Body"].read().strip() == b"[0]"
    pid = new_container(server, before)
    assert name_of(pid) != CONTAINER_NAME
    assert stat_of(pid)["ppid"] == server.proc.pid
    delete_all(sm, "omp")


def test_tensorflow_is_spawned(server, tmp_path):
    pytest.importorskip("tensorflow")
    from frameworks.models import TENSORFLOW_URI, iris_keras
    from frameworks.models import package as framework_package

    sm, rt = server.client("sagemaker"), server.client("sagemaker-runtime")
    before = set(containers(server))
    uri = framework_package(tmp_path, "tf", lambda d: iris_keras().export(str(d / "1"), verbose=False))
    create_endpoint(sm, "tf-spawned", {"PrimaryContainer": {"Image": TENSORFLOW_URI, "ModelDataUrl": uri}})
    body = rt.invoke_endpoint(EndpointName="tf-spawned", ContentType="application/json",
                              Body=b'{"instances": [[5.1, 3.5, 1.4, 0.2]]}')["Body"].read()
    assert b"predictions" in body
    pid = new_container(server, before)
    assert name_of(pid) != CONTAINER_NAME
    assert stat_of(pid)["ppid"] == server.proc.pid
    delete_all(sm, "tf-spawned")


def test_a_dead_zygote_is_replaced_with_its_containers(server, tmp_path):
    sm, rt = server.client("sagemaker"), server.client("sagemaker-runtime")
    before = set(containers(server))
    create_endpoint(sm, "orphaned", {"PrimaryContainer": {
        "Image": SKLEARN_URI, "ModelDataUrl": package(tmp_path, iris_classifier()).as_uri()}})
    pid = new_container(server, before)
    zygote = stat_of(pid)["ppid"]
    os.kill(zygote, signal.SIGKILL)

    # Its container dies with it (and is reaped); the reconciler replaces it from a new zygote.
    deadline = time.monotonic() + 10
    while pid in containers(server):
        assert time.monotonic() < deadline, "the container outlived its zygote"
        time.sleep(0.05)
    body = invoke_until_answered(rt, "orphaned", ROW, timeout=120)
    assert body.strip() == b"[0]"
    assert sm.describe_endpoint(EndpointName="orphaned")["EndpointStatus"] == "InService"
    replacement = new_container(server, before | {pid})
    assert name_of(replacement) == CONTAINER_NAME
    assert stat_of(replacement)["ppid"] not in (zygote, server.proc.pid)


def test_fork_server_off_spawns_every_container(tmp_path):
    srv = Server(tmp_path / "state", tmp_path / "server.log", {"DOCKYARD_FORK_SERVER": "false"}).start()
    try:
        sm, rt = srv.client("sagemaker"), srv.client("sagemaker-runtime")
        create_endpoint(sm, "spawned", {"PrimaryContainer": {
            "Image": SKLEARN_URI, "ModelDataUrl": package(tmp_path, iris_classifier()).as_uri()}})
        assert rt.invoke_endpoint(EndpointName="spawned", ContentType="text/csv", Body=ROW)["Body"].read().strip() == b"[0]"
        pid = new_container(srv, set())
        assert name_of(pid) != CONTAINER_NAME
        assert stat_of(pid)["ppid"] == srv.proc.pid
        assert ZYGOTE_NAME not in containers(srv).values()
    finally:
        srv.stop()


def test_forked_containers_die_with_the_server(server):
    owner = str(server.state_dir.resolve())
    assert any(name == CONTAINER_NAME for name in containers(server).values())
    assert sigkill_server(server, owner) == [], "forked containers or their zygote outlived the server"
