"""Serving code for the managed scikit-learn image (SageMaker inference toolkit handlers).

SageMaker's scikit-learn container needs ``model_fn``; the other handlers are optional and shown to
name the predicted classes.
"""

import json
import os

import joblib
import numpy as np

SPECIES = ["setosa", "versicolor", "virginica"]


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))


def predict_fn(data, model):
    return model.predict(np.asarray(data, dtype=float))


class NotAcceptable(Exception):
    # The inference toolkit (and dockyard) answer an exception with its status_code.
    status_code = 406


def output_fn(prediction, accept):
    if accept != "application/json":
        raise NotAcceptable(f"cannot produce {accept}: accept application/json")
    return json.dumps({"species": [SPECIES[int(p)] for p in prediction]}), "application/json"
