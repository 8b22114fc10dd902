"""Control-plane errors as boto3 and the SageMaker SDK expect them: code, message, and no state lost."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from e2e.models import SKLEARN_URI

ARN = "arn:aws:sagemaker:us-east-1:123456789012"


def error(call, **kwargs) -> tuple[str, str]:
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    err = info.value.response["Error"]
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    return err["Code"], err["Message"]


def test_missing_resources_say_could_not_find(sm):
    assert error(sm.describe_model, ModelName="nope") == ("ValidationException", f'Could not find model "{ARN}:model/nope".')
    assert error(sm.describe_endpoint_config, EndpointConfigName="nope") == (
        "ValidationException", f'Could not find endpoint configuration "{ARN}:endpoint-config/nope".')
    assert error(sm.describe_endpoint, EndpointName="nope") == (
        "ValidationException", f'Could not find endpoint "{ARN}:endpoint/nope".')
    assert error(sm.delete_model, ModelName="nope")[1].startswith("Could not find model")
    assert error(sm.delete_endpoint, EndpointName="nope")[1].startswith("Could not find endpoint")


def test_duplicates_say_cannot_create_already_existing_and_keep_the_original(sm):
    sm.create_model(ModelName="dup", PrimaryContainer={"Image": SKLEARN_URI, "Environment": {"A": "1"}})
    code, message = error(sm.create_model, ModelName="dup", PrimaryContainer={"Image": "other:1"})
    assert (code, message) == ("ValidationException", f'Cannot create already existing model "{ARN}:model/dup".')
    # Case-insensitive, as in SageMaker.
    assert error(sm.create_model, ModelName="DUP", PrimaryContainer={"Image": "other:1"})[0] == "ValidationException"
    assert sm.describe_model(ModelName="dup")["PrimaryContainer"] == {"Image": SKLEARN_URI, "Environment": {"A": "1"}}
    sm.delete_model(ModelName="dup")


def test_shape_violations_are_reported_coral_style(sm):
    code, message = error(sm.create_model, ModelName="bad_name!", PrimaryContainer={"Image": SKLEARN_URI})
    assert code == "ValidationException"
    assert message.startswith("1 validation error detected: Value 'bad_name!' at 'modelName' failed to satisfy constraint")
    code, message = error(sm.create_model, ModelName="m" * 64, PrimaryContainer={"Image": SKLEARN_URI})
    assert "Member must have length less than or equal to 63" in message
    code, message = error(
        sm.create_model, ModelName="bogus-mode", Containers=[{"Image": SKLEARN_URI}],
        InferenceExecutionConfig={"Mode": "Bogus"},
    )
    assert "enum value set: [Serial, Direct]" in message
    code, message = error(
        sm.create_endpoint_config, EndpointConfigName="bad-type",
        ProductionVariants=[{"VariantName": "v", "ModelName": "m", "InitialInstanceCount": 1, "InstanceType": "ml.bogus"}],
    )
    assert "productionVariants.1.member.instanceType" in message
    assert error(sm.describe_model, ModelName="bad-type")[1].startswith("Could not find")


def test_model_consistency_rules(sm):
    both = error(sm.create_model, ModelName="both", PrimaryContainer={"Image": SKLEARN_URI},
                 Containers=[{"Image": SKLEARN_URI}])
    assert both == ("ValidationException", "Exactly one of PrimaryContainer or Containers must be specified (both were given).")
    assert "neither" in error(sm.create_model, ModelName="neither")[1]
    assert "primaryContainer.modelDataUrl" in error(sm.create_model, ModelName="ftp",
                                    PrimaryContainer={"Image": SKLEARN_URI, "ModelDataUrl": "ftp://x/m.tar.gz"})[1]


def test_endpoint_config_needs_existing_models(sm):
    code, message = error(
        sm.create_endpoint_config, EndpointConfigName="orphan",
        ProductionVariants=[{"VariantName": "v", "ModelName": "ghost", "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}],
    )
    assert (code, message) == ("ValidationException", f'Could not find model "{ARN}:model/ghost".')
    assert error(sm.create_endpoint, EndpointName="orphan", EndpointConfigName="orphan")[1] == (
        f'Could not find endpoint configuration "{ARN}:endpoint-config/orphan".')


def test_unimplemented_operation_names_itself(sm):
    code, message = error(sm.list_training_jobs)
    assert code == "UnknownOperationException"
    assert "ListTrainingJobs" in message


def test_update_of_an_unknown_endpoint_is_not_found(sm):
    assert error(sm.update_endpoint, EndpointName="ghost", EndpointConfigName="x")[1].startswith("Could not find endpoint")
