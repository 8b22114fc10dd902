"""Multi-model endpoints through boto3 against a real server (process runtime, managed sklearn):
CreateModel Mode MultiModel, InvokeEndpoint TargetModel, and the errors SageMaker gives."""

from __future__ import annotations

import json
import re
import threading
import urllib.request
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from dockyard.artifacts.package import make_model_tarball
from e2e.deploy import FAST_WAIT, create_endpoint, delete_all
from e2e.models import SKLEARN_URI, USES_REQUIREMENT, iris_classifier, local_wheel, package

ROLE = "arn:aws:iam::123456789012:role/test"
# Each model answers with its own name, so a reply says which model served it.
NAMED_INFERENCE = """
import json, os

def model_fn(model_dir):
    with open(os.path.join(model_dir, "name.txt")) as f:
        return f.read()

def predict_fn(data, model):
    return {"model": model, "rows": len(data)}

def output_fn(prediction, accept):
    return json.dumps(prediction), "application/json"
"""


def named_model(prefix: Path, relative: str, name: str) -> None:
    """``prefix/relative``: a model.tar.gz whose inference.py answers ``name``."""
    code_model(prefix, relative, NAMED_INFERENCE, name)


def code_model(prefix: Path, relative: str, inference_py: str, name: str | None = None) -> None:
    """``prefix/relative``: a model.tar.gz of the iris classifier with ``inference_py`` (and
    ``name.txt`` holding ``name``, when given)."""
    work = prefix.parent / f"build-{name or relative}"
    work.mkdir()
    package(work, iris_classifier(), inference_py)  # fills work/model-src
    if name is not None:
        (work / "model-src" / "name.txt").write_text(name)
    target = prefix / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    make_model_tarball(work / "model-src", target)


