"""Server-side validation against botocore's real SageMaker models, with SageMaker's messages."""

from __future__ import annotations

import botocore.session
import pytest

from dockyard.api.constraints import compile_java, java_to_python, matches
from dockyard.api.validation import (
    InputValidationError,
    RequestValidator,
    runtime_validator,
    sagemaker_validator,
)

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/xgb:1.7"
ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
PREFIX = "1 validation error detected: "


@pytest.fixture(scope="module")
def sm() -> RequestValidator:
    return sagemaker_validator()


def error(validator: RequestValidator, op: str, params: dict) -> str:
    with pytest.raises(InputValidationError) as info:
        validator.validate(op, params)
    return info.value.message


def variant(name: str = "AllTraffic", **extra) -> dict:
    return {"VariantName": name, "ModelName": "m", "InitialInstanceCount": 1,
            "InstanceType": "ml.m5.large", **extra}


def endpoint_config(*variants: dict, **extra) -> dict:
    return {"EndpointConfigName": "cfg", "ProductionVariants": list(variants) or [variant()], **extra}


def model(**container) -> dict:
    return {"ModelName": "m", "PrimaryContainer": {"Image": IMAGE, **container}}


# -- valid requests ----------------------------------------------------------------------------


def test_valid_requests_pass(sm):
    sm.validate("CreateModel", {
        "ModelName": "my-model", "ExecutionRoleArn": ROLE, "EnableNetworkIsolation": False,
        "PrimaryContainer": {"Image": IMAGE, "ModelDataUrl": "s3://bucket/model.tar.gz",
                             "Environment": {"SAGEMAKER_PROGRAM": "inference.py"}, "Mode": "SingleModel"},
        "Tags": [{"Key": "team", "Value": "ml"}],
    })
    sm.validate("CreateModel", {
        "ModelName": "pipeline",
        "Containers": [
            {"ContainerHostname": "preproc", "Image": IMAGE, "ModelDataUrl": "https://h/pre.tar.gz"},
            {"ContainerHostname": "xgb", "Image": IMAGE, "Mode": "SingleModel"},
        ],
        "InferenceExecutionConfig": {"Mode": "Direct"},
    })
    sm.validate("CreateEndpointConfig", endpoint_config(
        variant("A", InitialVariantWeight=0.7),
        variant("B", InitialVariantWeight=0.3, InstanceType="ml.g5.xlarge",
                ContainerStartupHealthCheckTimeoutInSeconds=600),
    ))
    sm.validate("ListEndpoints", {
        "NameContains": "my", "StatusEquals": "InService", "SortBy": "CreationTime",
        "SortOrder": "Descending", "MaxResults": 10, "CreationTimeAfter": 1704067200,
        "LastModifiedTimeBefore": "2026-01-01T00:00:00Z",
    })


def test_unknown_members_are_ignored(sm):
    sm.validate("CreateModel", {**model(), "SomeMemberFromANewerSdk": {"x": 1}})


# -- one violation of each kind ----------------------------------------------------------------


def test_bad_pattern(sm):
    assert error(sm, "CreateModel", model() | {"ModelName": "bad_name!"}) == (
        PREFIX + "Value 'bad_name!' at 'modelName' failed to satisfy constraint: Member must satisfy "
        "regular expression pattern: ^[a-zA-Z0-9]([\\-a-zA-Z0-9]*[a-zA-Z0-9])?$"
    )


def test_too_long_name_is_echoed_abbreviated(sm):
    assert error(sm, "CreateModel", model() | {"ModelName": "a" * 300}) == (
        PREFIX + f"Value '{'a' * 200}...' at 'modelName' failed to satisfy constraint: "
        "Member must have length less than or equal to 63"
    )


def test_bad_enum(sm):
    params = {**model(), "InferenceExecutionConfig": {"Mode": "Bogus"}}
    assert error(sm, "CreateModel", params) == (
        PREFIX + "Value 'Bogus' at 'inferenceExecutionConfig.mode' failed to satisfy constraint: "
        "Member must satisfy enum value set: [Serial, Direct]"
    )


