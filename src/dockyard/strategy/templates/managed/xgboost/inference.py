"""Serving code for the managed XGBoost image (SageMaker inference toolkit handlers).

The image loads xgboost-model and decodes CSV by itself; this only names the predicted classes
(the booster answers one probability per class).
"""

import json

import numpy as np

SPECIES = ["setosa", "versicolor", "virginica"]


def output_fn(prediction, accept):
    labels = np.argmax(np.asarray(prediction), axis=1)
    return json.dumps({"species": [SPECIES[int(p)] for p in labels]}), "application/json"