@pytest.fixture(scope="module")
def prefix(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mme")
    models = root / "models"
    models.mkdir()
    named_model(models, "model-a.tar.gz", "a")
    named_model(models, "team/model-b.tar.gz", "b")
    return models


def invoke(rt, endpoint: str, target: str | None, body: str = "5.1,3.5,1.4,0.2\n6.2,2.9,4.3,1.3") -> dict:
    extra = {"TargetModel": target} if target is not None else {}
    reply = rt.invoke_endpoint(EndpointName=endpoint, ContentType="text/csv", Body=body, **extra)
    return json.loads(reply["Body"].read())


def create_mme(sm, name: str, prefix: Path) -> str:
    """A multi-model endpoint ``name`` of the managed sklearn server on the local ``prefix``."""
    create_endpoint(sm, name, {"PrimaryContainer": {
        "Image": SKLEARN_URI, "Mode": "MultiModel", "ModelDataUrl": f"file://{prefix}/",
    }})
    return name


@pytest.fixture(scope="module")
def mme(sm, prefix: Path):
    yield create_mme(sm, "mme-e2e", prefix)
    delete_all(sm, "mme-e2e")


def test_target_models_are_loaded_on_demand_and_answer_as_themselves(rt, mme: str) -> None:
    assert invoke(rt, mme, "model-a.tar.gz") == {"model": "a", "rows": 2}
    assert invoke(rt, mme, "team/model-b.tar.gz") == {"model": "b", "rows": 2}
    # Warm: served by the loaded model again.
    assert invoke(rt, mme, "model-a.tar.gz", "1,2,3,4") == {"model": "a", "rows": 1}


def invoke_at_once(rt, endpoint: str, target: str, count: int) -> list[dict]:
    """The answers of ``count`` invocations of ``target`` made from as many threads at once."""
    answers: list[dict] = []
    threads = [threading.Thread(target=lambda: answers.append(invoke(rt, endpoint, target))) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers


def test_concurrent_first_requests_all_get_the_model(rt, mme: str, prefix: Path) -> None:
    named_model(prefix, "burst.tar.gz", "burst")
    assert invoke_at_once(rt, mme, "burst.tar.gz", 6) == [{"model": "burst", "rows": 2}] * 6


def error_of(call) -> tuple[str, str, int]:
    with pytest.raises(ClientError) as info:
        call()
    err = info.value.response
    return err["Error"]["Code"], err["Error"]["Message"], err["ResponseMetadata"]["HTTPStatusCode"]


def test_invocation_errors_name_the_problem(rt, mme: str) -> None:
    code, message, status = error_of(lambda: invoke(rt, mme, None))
    assert (code, status) == ("ValidationError", 400) and "TargetModel" in message
    code, message, status = error_of(lambda: invoke(rt, mme, "../outside.tar.gz"))
    assert (code, status) == ("ValidationError", 400) and "not a relative path under the model data prefix" in message
    code, message, status = error_of(lambda: invoke(rt, mme, "missing.tar.gz"))
    assert (code, status) == ("ValidationError", 400)
    assert message.startswith("Failed to download model data(bucket: local, key: ") and "missing.tar.gz" in message


def test_a_model_that_cannot_load_answers_model_error_with_the_containers_message(rt, mme: str, prefix: Path) -> None:
    work = prefix.parent / "build-broken"
    package(work, iris_classifier(), "raise RuntimeError('this model is broken')\n")
    make_model_tarball(work / "model-src", prefix / "broken.tar.gz")
    with pytest.raises(rt.exceptions.ModelError) as info:
        invoke(rt, mme, "broken.tar.gz")
    err = info.value.response
    assert err["OriginalStatusCode"] == 500
    # The contract's error body unwrapped: its message, not the JSON around it.
    assert err["OriginalMessage"].startswith("Failed to load model broken.tar.gz: Failed to load model ")
    assert "this model is broken" in err["OriginalMessage"] and '"code"' not in err["OriginalMessage"]


def test_target_model_on_a_single_model_endpoint_is_refused(sm, rt, tmp_path: Path) -> None:
    name = "mme-single"
    create_endpoint(sm, name, {"PrimaryContainer": {
        "Image": SKLEARN_URI, "ModelDataUrl": str(package(tmp_path, iris_classifier())),
    }})
    try:
        code, message, status = error_of(lambda: invoke(rt, name, "model-a.tar.gz"))
        assert (code, status) == ("ValidationError", 400) and "not a multi-model endpoint" in message
    finally:
        delete_all(sm, name)


def test_multi_model_inside_containers_is_refused(sm, prefix: Path) -> None:
    container = {"Image": SKLEARN_URI, "Mode": "MultiModel", "ModelDataUrl": f"file://{prefix}/",
                 "ContainerHostname": "one"}
    code, message, _ = error_of(lambda: sm.create_model(
        ModelName="mme-containers", ExecutionRoleArn=ROLE, Containers=[container]))
    assert code == "ValidationException" and "Mode MultiModel is not supported for multi-container" in message


def test_a_prefix_outside_the_allowed_roots_is_refused(sm) -> None:
    code, message, _ = error_of(lambda: sm.create_model(
        ModelName="mme-outside", ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": SKLEARN_URI, "Mode": "MultiModel", "ModelDataUrl": "/etc/"}))
    assert code == "ValidationException" and "outside the allowed local paths" in message


def test_stats_models_shows_each_model_and_its_hit_rate(server, rt, mme: str) -> None:
    from e2e.test_cli_commands import dockyard

    invoke(rt, mme, "model-a.tar.gz")
    invoke(rt, mme, "model-a.tar.gz")
    out = dockyard("stats", mme, "--models", url=server.url)
    assert out.returncode == 0, out.stderr
    row = next(line for line in out.stdout.splitlines() if "model-a.tar.gz" in line)
    cells = [c.strip() for c in row.split("│") if c.strip()]
    assert cells[1:3] == ["model-a.tar.gz", "yes"]
    assert int(cells[3]) >= 1 and cells[4] == "1"  # loaded once: one miss, every other call a hit


def test_update_endpoint_moves_a_multi_model_endpoint_without_a_failed_invocation(sm, rt, tmp_path: Path) -> None:
    update_without_a_failed_invocation(sm, rt, tmp_path)


def update_without_a_failed_invocation(sm, rt, tmp_path: Path) -> None:
    """UpdateEndpoint from one prefix to another under load: no invocation fails, and answers
    switch once from the old models to the new."""
    old, new = tmp_path / "old", tmp_path / "new"
    for prefix, version in ((old, "old"), (new, "new")):
        prefix.mkdir()
        named_model(prefix, "a.tar.gz", f"{version}-a")
        named_model(prefix, "team/b.tar.gz", f"{version}-b")
    create_endpoint(sm, "mme-update", {"PrimaryContainer": {
        "Image": SKLEARN_URI, "Mode": "MultiModel", "ModelDataUrl": f"file://{old}/"}})
    letters = {"a.tar.gz": "a", "team/b.tar.gz": "b"}
    targets = list(letters)
    try:
        assert [invoke(rt, "mme-update", t)["model"] for t in targets] == ["old-a", "old-b"]
        sm.create_model(ModelName="mme-update-2", ExecutionRoleArn=ROLE, PrimaryContainer={
            "Image": SKLEARN_URI, "Mode": "MultiModel", "ModelDataUrl": f"file://{new}/"})
        sm.create_endpoint_config(EndpointConfigName="mme-update-2", ProductionVariants=[{
            "VariantName": "AllTraffic", "ModelName": "mme-update-2", "InitialInstanceCount": 1,
            "InstanceType": "ml.m5.large"}])
        # Three clients invoke concurrently all through the update, until it is over.
        done, failures, calls = threading.Event(), [], [0]

        def background(target: str) -> None:
            while not done.is_set():
                try:
                    invoke(rt, "mme-update", target)
                    calls[0] += 1
                except ClientError as exc:
                    failures.append(exc.response["Error"])

        clients = [threading.Thread(target=background, args=(t,)) for t in (*targets, targets[0])]
        for client in clients:
            client.start()
        sm.update_endpoint(EndpointName="mme-update", EndpointConfigName="mme-update-2")
        # And one in a loop: every call answered, old models until the switch, then new ones
        # (loaded on demand by the new instance) and never an old one again.
        served: list[tuple[str, str]] = []  # (TargetModel, the model that answered), in order
        try:
            while sm.describe_endpoint(EndpointName="mme-update")["EndpointStatus"] == "Updating":
                served += [(t, invoke(rt, "mme-update", t)["model"]) for t in targets]
            served += [(t, invoke(rt, "mme-update", t)["model"]) for t in targets * 3]
        finally:
            done.set()
            for client in clients:
                client.join()
        assert sm.describe_endpoint(EndpointName="mme-update")["EndpointStatus"] == "InService"
        assert failures == [] and calls[0] > 0
        versions = [model.split("-")[0] for _, model in served]
        switch = versions.index("new")
        assert versions == ["old"] * switch + ["new"] * (len(versions) - switch)
        # Each answer came from the model its TargetModel names.
        assert all(model.split("-")[1] == letters[target] for target, model in served)
    finally:
        delete_all(sm, "mme-update")
        sm.delete_endpoint_config(EndpointConfigName="mme-update-2")
        sm.delete_model(ModelName="mme-update-2")


def test_production_variants_each_serve_their_own_prefix(sm, rt, tmp_path: Path) -> None:
    for version in ("blue", "green"):
        (tmp_path / version).mkdir()
        named_model(tmp_path / version, "a.tar.gz", f"{version}-a")
        sm.create_model(ModelName=f"mme-{version}", ExecutionRoleArn=ROLE, PrimaryContainer={
            "Image": SKLEARN_URI, "Mode": "MultiModel", "ModelDataUrl": f"file://{tmp_path / version}/"})
    sm.create_endpoint_config(EndpointConfigName="mme-variants", ProductionVariants=[
        {"VariantName": v.capitalize(), "ModelName": f"mme-{v}", "InitialInstanceCount": 1,
         "InstanceType": "ml.m5.large", "InitialVariantWeight": 1.0} for v in ("blue", "green")])
    sm.create_endpoint(EndpointName="mme-variants", EndpointConfigName="mme-variants")
    try:
        sm.get_waiter("endpoint_in_service").wait(EndpointName="mme-variants", WaiterConfig=FAST_WAIT)
        for variant in ("Blue", "Green"):
            reply = rt.invoke_endpoint(EndpointName="mme-variants", TargetVariant=variant, TargetModel="a.tar.gz",
                                       ContentType="text/csv", Body="1,2,3,4")
            assert reply["InvokedProductionVariant"] == variant
            assert json.loads(reply["Body"].read()) == {"model": f"{variant.lower()}-a", "rows": 1}
        # Weighted: every answer from the variant that says it served it.
        for _ in range(6):
            reply = rt.invoke_endpoint(EndpointName="mme-variants", TargetModel="a.tar.gz", ContentType="text/csv",
                                       Body="1,2,3,4")
            assert json.loads(reply["Body"].read())["model"] == reply["InvokedProductionVariant"].lower() + "-a"
    finally:
        sm.delete_endpoint(EndpointName="mme-variants")
        sm.get_waiter("endpoint_deleted").wait(EndpointName="mme-variants", WaiterConfig=FAST_WAIT)
        sm.delete_endpoint_config(EndpointConfigName="mme-variants")
        for version in ("blue", "green"):
            sm.delete_model(ModelName=f"mme-{version}")


def test_a_models_requirements_layer_is_shared_by_the_servers_instances(server, sm, rt, tmp_path: Path) -> None:
    """pip runs once per requirements on a server: another instance (here another endpoint's;
    a replacement alike) loading a model with the same code/requirements.txt reuses the layer."""
    package_name = "dockyard_probe_shared_layer"
    wheel = local_wheel(tmp_path, package_name, "from the shared layer")
    source = tmp_path / "model-src"
    (source / "code").mkdir(parents=True)
    (source / "code" / "inference.py").write_text(USES_REQUIREMENT.format(package=package_name))
    (source / "code" / "requirements.txt").write_text(f"{wheel}\n")
    prefix = tmp_path / "models"
    prefix.mkdir()
    make_model_tarball(source, prefix / "req.tar.gz")
    names = [create_mme(sm, f"mme-layer-{x}", prefix) for x in ("a", "b")]
    try:
        logs = []
        for name in names:
            reply = rt.invoke_endpoint(EndpointName=name, TargetModel="req.tar.gz", ContentType="text/plain", Body=b"x")
            assert reply["Body"].read() == b"from the shared layer"
            with urllib.request.urlopen(f"{server.url}/_dockyard/endpoints/{name}/logs?lines=1000", timeout=10) as resp:
                logs.append("\n".join(line for entry in json.load(resp)["logs"] for line in entry["lines"]))
        installs = [re.findall(r"installing \S+ into layer (\w+)", log) for log in logs]
        reuses = [re.findall(r"reusing layer (\w+) \(pip not run\)", log) for log in logs]
        assert len(installs[0]) == 1 and reuses[0] == []
        assert installs[1] == [] and reuses[1] == installs[0]
    finally:
        for name in names:
            delete_all(sm, name)