def test_unknown_instance_type(sm):
    enum = botocore.session.get_session().get_service_model("sagemaker").shape_for(
        "ProductionVariantInstanceType").enum
    message = error(sm, "CreateEndpointConfig", endpoint_config(variant(InstanceType="ml.bogus")))
    assert message == (
        PREFIX + "Value 'ml.bogus' at 'productionVariants.1.member.instanceType' failed to satisfy "
        f"constraint: Member must satisfy enum value set: [{', '.join(enum)}]"
    )


def test_16_containers(sm):
    params = {"ModelName": "m", "Containers": [{"Image": "img"}] * 16}
    message = error(sm, "CreateModel", params)
    echoed = message.split("Value '", 1)[1].split("' at ", 1)[0]
    assert echoed.startswith("[{Image=img}, {Image=img}, ") and echoed.endswith("...")
    assert len(echoed) <= 203
    assert message == (
        PREFIX + f"Value '{echoed}' at 'containers' failed to satisfy constraint: "
        "Member must have length less than or equal to 15"
    )
    sm.validate("CreateModel", {"ModelName": "m", "Containers": [{"Image": "img"}] * 15})


def test_11_variants(sm):
    variants = [variant(f"v{i}") for i in range(11)]
    message = error(sm, "CreateEndpointConfig", endpoint_config(*variants))
    assert message.startswith(PREFIX + "Value '[{VariantName=v0, ModelName=m, InitialInstanceCount=1, ")
    assert message.endswith(
        "...' at 'productionVariants' failed to satisfy constraint: "
        "Member must have length less than or equal to 10"
    )
    sm.validate("CreateEndpointConfig", endpoint_config(*variants[:10]))


def test_wrong_types(sm):
    assert error(sm, "CreateEndpointConfig", endpoint_config(variant(InitialInstanceCount="2"))) == (
        PREFIX + "Value '2' at 'productionVariants.1.member.initialInstanceCount' failed to satisfy "
        "constraint: Member must be of type integer"
    )
    assert "Member must be of type integer" in error(
        sm, "CreateEndpointConfig", endpoint_config(variant(InitialInstanceCount=True)))
    for weight in ("1", float("nan")):
        assert "initialVariantWeight' failed to satisfy constraint: Member must be of type float" in error(
            sm, "CreateEndpointConfig", endpoint_config(variant(InitialVariantWeight=weight)))
    assert error(sm, "CreateModel", model() | {"ModelName": 5}) == (
        PREFIX + "Value '5' at 'modelName' failed to satisfy constraint: Member must be of type string"
    )
    assert error(sm, "CreateModel", model(Environment=["A=1"])) == (
        PREFIX + "Value '[A=1]' at 'primaryContainer.environment' failed to satisfy constraint: "
        "Member must be of type map"
    )
    assert "'creationTimeAfter' failed to satisfy constraint: Member must be of type timestamp" in error(
        sm, "ListEndpoints", {"CreationTimeAfter": "yesterday"})


def test_missing_required(sm):
    assert error(sm, "CreateModel", {"PrimaryContainer": {"Image": IMAGE}}) == (
        PREFIX + "Value null at 'modelName' failed to satisfy constraint: Member must not be null"
    )
    assert error(sm, "CreateModel", {**model(), "InferenceExecutionConfig": {"Mode": None}}) == (
        PREFIX + "Value null at 'inferenceExecutionConfig.mode' failed to satisfy constraint: "
        "Member must not be null"
    )


def test_environment_key_pattern(sm):
    assert error(sm, "CreateModel", model(Environment={"OK_KEY": "1", "1bad": "v"})) == (
        PREFIX + "Value '{OK_KEY=1, 1bad=v}' at 'primaryContainer.environment' failed to satisfy "
        "constraint: Map keys must satisfy constraint: [Member must have length less than or equal "
        "to 1024, Member must have length greater than or equal to 0, Member must satisfy regular "
        "expression pattern: ^[a-zA-Z_][a-zA-Z0-9_]*$]"
    )


def test_environment_over_100_entries(sm):
    env = {f"K{i}": "v" for i in range(101)}
    message = error(sm, "CreateModel", model(Environment=env))
    assert message.startswith(PREFIX + "Value '{K0=v, K1=v, ")
    assert message.endswith(
        "...' at 'primaryContainer.environment' failed to satisfy constraint: "
        "Member must have length less than or equal to 100"
    )
    env.pop("K100")
    sm.validate("CreateModel", model(Environment=env))


