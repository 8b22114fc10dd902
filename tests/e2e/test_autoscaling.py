"""Autoscaling through boto3's application-autoscaling client against a real server (process
runtime, a scikit-learn model): a load generator drives invocations per instance above the target,
the variant scales out (DescribeEndpoint shows Updating, then InService with more instances; the
activities list it), and back in once the load stops; validation errors with their exact codes and
messages; an asynchronous endpoint at MinCapacity 0 that scales from zero when a request arrives;
the AWS CLI; SigV4 with the application-autoscaling signing name."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from servers import Server

from e2e.deploy import FAST_WAIT, create_endpoint
from e2e.models import SKLEARN_URI, iris_classifier, package
from e2e.test_readme import DEFAULT_URL, blocks, run_python

# Datapoints every half second: scale-out after 1.5 s of load, scale-in after 7.5 s of quiet.
PERIOD = "0.5"
DIMENSION = "sagemaker:variant:DesiredInstanceCount"
ROW = "5.1,3.5,1.4,0.2"
WAIT_LIMIT = 120.0  # a hang guard for the server's background work, not a timing


def resource(name: str, variant: str = "AllTraffic") -> str:
    return f"endpoint/{name}/variant/{variant}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("autoscaling")
    srv = Server(tmp / "state", tmp / "server.log",
                 {"DOCKYARD_AUTOSCALING_PERIOD": PERIOD, "DOCKYARD_HEALTH_INTERVAL": "0.2"}).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def model_data(tmp_path_factory: pytest.TempPathFactory) -> str:
    return package(tmp_path_factory.mktemp("model"), iris_classifier()).as_uri()


# Loads the model a second late, so that a new instance is seen starting: an instance of the fork
# server is up in about 0.1 s, quicker than a poll of DescribeEndpoint under load may come round.
SLOW_START = """
import os
import time

import joblib

def model_fn(model_dir):
    time.sleep(1.0)
    return joblib.load(os.path.join(model_dir, "model.joblib"))
