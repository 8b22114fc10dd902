"""DOCKYARD_RESTRICTED_UNPICKLE: poisoned model files are refused, real scikit-learn models load."""

from __future__ import annotations

import json
import os
import pickle
import signal

import joblib
import numpy as np
import pytest

from dockyard.serving.safe_unpickle import ForbiddenGlobal, restricted_load


class RunsCommand:
    """Unpickling this runs a shell command: the classic poisoned pickle."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class LoadsAnotherPickle:
    """Reaches an unrestricted loader through a function inside an allowed package."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (np.load, (self.path,), None)


@pytest.fixture
def marker(tmp_path):
    path = tmp_path / "pwned"
    yield path
    assert not path.exists(), "the poisoned pickle ran its command"


def test_refuses_a_reduce_to_os_system(tmp_path, marker):
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(RunsCommand(marker)))
    with pytest.raises(ForbiddenGlobal, match=rf"forbidden global {os.system.__module__}\.system"):
        restricted_load(path)


def test_refuses_functions_even_in_allowed_packages(tmp_path, marker):
    path = tmp_path / "model.joblib"
    joblib.dump(LoadsAnotherPickle(tmp_path / "other.npy"), path)
    with pytest.raises(ForbiddenGlobal, match=r"forbidden global numpy\..*load"):
        restricted_load(path)


def test_refuses_a_poisoned_object_array_inside_a_joblib_file(tmp_path, marker):
    path = tmp_path / "model.joblib"
    joblib.dump({"coef": np.array([RunsCommand(marker)], dtype=object)}, path)
    with pytest.raises(ForbiddenGlobal, match="system"):
        restricted_load(path)


def test_refuses_the_pre_0_10_joblib_format(tmp_path):
    path = tmp_path / "model.joblib"
    path.write_bytes(b"ZF0x00000000000000a0" + b"x" * 16)
    with pytest.raises(ForbiddenGlobal, match="joblib < 0.10"):
        restricted_load(path)


@pytest.mark.parametrize("save", ["joblib", "pickle"])
def test_loads_a_real_pipeline(tmp_path, save):
    from sklearn.compose import make_column_transformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    # Strings in an object array: joblib stores them as a nested pickle inside the file.
    X = np.array([["red", 1.0], ["blue", 2.0], ["green", 3.0], ["red", 4.0]] * 5, dtype=object)
    y = np.array(["warm", "cold", "cold", "warm"] * 5)
    model = make_pipeline(
        make_column_transformer((OneHotEncoder(), [0]), remainder="passthrough"),
        RandomForestClassifier(n_estimators=5, random_state=np.random.RandomState(0)),
    ).fit(X, y)
    path = tmp_path / f"model.{'joblib' if save == 'joblib' else 'pkl'}"
    if save == "joblib":
        joblib.dump(model, path)
    else:
        path.write_bytes(pickle.dumps(model))
    loaded = restricted_load(path)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_server_refuses_a_poisoned_model_at_start(run_failing, tmp_path, marker):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "model.pkl").write_bytes(pickle.dumps(RunsCommand(marker)))
    result = run_failing(model_dir, DOCKYARD_RESTRICTED_UNPICKLE="true")
    assert result.returncode == 1
    last = result.stderr.rstrip().splitlines()[-1]
    assert last.startswith(f"dockyard.serving: model_fn failed for {model_dir}: ForbiddenGlobal: ")
    assert f"forbidden global {os.system.__module__}.system" in last


def test_server_serves_a_normal_model_restricted(launch_server, iris, tmp_path):
    server = launch_server(iris.model_dir, tmp_path, DOCKYARD_RESTRICTED_UNPICKLE="true")
    try:
        response = server.post(json.dumps(iris.X[:20].tolist()))
        assert response.json() == iris.model.predict(iris.X[:20]).tolist()
    finally:
        server.stop(signal.SIGKILL)
