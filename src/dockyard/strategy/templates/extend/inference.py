"""Serving code that needs a library beyond the managed image: threadpoolctl (code/requirements.txt)."""

import json
import os

import joblib
import numpy as np
from threadpoolctl import threadpool_limits

SPECIES = ["setosa", "versicolor", "virginica"]


def model_fn(model_dir):
    # One BLAS thread per worker, so that several workers on one instance don't oversubscribe its cores.
    threadpool_limits(limits=1)
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