def test_negative_variant_weight(sm):
    for weight, shown in ((-1, "-1.0"), (-0.5, "-0.5")):
        assert error(sm, "CreateEndpointConfig", endpoint_config(variant(InitialVariantWeight=weight))) == (
            PREFIX + f"Value '{shown}' at 'productionVariants.1.member.initialVariantWeight' failed to "
            "satisfy constraint: Member must have value greater than or equal to 0"
        )
    sm.validate("CreateEndpointConfig", endpoint_config(variant(InitialVariantWeight=0)))


def test_more_than_50_tags(sm):
    tags = [{"Key": f"k{i}", "Value": "v"} for i in range(51)]
    assert error(sm, "CreateModel", {**model(), "Tags": tags}).endswith(
        "...' at 'tags' failed to satisfy constraint: Member must have length less than or equal to 50"
    )
    sm.validate("CreateModel", {**model(), "Tags": tags[:50]})


def test_tags_with_unicode_letters(sm):
    # Tag patterns use Java's \p{L}/\p{Z}/\p{N} classes: letters of every script are fine.
    sm.validate("CreateModel", {**model(), "Tags": [{"Key": "Abteilung-ä", "Value": "Müller 日本 ñ 1:2"}]})
    assert error(sm, "CreateModel", {**model(), "Tags": [{"Key": "k", "Value": "a!b"}]}) == (
        PREFIX + "Value 'a!b' at 'tags.1.member.value' failed to satisfy constraint: Member must "
        "satisfy regular expression pattern: ^([\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*)$"
    )


def test_several_violations_are_counted_and_all_listed(sm):
    params = {"ModelName": "bad_name!", "PrimaryContainer": {"Image": IMAGE, "Mode": "Bogus"},
              "Tags": [{"Key": "k"}]}
    assert error(sm, "CreateModel", params) == (
        "3 validation errors detected: "
        "Value 'bad_name!' at 'modelName' failed to satisfy constraint: Member must satisfy regular "
        "expression pattern: ^[a-zA-Z0-9]([\\-a-zA-Z0-9]*[a-zA-Z0-9])?$; "
        "Value 'Bogus' at 'primaryContainer.mode' failed to satisfy constraint: Member must satisfy "
        "enum value set: [SingleModel, MultiModel]; "
        "Value null at 'tags.1.member.value' failed to satisfy constraint: Member must not be null"
    )


# -- dockyard's relaxation of model-data locations ---------------------------------------------


@pytest.mark.parametrize("url", ["file:///tmp/m.tar.gz", "/tmp/m.tar.gz", "http://127.0.0.1:9/m.tar.gz",
                                 "s3://bucket/m.tar.gz", "https://host/m.tar.gz"])
def test_local_model_data_accepted(sm, url):
    sm.validate("CreateModel", model(ModelDataUrl=url))
    sm.validate("CreateModel", {"ModelName": "m", "Containers": [{"Image": IMAGE, "ModelDataUrl": url}]})
    source = {"S3DataSource": {"S3Uri": url, "S3DataType": "S3Prefix", "CompressionType": "None"}}
    sm.validate("CreateModel", model(ModelDataSource=source))


def test_other_model_data_schemes_rejected(sm):
    assert error(sm, "CreateModel", model(ModelDataUrl="ftp://x")) == (
        PREFIX + "Value 'ftp://x' at 'primaryContainer.modelDataUrl' failed to satisfy constraint: "
        "Member must satisfy regular expression pattern: ^((https?|s3)://([^/]+)/?(.*)|file://.+|/.+)$"
    )
    source = {"S3DataSource": {"S3Uri": "s3://b/m/", "S3DataType": "S3Prefix", "CompressionType": "None",
                               "ManifestS3Uri": "/tmp/manifest"}}  # only S3Uri is relaxed
    assert "at 'primaryContainer.modelDataSource.s3DataSource.manifestS3Uri'" in error(
        sm, "CreateModel", model(ModelDataSource=source))
    assert "length less than or equal to 1024" in error(
        sm, "CreateModel", model(ModelDataUrl="/" + "x" * 1024))


