"""Serving code for the managed TensorFlow image (the TensorFlow Serving container's handlers).

input_handler turns CSV rows into a TensorFlow Serving request; output_handler names the
predicted classes (the model answers one probability per class).
"""

import json

SPECIES = ["setosa", "versicolor", "virginica"]


def input_handler(data, context):
    if context.request_content_type != "text/csv":
        raise ValueError(f"unsupported content type {context.request_content_type}: send text/csv")
    rows = [[float(v) for v in line.split(",")] for line in data.read().decode().splitlines() if line.strip()]
    return json.dumps({"instances": rows})


def output_handler(response, context):
    if response.status_code != 200:
        raise ValueError(response.content.decode())
    labels = [max(range(3), key=p.__getitem__) for p in response.json()["predictions"]]
    return json.dumps({"species": [SPECIES[p] for p in labels]}), "application/json"
