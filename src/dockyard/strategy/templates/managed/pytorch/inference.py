"""Serving code for the managed PyTorch image (SageMaker inference toolkit handlers).

The image loads model.pt (TorchScript) and decodes CSV into a tensor by itself; this only names
the predicted classes (the network answers one score per class).
"""

import json

SPECIES = ["setosa", "versicolor", "virginica"]


def output_fn(prediction, accept):
    labels = prediction.argmax(dim=1).tolist()
    return json.dumps({"species": [SPECIES[int(p)] for p in labels]}), "application/json"