"""


@pytest.fixture(scope="module")
def slow_start_model_data(tmp_path_factory: pytest.TempPathFactory) -> str:
    return package(tmp_path_factory.mktemp("slow-model"), iris_classifier(), SLOW_START).as_uri()


@pytest.fixture(scope="module")
def clients(server: Server) -> tuple[Any, Any, Any]:
    return server.client("sagemaker"), server.client("sagemaker-runtime"), server.client("application-autoscaling")


def deploy(sm: Any, name: str, model_data: str, **config: Any) -> None:
    create_endpoint(sm, name, {"PrimaryContainer": {"Image": SKLEARN_URI, "ModelDataUrl": model_data}}, **config)


def wait_for(condition: Any, what: str) -> Any:
    deadline = time.monotonic() + WAIT_LIMIT
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def error(call: Any, **params: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as exc:
        call(**params)
    return exc.value.response["Error"]["Code"], exc.value.response["Error"]["Message"]


def test_load_scales_out_and_quiet_scales_back_in(clients: Any, slow_start_model_data: str) -> None:
    sm, rt, aas = clients
    deploy(sm, "scaled", slow_start_model_data)
    registered = aas.register_scalable_target(ServiceNamespace="sagemaker", ResourceId=resource("scaled"),
                                              ScalableDimension=DIMENSION, MinCapacity=1, MaxCapacity=2)
    assert registered["ScalableTargetARN"].startswith("arn:aws:application-autoscaling:us-east-1:123456789012:")
    put = aas.put_scaling_policy(
        PolicyName="invocations", ServiceNamespace="sagemaker", ResourceId=resource("scaled"),
        ScalableDimension=DIMENSION, PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": 300.0, "ScaleOutCooldown": 1, "ScaleInCooldown": 2,
            "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
        })
    policies = aas.describe_scaling_policies(ServiceNamespace="sagemaker", ResourceId=resource("scaled"))
    assert [(p["PolicyName"], p["PolicyARN"], p["TargetTrackingScalingPolicyConfiguration"]["TargetValue"])
            for p in policies["ScalingPolicies"]] == [("invocations", put["PolicyARN"], 300.0)]

    stop = threading.Event()
    answers: list[bytes] = []

    def load() -> None:  # bounded: it stops when told, or after WAIT_LIMIT
        deadline = time.monotonic() + WAIT_LIMIT
        while not stop.is_set() and time.monotonic() < deadline:
            answers.append(rt.invoke_endpoint(EndpointName="scaled", ContentType="text/csv", Body=ROW)["Body"].read())

    loader = threading.Thread(target=load)
    loader.start()
    seen: list[tuple[str, int | None, int | None]] = []
    try:
        def scaled_out() -> bool:
            ep = sm.describe_endpoint(EndpointName="scaled")
            variant = ep["ProductionVariants"][0]
            seen.append((ep["EndpointStatus"], variant.get("DesiredInstanceCount"), variant.get("CurrentInstanceCount")))
            return ep["EndpointStatus"] == "InService" and variant["CurrentInstanceCount"] == 2

        wait_for(scaled_out, "the scale-out")
    finally:
        stop.set()
        loader.join()
    assert ("Updating", 2, 1) in seen, seen  # the new count desired while the old one serves
    assert set(answers) == {b"[0]"}

    def scaled_in() -> bool:
        ep = sm.describe_endpoint(EndpointName="scaled")
        return ep["EndpointStatus"] == "InService" and ep["ProductionVariants"][0]["CurrentInstanceCount"] == 1

    wait_for(scaled_in, "the scale-in")

    def settled() -> list[dict[str, Any]]:
        acts = aas.describe_scaling_activities(ServiceNamespace="sagemaker", ResourceId=resource("scaled"))
        done = [a for a in acts["ScalingActivities"] if a["StatusCode"] != "InProgress"]
        return acts["ScalingActivities"] if len(done) == len(acts["ScalingActivities"]) == 2 else []

    newest, oldest = wait_for(settled, "both activities to finish")
    assert (oldest["Description"], oldest["StatusCode"]) == ("Setting desired instance count to 2.", "Successful")
    assert oldest["Cause"] == f"monitor alarm {put['Alarms'][0]['AlarmName']} in state ALARM triggered policy invocations"
    assert (newest["Description"], newest["StatusCode"]) == ("Setting desired instance count to 1.", "Successful")
    assert newest["Cause"] == f"monitor alarm {put['Alarms'][1]['AlarmName']} in state ALARM triggered policy invocations"
    assert newest["StatusMessage"] == ("Successfully set desired instance count to 1. Change successfully fulfilled "
                                       "by sagemaker.")
    # UpdateEndpointWeightsAndCapacities still works beside the scaler, within Min/Max it leaves it.
    sm.update_endpoint_weights_and_capacities(EndpointName="scaled", DesiredWeightsAndCapacities=[
        {"VariantName": "AllTraffic", "DesiredWeight": 2.0}])
    wait_for(lambda: sm.describe_endpoint(EndpointName="scaled")["EndpointStatus"] == "InService", "the update")
    variant = sm.describe_endpoint(EndpointName="scaled")["ProductionVariants"][0]
    assert (variant["CurrentWeight"], variant["CurrentInstanceCount"]) == (2.0, 1)


def test_validation_errors_name_the_problem(clients: Any, model_data: str) -> None:
    sm, _, aas = clients
    deploy(sm, "checked", model_data)
    register = aas.register_scalable_target
    base = {"ServiceNamespace": "sagemaker", "ScalableDimension": DIMENSION, "MinCapacity": 1, "MaxCapacity": 2}
    assert error(register, **base, ResourceId="endpoint/checked") == (
        "ValidationException", "Unsupported ResourceId 'endpoint/checked' for service namespace sagemaker; expected "
        "endpoint/<endpoint-name>/variant/<variant-name>.")
    assert error(register, **base, ResourceId=resource("nope")) == (
        "ValidationException", "The endpoint nope does not exist.")
    assert error(register, **base, ResourceId=resource("checked", "Other")) == (
        "ValidationException", "The variant Other does not exist in endpoint checked.")
    assert error(register, **{**base, "MinCapacity": 3}, ResourceId=resource("checked")) == (
        "ValidationException", "Minimum capacity cannot be greater than maximum capacity.")
    assert error(register, **{**base, "MinCapacity": 0}, ResourceId=resource("checked")) == (
        "ValidationException", "MinCapacity 0 is allowed only for asynchronous endpoints (AsyncInferenceConfig); "
        "endpoint checked is real-time. Use a MinCapacity of at least 1.")
    code, message = error(register, **{**base, "ServiceNamespace": "nosuch"}, ResourceId=resource("checked"))
    assert code == "ValidationException"
    assert message.startswith("1 validation error detected: Value 'nosuch' at 'serviceNamespace' failed to satisfy "
                              "constraint: Member must satisfy enum value set: [")

    put = aas.put_scaling_policy
    policy = {"PolicyName": "p", "ServiceNamespace": "sagemaker", "ResourceId": resource("checked"),
              "ScalableDimension": DIMENSION, "PolicyType": "TargetTrackingScaling"}
    assert error(put, **policy, TargetTrackingScalingPolicyConfiguration={"TargetValue": 1.0}) == (
        "ObjectNotFoundException", "No scalable target registered for service namespace: sagemaker, resource ID: "
        f"{resource('checked')}, scalable dimension: {DIMENSION}")
    register(**base, ResourceId=resource("checked"))
    cpu = {"TargetValue": 50.0, "CustomizedMetricSpecification": {
        "MetricName": "CPUUtilization", "Namespace": "/aws/sagemaker/Endpoints", "Statistic": "Average",
        "Dimensions": [{"Name": "EndpointName", "Value": "checked"}, {"Name": "VariantName", "Value": "AllTraffic"}]}}
    assert error(put, **policy, TargetTrackingScalingPolicyConfiguration=cpu) == (
        "ValidationException", "dockyard has no metric /aws/sagemaker/Endpoints/CPUUtilization; it keeps "
        "AWS/SageMaker/InvocationsPerInstance (dimensions EndpointName, VariantName) and "
        "AWS/SageMaker/ApproximateBacklogSizePerInstance (dimensions EndpointName).")
    assert error(put, **{**policy, "PolicyType": "StepScaling"}, StepScalingPolicyConfiguration={
        "AdjustmentType": "ChangeInCapacity", "StepAdjustments": [{"ScalingAdjustment": 1}]})[0] == "ValidationException"
    assert error(aas.delete_scaling_policy, PolicyName="none", ServiceNamespace="sagemaker",
                 ResourceId=resource("checked"), ScalableDimension=DIMENSION) == (
        "ObjectNotFoundException", "No scaling policy found for service namespace: sagemaker, resource ID: "
        f"{resource('checked')}, scalable dimension: {DIMENSION}, policy name: none")
    # Nothing of the refused calls was stored; deregistering takes the target away.
    targets = aas.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
    assert [(t["ResourceId"], t["MinCapacity"], t["MaxCapacity"]) for t in targets
            if t["ResourceId"] == resource("checked")] == [(resource("checked"), 1, 2)]
    assert aas.describe_scaling_policies(ServiceNamespace="sagemaker", ResourceId=resource("checked"))[
        "ScalingPolicies"] == []
    aas.deregister_scalable_target(ServiceNamespace="sagemaker", ResourceId=resource("checked"),
                                   ScalableDimension=DIMENSION)
    assert resource("checked") not in {t["ResourceId"] for t in
                                       aas.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]}


def test_an_async_endpoint_scales_from_zero_when_a_request_arrives(clients: Any, model_data: str,
                                                                   tmp_path: Path) -> None:
    sm, rt, aas = clients
    out = tmp_path / "out"
    sm.create_model(ModelName="queued", ExecutionRoleArn="arn:aws:iam::123456789012:role/test",
                    PrimaryContainer={"Image": SKLEARN_URI, "ModelDataUrl": model_data})
    sm.create_endpoint_config(
        EndpointConfigName="queued",
        ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": "queued", "InitialInstanceCount": 1,
                             "InstanceType": "ml.m5.large"}],
        AsyncInferenceConfig={"OutputConfig": {"S3OutputPath": out.as_uri()}})
    sm.create_endpoint(EndpointName="queued", EndpointConfigName="queued")
    sm.get_waiter("endpoint_in_service").wait(EndpointName="queued", WaiterConfig=FAST_WAIT)
    aas.register_scalable_target(ServiceNamespace="sagemaker", ResourceId=resource("queued"),
                                 ScalableDimension=DIMENSION, MinCapacity=0, MaxCapacity=1)
    aas.put_scaling_policy(
        PolicyName="backlog", ServiceNamespace="sagemaker", ResourceId=resource("queued"),
        ScalableDimension=DIMENSION, PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": 0.5, "ScaleOutCooldown": 0, "ScaleInCooldown": 0,
            "CustomizedMetricSpecification": {
                "MetricName": "ApproximateBacklogSizePerInstance", "Namespace": "AWS/SageMaker", "Statistic": "Average",
                "Dimensions": [{"Name": "EndpointName", "Value": "queued"}]}})

    def count() -> int:
        ep = sm.describe_endpoint(EndpointName="queued")
        return ep["ProductionVariants"][0]["CurrentInstanceCount"] if ep["EndpointStatus"] == "InService" else -1

    wait_for(lambda: count() == 0, "the scale-in to zero")
    (tmp_path / "input.csv").write_text(ROW)
    accepted = rt.invoke_endpoint_async(EndpointName="queued", InputLocation=(tmp_path / "input.csv").as_uri(),
                                        ContentType="text/csv")
    wait_for(lambda: count() == 1, "the scale-out from zero")
    answer = Path(accepted["OutputLocation"].removeprefix("file://"))
    wait_for(answer.exists, "the answer")
    assert answer.read_text() == "[0]"
    causes = [a["Cause"] for a in aas.describe_scaling_activities(
        ServiceNamespace="sagemaker", ResourceId=resource("queued"))["ScalingActivities"]]
    assert len(causes) == 2 and "AlarmHigh" in causes[0] and "AlarmLow" in causes[1], causes


def test_the_aws_cli_registers_and_lists_targets(server: Server, clients: Any, model_data: str, tmp_path: Path) -> None:
    sm, _, _ = clients
    deploy(sm, "cli", model_data)
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}
    cli = ["aws", "application-autoscaling", "--endpoint-url", server.url, "--output", "json"]
    subprocess.run([*cli, "register-scalable-target", "--service-namespace", "sagemaker", "--resource-id",
                    resource("cli"), "--scalable-dimension", DIMENSION, "--min-capacity", "1", "--max-capacity", "3"],
                   env=env, check=True, capture_output=True, timeout=120)
    listed = subprocess.run([*cli, "describe-scalable-targets", "--service-namespace", "sagemaker", "--resource-ids",
                             resource("cli")], env=env, check=True, capture_output=True, text=True, timeout=120)
    targets = json.loads(listed.stdout)["ScalableTargets"]
    assert [(t["ResourceId"], t["MinCapacity"], t["MaxCapacity"]) for t in targets] == [(resource("cli"), 1, 3)]


def test_sigv4_uses_the_application_autoscaling_signing_name(tmp_path: Path) -> None:
    srv = Server(tmp_path / "state", tmp_path / "server.log", credentials={"AKIDSCALER": "s3cret"}).start()
    try:
        aas = srv.client("application-autoscaling")
        assert aas.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"] == []
        assert error(srv.client("application-autoscaling", signed_by=("AKIDSCALER", "wrong")).describe_scalable_targets,
                     ServiceNamespace="sagemaker")[0] == "InvalidSignatureException"
    finally:
        srv.stop()


def test_the_readme_section_runs_as_written(model_data: str, tmp_path: Path) -> None:
    srv = Server(tmp_path / "state", tmp_path / "server.log").start()
    try:
        deploy(srv.client("sagemaker"), "iris", model_data)
        [(language, code)] = blocks("Autoscaling")
        assert language == "python"
        # A fresh server: the one target it registered, no activity (1 instance is within 1..4).
        assert run_python(code.replace(DEFAULT_URL, srv.url), tmp_path, dict(os.environ)) == "4\n"
    finally:
        srv.stop()
