"""Streaming tokens from a small text generator with InvokeEndpointWithResponseStream.

The generator is a word-level Markov chain trained here on the descriptions bundled with
scikit-learn's datasets (no downloads, no weights). It is deployed on the managed scikit-learn
image with an ``inference.py`` whose ``predict_fn`` yields tokens; each token reaches the client
as its own ``PayloadPart`` event as soon as it is produced. InvokeEndpoint on the same endpoint
answers the whole text at once.

    dockyard serve &
    python examples/streaming/stream_tokens.py
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections import Counter, defaultdict
from itertools import pairwise
from pathlib import Path

import boto3
import inference  # this directory's inference.py: the code the endpoint runs
from sklearn import datasets

from dockyard.artifacts.package import make_model_tarball

URL = os.environ.get("DOCKYARD_URL", "http://127.0.0.1:8780")
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
NAME = "markov-tokens"
REQUEST = {"prompt": "The", "max_tokens": 30, "seed": 7}


def train() -> dict[str, list[list]]:
    """word → [followers, counts] over the datasets' descriptions."""
    text = " ".join(loader().DESCR for loader in (datasets.load_iris, datasets.load_wine, datasets.load_diabetes))
    words = re.findall(r"[A-Za-z][A-Za-z'-]*[.,]?", text)
    pairs: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for word, following in pairwise(words):
        pairs[word][following] += 1
    return {word: [list(c), list(c.values())] for word, c in pairs.items()}


def package(tmp: Path, chain: dict[str, list[list]]) -> str:
    src = tmp / "model"
    (src / "code").mkdir(parents=True)
    (src / "chain.json").write_text(json.dumps(chain))
    shutil.copy(Path(inference.__file__), src / "code" / "inference.py")
    return make_model_tarball(src, tmp / "model.tar.gz").as_uri()


def main() -> None:
    kw = {"endpoint_url": URL, "region_name": "us-east-1", "aws_access_key_id": "x", "aws_secret_access_key": "x"}
    sm, runtime = boto3.client("sagemaker", **kw), boto3.client("sagemaker-runtime", **kw)
    chain = train()
    with tempfile.TemporaryDirectory() as tmp:
        sm.create_model(ModelName=NAME, PrimaryContainer={"Image": IMAGE, "ModelDataUrl": package(Path(tmp), chain)},
                        ExecutionRoleArn="arn:aws:iam::123456789012:role/example")
        sm.create_endpoint_config(EndpointConfigName=NAME, ProductionVariants=[{
            "VariantName": "AllTraffic", "ModelName": NAME, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}])
        sm.create_endpoint(EndpointName=NAME, EndpointConfigName=NAME)
        sm.get_waiter("endpoint_in_service").wait(EndpointName=NAME, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    try:
        resp = runtime.invoke_endpoint_with_response_stream(
            EndpointName=NAME, ContentType="application/json", Body=json.dumps(REQUEST))
        parts = []
        print("streamed:", end="", flush=True)
        for event in resp["Body"]:
            token = event["PayloadPart"]["Bytes"].decode()
            parts.append(token)
            print(token, end="", flush=True)  # each token as it arrives
        print()
        print("parts:", len(parts))
        whole = runtime.invoke_endpoint(EndpointName=NAME, ContentType="application/json", Body=json.dumps(REQUEST))
        print("invoke_endpoint:" + whole["Body"].read().decode())
        print("local:" + "".join(inference.predict_fn(REQUEST, chain)))
    finally:
        sm.delete_endpoint(EndpointName=NAME)
        sm.get_waiter("endpoint_deleted").wait(EndpointName=NAME, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        sm.delete_endpoint_config(EndpointConfigName=NAME)
        sm.delete_model(ModelName=NAME)


if __name__ == "__main__":
    main()
