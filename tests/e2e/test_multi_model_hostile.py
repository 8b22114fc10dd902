"""Multi-model endpoints against a careless or hostile client, through boto3 and a real server:
TargetModel values that try to leave the prefix, broken model archives, control characters, and
models whose code kills their container. Each gets an AWS error naming the problem."""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from servers import Server

from dockyard.artifacts.package import make_model_tarball
from e2e.deploy import create_endpoint, delete_all, endpoint_stats, instance_ids, invoke_until_answered
from e2e.models import SKLEARN_URI, iris_classifier, package
from e2e.test_multi_model import code_model, create_mme, error_of, invoke, invoke_at_once, named_model


def _tar_gz(path: Path, *members: tuple[tarfile.TarInfo, bytes | None]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)


def _file(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _link(name: str, target: str, kind: bytes) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


def _bomb(path: Path) -> None:
    """A member whose header claims 40 GiB (past the 30 GiB unpacked-size budget): a few hundred
    bytes compressed. The budget refuses it at its header, before a byte of it is written."""
    info = tarfile.TarInfo("zeros")
    info.size = 40 * 1024**3
    path.write_bytes(gzip.compress(info.tobuf(format=tarfile.GNU_FORMAT) + bytes(1024)))


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``root/models`` (the prefix) and ``root/outside`` (a model the prefix must not reach)."""
    root = tmp_path_factory.mktemp("mme-hostile")
    models, outside = root / "models", root / "outside"
    models.mkdir()
    outside.mkdir()
    named_model(models, "a.tar.gz", "a")
    named_model(outside, "secret.tar.gz", "secret")
    os.symlink(outside / "secret.tar.gz", models / "link.tar.gz")
    os.symlink(outside, models / "linkdir")
    (models / "dir.tar.gz").mkdir()
    (models / "notgz.tar.gz").write_bytes(b"not a gzip stream at all")
    whole = (models / "a.tar.gz").read_bytes()
    (models / "truncated.tar.gz").write_bytes(whole[: len(whole) // 2])
    _tar_gz(models / "absolute.tar.gz", _file("/tmp/dockyard-mme-absolute"))
    _tar_gz(models / "dotdot.tar.gz", _file("../../dockyard-mme-dotdot"))
    _tar_gz(models / "symlink-out.tar.gz", _link("model.joblib", "/etc/passwd", tarfile.SYMTYPE))
    _tar_gz(models / "hardlink-out.tar.gz", _link("model.joblib", "../../etc/passwd", tarfile.LNKTYPE))
    _bomb(models / "bomb.tar.gz")
    return root


@pytest.fixture(scope="module")
def hostile(sm, layout: Path):
    yield create_mme(sm, "mme-hostile", layout / "models")
    delete_all(sm, "mme-hostile")


@pytest.mark.parametrize(("target", "expected"), [
    ("x" * 1025, "Member must have length less than or equal to 1024"),
    ("/etc/passwd", "is not a relative path under the model data prefix"),
    ("../outside/secret.tar.gz", "is not a relative path under the model data prefix"),
    ("..\\outside\\secret.tar.gz", "is not a relative path under the model data prefix"),
    # %2e%2e is a name, not "..": there is no such object (a file:// URL would have decoded it).
    ("%2e%2e/outside/secret.tar.gz", "Could not find model data"),
    # Symlinks inside the prefix that lead out of it.
    ("link.tar.gz", "leads outside the model data prefix"),
    ("linkdir/secret.tar.gz", "leads outside the model data prefix"),
    ("dir.tar.gz", "is a directory, not a model archive (.tar.gz)"),
])
def test_target_models_outside_the_prefix_or_not_archives_are_validation_errors(
    rt, hostile: str, target: str, expected: str
) -> None:
    code, message, status = error_of(lambda: invoke(rt, hostile, target))
    assert (code, status) == ("ValidationError", 400)
    assert expected in message


@pytest.mark.parametrize(("target", "expected"), [
    ("notgz.tar.gz", "is not a gzip-compressed tar archive"),
    ("truncated.tar.gz", "is truncated or corrupt"),
    ("absolute.tar.gz", 'member "/tmp/dockyard-mme-absolute" has an absolute path'),
    ("dotdot.tar.gz", 'member "../../dockyard-mme-dotdot" would be written outside the destination directory'),
    ("symlink-out.tar.gz", "is a symlink to an absolute path (/etc/passwd)"),
    ("hardlink-out.tar.gz", "is a hard link to ../../etc/passwd, outside the destination directory"),
    ("bomb.tar.gz", "exceeds the limit of"),
])
def test_broken_model_archives_are_validation_errors_naming_the_problem(
    rt, hostile: str, layout: Path, target: str, expected: str
) -> None:
    code, message, status = error_of(lambda: invoke(rt, hostile, target))
    assert (code, status) == ("ValidationError", 400)
    assert message.startswith("Failed to download model data(bucket: local, key: ") and expected in message
    assert not Path("/tmp/dockyard-mme-absolute").exists() and not (layout.parent / "dockyard-mme-dotdot").exists()
    # The endpoint still serves its good models.
    assert invoke(rt, hostile, "a.tar.gz") == {"model": "a", "rows": 2}


@pytest.mark.parametrize("target", ["a.tar.gz\x00", "a\x01.tar.gz", "a.tar.gz\x7f"])
def test_control_characters_in_target_model_are_validation_errors(rt, hostile: str, target: str) -> None:
    # botocore sends them; the HTTP parser refuses the header: an AWS error, not aiohttp's text.
    code, message, status = error_of(lambda: invoke(rt, hostile, target))
    assert (code, status) == ("ValidationError", 400)
    assert message.startswith("Malformed HTTP request: Invalid header value char")
    assert "X-Amzn-SageMaker-Target-Model" in message


EXITS_AT_LOAD = """
import os

def model_fn(model_dir):
    os._exit(3)
"""


def test_a_model_that_kills_its_container_leaves_no_stale_model_behind(server: Server, sm, rt, tmp_path: Path) -> None:
    """The load that killed the container answers ModelError; the instance is replaced (until then
    only ModelError or ServiceUnavailable); the replacement loads every model afresh, and nothing
    is left of the dead instance's loaded models (no entry pointing at the dead container)."""
    prefix = tmp_path / "models"
    prefix.mkdir()
    named_model(prefix, "a.tar.gz", "a")
    named_model(prefix, "b.tar.gz", "b")
    code_model(prefix, "exit.tar.gz", EXITS_AT_LOAD)
    name = create_mme(sm, "mme-crash", prefix)
    try:
        assert invoke(rt, name, "a.tar.gz") == {"model": "a", "rows": 2}
        (dead,) = instance_ids(server, name)
        with pytest.raises(ClientError) as info:
            invoke(rt, name, "exit.tar.gz")
        err = info.value.response
        assert err["Error"]["Code"] == "ModelError" and err["OriginalStatusCode"] == 0
        assert "Failed to load model exit.tar.gz: the container could not be reached" in err["OriginalMessage"]
        body = "5.1,3.5,1.4,0.2"
        assert json.loads(invoke_until_answered(rt, name, body, TargetModel="b.tar.gz")) == {"model": "b", "rows": 1}
        assert invoke(rt, name, "a.tar.gz") == {"model": "a", "rows": 2}
        (alive,) = instance_ids(server, name)
        rows = {(row["instance"], row["model"]): row for row in endpoint_stats(server, name)["models"]}
        assert alive != dead and set(rows) == {(alive, "a.tar.gz"), (alive, "b.tar.gz")}
        assert rows[(alive, "a.tar.gz")]["loaded"] and rows[(alive, "a.tar.gz")]["misses"] == 1
    finally:
        delete_all(sm, name)


# Loads only once the test opens the gate.
GATED = """
import os, time, joblib

def model_fn(model_dir):
    open(os.environ["GATE"] + "." + os.path.basename(model_dir), "w").close()
    deadline = time.monotonic() + 120
    while not os.path.exists(os.environ["GATE"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return joblib.load(os.path.join(model_dir, "model.joblib"))
"""


def test_a_load_queued_when_its_endpoint_is_deleted_never_starts(server: Server, sm, rt, tmp_path: Path) -> None:
    """Another endpoint's loads take every parallel load; this one's first request waits its turn;
    DeleteEndpoint removes its instance. The queued load must not unpack into the removed
    directory afterwards (a leak) nor call the stopped container: the request answers 503, which
    boto3 retries (the retry learns the endpoint is gone; after an instance's replacement it would
    be served)."""
    from dockyard.gateway.multimodel import PARALLEL_LOADS

    gate = tmp_path / "gate"
    hog_prefix, victim_prefix = tmp_path / "hog", tmp_path / "victim"
    hog_prefix.mkdir()
    for i in range(PARALLEL_LOADS):
        package(tmp_path / f"gated-{i}", iris_classifier(), GATED)
        make_model_tarball(tmp_path / f"gated-{i}" / "model-src", hog_prefix / f"gated-{i}.tar.gz")
    victim_prefix.mkdir()
    named_model(victim_prefix, "a.tar.gz", "a")
    hog = "mme-hog"
    create_endpoint(sm, hog, {"PrimaryContainer": {
        "Image": SKLEARN_URI, "Mode": "MultiModel", "ModelDataUrl": f"file://{hog_prefix}/",
        "Environment": {"GATE": str(gate)},
    }})
    victim = create_mme(sm, "mme-victim", victim_prefix)
    (victim_instance,) = instance_ids(server, victim)
    answers: dict[str, Any] = {}

    def call(endpoint: str, target: str) -> None:
        try:
            answers[target] = invoke(rt, endpoint, target)
        except ClientError as exc:
            answers[target] = exc.response

    hogs = [threading.Thread(target=call, args=(hog, f"gated-{i}.tar.gz")) for i in range(PARALLEL_LOADS)]
    try:
        for t in hogs:
            t.start()
        # Every one asked for (each load holds its turn from then on: loads whose memory is not
        # measured yet wait inside it), and the first in model_fn.
        _wait_for(lambda: len(endpoint_stats(server, hog)["models"]) == PARALLEL_LOADS and any(tmp_path.glob("gate.*")))
        queued = threading.Thread(target=call, args=(victim, "a.tar.gz"))
        queued.start()
        _wait_for(lambda: [m["misses"] for m in endpoint_stats(server, victim)["models"]] == [1])
        delete_all(sm, victim)
        assert not (server.state_dir / "instances" / victim_instance).exists()
    finally:
        gate.touch()
        for t in hogs:
            t.join()
    queued.join()
    assert not (server.state_dir / "instances" / victim_instance).exists(), "the queued load recreated it"
    err = answers["a.tar.gz"]
    # It answered 503 ServiceUnavailable, which boto3 retried, to learn that the endpoint is gone.
    assert err["ResponseMetadata"]["RetryAttempts"] == 1
    assert err["Error"] == {"Code": "ValidationError", "Message": f"Endpoint {victim} of account 123456789012 not found."}
    # The other endpoint's loads went on: each model answers its predictions.
    assert [type(answers[f"gated-{i}.tar.gz"]) for i in range(PARALLEL_LOADS)] == [list] * PARALLEL_LOADS
    delete_all(sm, hog)


def _wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def _series(server: Server, metric: str, endpoint: str) -> float:
    """The value of ``metric`` (a ``_count`` or counter sample) of ``endpoint`` in /metrics."""
    with urllib.request.urlopen(f"{server.url}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
              if line.startswith(metric + "{") and f'endpoint="{endpoint}"' in line]
    return sum(values)


def test_fifty_concurrent_first_requests_make_one_download_and_one_load(server: Server, sm, tmp_path: Path) -> None:
    # A connection each (boto3's pool holds 10 by default), so all fifty are in flight at once.
    rt = server.client("sagemaker-runtime", max_pool_connections=50, retries={"total_max_attempts": 1})
    prefix = tmp_path / "models"
    prefix.mkdir()
    named_model(prefix, "cold.tar.gz", "cold")
    name = create_mme(sm, "mme-fifty", prefix)
    try:
        assert invoke_at_once(rt, name, "cold.tar.gz", 50) == [{"model": "cold", "rows": 2}] * 50
        assert _series(server, "dockyard_model_downloading_seconds_count", name) == 1
        assert _series(server, "dockyard_model_loading_seconds_count", name) == 1
        (row,) = endpoint_stats(server, name)["models"]
        assert row["hits"] + row["misses"] == 50 and row["loaded"]
    finally:
        delete_all(sm, name)


def test_a_prefix_that_does_not_exist_yet_is_accepted_and_each_invocation_names_the_missing_model(
    sm, rt, tmp_path: Path
) -> None:
    """As an S3 prefix needs no object at CreateModel: models may be added after the endpoint is up."""
    prefix = tmp_path / "later"
    name = create_mme(sm, "mme-later", prefix)
    try:
        code, message, status = error_of(lambda: invoke(rt, name, "a.tar.gz"))
        assert (code, status) == ("ValidationError", 400)
        assert message.startswith(f"Failed to download model data(bucket: local, key: file://{prefix}/a.tar.gz).")
        assert f"Could not find model data at {prefix}/a.tar.gz: no such file or directory." in message
        prefix.mkdir()
        named_model(prefix, "a.tar.gz", "a")
        assert invoke(rt, name, "a.tar.gz") == {"model": "a", "rows": 2}
    finally:
        delete_all(sm, name)


SLOW_LOAD = """
import os, time, joblib

def model_fn(model_dir):
    time.sleep(4)
    return joblib.load(os.path.join(model_dir, "model.joblib"))
"""


def test_a_load_longer_than_the_wait_is_model_not_ready_which_boto3s_default_mode_retries(tmp_path: Path) -> None:
    """SageMaker's ModelNotReadyException (429) while the load carries on. boto3's default
    (legacy) retry mode retries a 429 until the model answers; its standard mode does not retry
    this code (it is not modeled as retryable): the client sees it."""
    prefix = tmp_path / "models"
    prefix.mkdir()
    for target in ("legacy.tar.gz", "standard.tar.gz"):
        package(tmp_path / target, iris_classifier(), SLOW_LOAD)
        make_model_tarball(tmp_path / target / "model-src", prefix / target)
    server = Server(tmp_path / "state", tmp_path / "server.log", {"DOCKYARD_MODEL_LOAD_WAIT": "1"}).start()
    try:
        name = create_mme(server.client("sagemaker"), "mme-slow", prefix)
        standard = server.client("sagemaker-runtime", retries={"mode": "standard"})
        code, message, status = error_of(lambda: invoke(standard, name, "standard.tar.gz"))
        assert (code, status) == ("ModelNotReadyException", 429)
        assert message == "Model standard.tar.gz is still loading; retry the request shortly."
        legacy = server.client("sagemaker-runtime", retries={"mode": "legacy", "total_max_attempts": 20})
        reply = legacy.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body="5.1,3.5,1.4,0.2",
                                       TargetModel="legacy.tar.gz")
        assert reply["ResponseMetadata"]["RetryAttempts"] >= 1 and json.loads(reply["Body"].read()) == [0]
        # The load the standard client gave up waiting for carried on: the model answers now.
        assert json.loads(invoke_until_loaded(standard, name, "standard.tar.gz")) == [0]
    finally:
        server.stop()


