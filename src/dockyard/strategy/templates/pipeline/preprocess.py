"""The first container of the pipeline: scale the features, hand them on as text/csv."""

import io
import os

import joblib
import numpy as np


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))


def predict_fn(data, model):
    return model.transform(np.asarray(data, dtype=float))


def output_fn(prediction, accept):
    # The next container gets this body and Content-Type, whatever the client accepts.
    buffer = io.StringIO()
    np.savetxt(buffer, prediction, delimiter=",", fmt="%.17g")
    return buffer.getvalue(), "text/csv"
