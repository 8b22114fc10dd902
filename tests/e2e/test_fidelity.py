"""SageMaker behaviour another project's test suite relies on: a serverless variant's memory is one
of the documented 1 GB steps, UpdateEndpointWeightsAndCapacities names each variant once, and the
tagging operations find a resource by its ARN in any letter case."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from e2e.deploy import create_endpoint, delete_all
from e2e.models import SKLEARN_URI, iris_classifier, package


def error(call, **kwargs) -> tuple[str, str]:
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    return info.value.response["Error"]["Code"], info.value.response["Error"]["Message"]


@pytest.fixture
def model(sm):
    sm.create_model(ModelName="fidelity", PrimaryContainer={"Image": SKLEARN_URI})
    yield "fidelity"
    sm.delete_model(ModelName="fidelity")


@pytest.mark.parametrize("memory", [1536, 2000, 5121])
def test_serverless_memory_off_the_1_gb_steps_is_refused(sm, model, memory):
    code, message = error(sm.create_endpoint_config, EndpointConfigName="serverless", ProductionVariants=[{
        "VariantName": "v", "ModelName": model, "ServerlessConfig": {"MemorySizeInMB": memory, "MaxConcurrency": 1}}])
    assert code == "ValidationException"
    assert message == (f"Value '{memory}' at 'ServerlessConfig.MemorySizeInMB' of production variant v failed to "
                       "satisfy constraint: Member must satisfy enum value set: [1024, 2048, 3072, 4096, 5120, 6144]")
    assert "serverless" not in [c["EndpointConfigName"] for c in sm.list_endpoint_configs()["EndpointConfigs"]]


def test_serverless_memory_on_a_step_is_accepted(sm, model):
    sm.create_endpoint_config(EndpointConfigName="serverless", ProductionVariants=[{
        "VariantName": "v", "ModelName": model, "ServerlessConfig": {"MemorySizeInMB": 3072, "MaxConcurrency": 1}}])
    desc = sm.describe_endpoint_config(EndpointConfigName="serverless")
    assert desc["ProductionVariants"][0]["ServerlessConfig"] == {"MemorySizeInMB": 3072, "MaxConcurrency": 1}
    sm.delete_endpoint_config(EndpointConfigName="serverless")


def test_a_variant_named_twice_in_update_weights_is_refused(sm, tmp_path):
    create_endpoint(sm, "twice", {"PrimaryContainer": {"Image": SKLEARN_URI,
                                                       "ModelDataUrl": package(tmp_path, iris_classifier()).as_uri()}})
    code, message = error(sm.update_endpoint_weights_and_capacities, EndpointName="twice", DesiredWeightsAndCapacities=[
        {"VariantName": "AllTraffic", "DesiredWeight": 0.5}, {"VariantName": "AllTraffic", "DesiredWeight": 2}])
    assert (code, message) == (
        "ValidationException", "The variant AllTraffic is named more than once in DesiredWeightsAndCapacities.")
    desc = sm.describe_endpoint(EndpointName="twice")
    assert desc["EndpointStatus"] == "InService"
    assert desc["ProductionVariants"][0]["CurrentWeight"] == 1.0
    delete_all(sm, "twice")


def test_tags_find_a_resource_by_its_arn_in_any_case(sm, model):
    arn = sm.describe_model(ModelName=model)["ModelArn"]
    prefix, name = arn.split("/")
    shouted = f"{prefix}/{name.upper()}"  # botocore's pattern wants the arn:aws:sagemaker prefix in lower case
    sm.add_tags(ResourceArn=shouted, Tags=[{"Key": "team", "Value": "ml"}])
    assert sm.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "team", "Value": "ml"}]
    assert sm.list_tags(ResourceArn=shouted)["Tags"] == [{"Key": "team", "Value": "ml"}]
    sm.delete_tags(ResourceArn=f"{prefix}/Fidelity", TagKeys=["team"])
    assert sm.list_tags(ResourceArn=arn)["Tags"] == []
    missing = f"{prefix}/Nothing"
    assert error(sm.list_tags, ResourceArn=missing) == ("ValidationException", f'Could not find resource "{missing}".')