def test_plain_model_keeps_botocore_pattern():
    strict = RequestValidator("sagemaker")
    assert "^(https|s3)://([^/]+)/?(.*)$" in error(strict, "CreateModel", model(ModelDataUrl="/tmp/m.tar.gz"))


def test_override_must_name_a_real_member():
    with pytest.raises(ValueError):
        RequestValidator("sagemaker", {("ContainerDefinition", "ModelDataUri"): ".*"})
    with pytest.raises(ValueError):
        RequestValidator("sagemaker", {("NoSuchShape", "S3Uri"): ".*"})


# -- sensitive values --------------------------------------------------------------------------


def test_sensitive_values_are_not_echoed(sm):
    oidc = {"ClientId": "id", "ClientSecret": "sécret-ä", "Issuer": "https://i",
            "AuthorizationEndpoint": "https://a", "TokenEndpoint": "https://t",
            "UserInfoEndpoint": "https://u", "LogoutEndpoint": "https://l", "JwksUri": "https://j"}
    message = error(sm, "CreateWorkforce", {"WorkforceName": "wf", "OidcConfig": oidc})
    assert message == (
        PREFIX + "Value at 'oidcConfig.clientSecret' failed to satisfy constraint: "
        "Member must satisfy regular expression pattern: ^[ -~]+$"
    )
    # A structure holding a sensitive member is not echoed either.
    message = error(sm, "CreateWorkforce", {"WorkforceName": "wf", "OidcConfig": [oidc]})
    assert message.startswith(PREFIX + "Value at 'oidcConfig' failed") and "sécret" not in message


# -- the runtime service -----------------------------------------------------------------------


def test_runtime_invoke_endpoint():
    rt = runtime_validator()
    rt.validate("InvokeEndpoint", {"EndpointName": "my-endpoint", "Body": b"1,2",
                                   "ContentType": "text/csv", "CustomAttributes": "trace=1",
                                   "TargetContainerHostname": "xgb"})
    assert error(rt, "InvokeEndpoint", {"EndpointName": "bad_name", "Body": b""}) == (
        PREFIX + "Value 'bad_name' at 'endpointName' failed to satisfy constraint: "
        "Member must satisfy regular expression pattern: ^[a-zA-Z0-9](-*[a-zA-Z0-9])*"
    )
    secret = "token=" + "s" * 1100
    message = error(rt, "InvokeEndpoint", {"EndpointName": "e", "Body": b"", "CustomAttributes": secret})
    assert message == (
        PREFIX + "Value at 'customAttributes' failed to satisfy constraint: "
        "Member must have length less than or equal to 1024"
    )
    assert "Member must have length less than or equal to 6291456" in error(
        rt, "InvokeEndpoint", {"EndpointName": "e", "Body": bytes(6291457)})
    # \p{Print} is Java's printable ASCII, not every printable character.
    params = {"EndpointName": "e", "Body": b"", "InferenceId": "id-é"}
    assert "at 'inferenceId'" in error(rt, "InvokeEndpoint", params)


# -- the validator object ----------------------------------------------------------------------


def test_operations(sm):
    assert sm.has_operation("CreateModel") and not sm.has_operation("CreateBogus")
    assert "InvokeEndpoint" in runtime_validator().operation_names()
    assert len(sm.operation_names()) > 300
    assert sagemaker_validator() is sm
    with pytest.raises(KeyError):
        sm.validate("CreateBogus", {})
    with pytest.raises(InputValidationError):
        sm.validate("CreateModel", ["not", "an", "object"])


def test_java_patterns():
    assert java_to_python(r"\A\S[\p{Print}]*\z") == r"\A[^\x20\t\n\x0B\f\r][\x20-\x7E]*\Z"
    astral = compile_java(r"[\u0020-\uD7FF\uE000-\uFFFD\uD800\uDC00-\uDBFF\uDFFF\t]*")
    assert astral is not None and matches(astral, "ok 😀\t") and not matches(astral, "\x01")
    assert not matches(compile_java("a.b"), "a\rb")  # Java's `.` stops at every line terminator
    assert compile_java("[z-a]") is None  # does not compile: the check is skipped, never fatal