def invoke_until_loaded(rt, endpoint: str, target: str, timeout: float = 60.0) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return rt.invoke_endpoint(EndpointName=endpoint, ContentType="text/csv", Body="5.1,3.5,1.4,0.2",
                                      TargetModel=target)["Body"].read()
        except rt.exceptions.ModelNotReadyException:
            assert time.monotonic() < deadline, f"{target} never loaded"
            time.sleep(0.2)


def test_sys_exit_or_keyboard_interrupt_in_a_models_code_fails_only_its_load_or_request(
    server: Server, sm, tmp_path: Path
) -> None:
    """Handlers run on threads in a multi-model container: KeyboardInterrupt from model_fn stopped
    the whole container, and from predict_fn ended the model's thread (its requests hung)."""
    rt = server.client("sagemaker-runtime", read_timeout=30, retries={"total_max_attempts": 1})
    prefix = tmp_path / "models"
    prefix.mkdir()
    named_model(prefix, "a.tar.gz", "a")
    handlers = {
        "load-interrupt": "def model_fn(model_dir):\n    raise KeyboardInterrupt\n",
        "load-exit": "def model_fn(model_dir):\n    raise SystemExit(2)\n",
        "predict-interrupt": "def model_fn(model_dir):\n    return 1\n\ndef predict_fn(data, model):\n    raise KeyboardInterrupt\n",
    }
    for target, code in handlers.items():
        package(tmp_path / target, iris_classifier(), code)
        make_model_tarball(tmp_path / target / "model-src", prefix / f"{target}.tar.gz")
    name = create_mme(sm, "mme-interrupt", prefix)
    try:
        assert invoke(rt, name, "a.tar.gz") == {"model": "a", "rows": 2}
        (instance,) = instance_ids(server, name)
        for target, expected in (("load-interrupt", "KeyboardInterrupt"), ("load-exit", "SystemExit: 2")):
            with pytest.raises(rt.exceptions.ModelError) as info:
                invoke(rt, name, f"{target}.tar.gz")
            message = info.value.response["OriginalMessage"]
            assert message.startswith(f"Failed to load model {target}.tar.gz: ") and expected in message
        for _ in range(2):  # the model's thread survives its first request
            with pytest.raises(rt.exceptions.ModelError) as info:
                invoke(rt, name, "predict-interrupt.tar.gz")
            assert info.value.response["OriginalMessage"] == "KeyboardInterrupt: "
        # The container, and the models it had, went on.
        assert invoke(rt, name, "a.tar.gz") == {"model": "a", "rows": 2}
        assert instance_ids(server, name) == {instance}
    finally:
        delete_all(sm, name)
