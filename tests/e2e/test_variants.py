"""Production variants: traffic split by weight, TargetVariant, UpdateEndpointWeightsAndCapacities
and blue/green UpdateEndpoint (with rollback when the new fleet cannot start)."""

from __future__ import annotations

import collections
import json

import pytest
from botocore.exceptions import ClientError
from sklearn.dummy import DummyClassifier

from e2e.deploy import FAST_WAIT, wait_settled
from e2e.models import SKLEARN_URI, iris, package


def constant_model(tmp, label: int, name: str) -> str:
    x, _ = iris()
    model = DummyClassifier(strategy="constant", constant=label).fit(x, [label] * len(x))
    return package(tmp, model, name=name).as_uri()


@pytest.fixture(scope="module")
def ab(sm, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("variants")
    for label, name in ((1, "variant-one"), (2, "variant-two"), (0, "variant-zero")):
        sm.create_model(ModelName=name, PrimaryContainer={"Image": SKLEARN_URI, "ModelDataUrl": constant_model(tmp, label, name)})
    sm.create_endpoint_config(EndpointConfigName="ab-config", ProductionVariants=[
        {"VariantName": "One", "ModelName": "variant-one", "InitialInstanceCount": 1, "InstanceType": "ml.m5.large", "InitialVariantWeight": 1},
        {"VariantName": "Two", "ModelName": "variant-two", "InitialInstanceCount": 2, "InstanceType": "ml.m5.large", "InitialVariantWeight": 1},
    ])
    sm.create_endpoint(EndpointName="ab", EndpointConfigName="ab-config")
    sm.get_waiter("endpoint_in_service").wait(EndpointName="ab", WaiterConfig=FAST_WAIT)
    return tmp


def served(rt, n: int = 60, **kwargs) -> collections.Counter:
    seen = collections.Counter()
    for _ in range(n):
        resp = rt.invoke_endpoint(EndpointName="ab", ContentType="text/csv", Body="5.1,3.5,1.4,0.2", **kwargs)
        label = json.loads(resp["Body"].read())[0]
        seen[(resp["InvokedProductionVariant"], label)] += 1
    return seen


def test_traffic_is_split_by_weight_and_target_variant_overrides(ab, rt, sm):
    seen = served(rt)
    assert set(seen) == {("One", 1), ("Two", 2)}  # each variant answers with its own model
    assert served(rt, 10, TargetVariant="Two") == {("Two", 2): 10}
    desc = sm.describe_endpoint(EndpointName="ab")
    counts = {v["VariantName"]: v["CurrentInstanceCount"] for v in desc["ProductionVariants"]}
    assert counts == {"One": 1, "Two": 2}


def test_update_weights_moves_all_traffic(ab, rt, sm):
    sm.update_endpoint_weights_and_capacities(EndpointName="ab", DesiredWeightsAndCapacities=[
        {"VariantName": "Two", "DesiredWeight": 0}])
    sm.get_waiter("endpoint_in_service").wait(EndpointName="ab", WaiterConfig=FAST_WAIT)
    assert served(rt, 30) == {("One", 1): 30}
    weights = {v["VariantName"]: v["CurrentWeight"] for v in sm.describe_endpoint(EndpointName="ab")["ProductionVariants"]}
    assert weights == {"One": 1.0, "Two": 0.0}
    with pytest.raises(ClientError) as info:
        sm.update_endpoint_weights_and_capacities(EndpointName="ab", DesiredWeightsAndCapacities=[
            {"VariantName": "Nope", "DesiredWeight": 1}])
    assert "The variant Nope does not exist" in info.value.response["Error"]["Message"]


def test_update_endpoint_is_blue_green(ab, rt, sm):
    sm.create_endpoint_config(EndpointConfigName="ab-config-2", ProductionVariants=[
        {"VariantName": "Zero", "ModelName": "variant-zero", "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}])
    sm.update_endpoint(EndpointName="ab", EndpointConfigName="ab-config-2")
    desc = sm.describe_endpoint(EndpointName="ab")
    assert desc["EndpointStatus"] == "Updating"
    assert desc["PendingDeploymentSummary"]["EndpointConfigName"] == "ab-config-2"
    with pytest.raises(ClientError) as info:
        sm.update_endpoint(EndpointName="ab", EndpointConfigName="ab-config")
    assert info.value.response["Error"]["Message"].startswith("Cannot update in-progress endpoint")
    # The old fleet keeps answering while the new one starts.
    assert set(served(rt, 5)) <= {("One", 1), ("Zero", 0)}
    sm.get_waiter("endpoint_in_service").wait(EndpointName="ab", WaiterConfig=FAST_WAIT)
    assert served(rt, 10) == {("Zero", 0): 10}
    desc = sm.describe_endpoint(EndpointName="ab")
    assert desc["EndpointConfigName"] == "ab-config-2"
    assert "PendingDeploymentSummary" not in desc


def test_failed_update_rolls_back(ab, rt, sm):
    # Whatever the other tests of this module did to "ab" (it runs alone, too): it must be back as it was.
    before = sm.describe_endpoint(EndpointName="ab")
    serving = {v["VariantName"] for v in before["ProductionVariants"] if v["CurrentWeight"] > 0}
    sm.create_model(ModelName="variant-broken", PrimaryContainer={"Image": "registry.example/not-managed:1"})
    sm.create_endpoint_config(EndpointConfigName="ab-broken", ProductionVariants=[
        {"VariantName": "Broken", "ModelName": "variant-broken", "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}])
    sm.update_endpoint(EndpointName="ab", EndpointConfigName="ab-broken")
    desc = wait_settled(sm, "ab")
    assert desc["EndpointStatus"] == "InService"
    assert desc["EndpointConfigName"] == before["EndpointConfigName"]
    assert desc["FailureReason"].startswith("Update failed: Image registry.example/not-managed:1 cannot run")
    assert {variant for variant, _ in served(rt, 5)} <= serving
