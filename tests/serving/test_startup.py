"""Start-up failures: non-zero exit, and the reason as the last line of the output."""

from __future__ import annotations

import socket
import subprocess
import sys


def last_line(result: subprocess.CompletedProcess) -> str:
    return result.stderr.rstrip().splitlines()[-1]


def test_missing_model_exits_with_the_reason_last(run_failing, tmp_path):
    result = run_failing(tmp_path)
    assert result.returncode == 1
    assert last_line(result) == (
        f"dockyard.serving: model_fn failed for {tmp_path}: "
        f"FileNotFoundError: no model.joblib or model.pkl in {tmp_path}"
    )
    assert "Traceback (most recent call last)" in result.stderr


def test_transform_fn_with_predict_fn_fails_at_start(run_failing, tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    (code / "inference.py").write_text(
        "def transform_fn(model, data, content_type, accept):\n    return data\n\n"
        "def predict_fn(data, model):\n    return data\n"
    )
    result = run_failing(tmp_path)
    assert result.returncode == 1
    assert "defines transform_fn and predict_fn" in last_line(result)


def test_explicit_program_that_does_not_exist(run_failing, tmp_path):
    submit = tmp_path / "src"
    submit.mkdir()
    result = run_failing(
        tmp_path, SAGEMAKER_PROGRAM="serve_me.py", SAGEMAKER_SUBMIT_DIRECTORY=str(submit)
    )
    assert result.returncode == 1
    assert last_line(result) == (
        f"dockyard.serving: SAGEMAKER_PROGRAM=serve_me.py: no such file in "
        f"{submit} (SAGEMAKER_SUBMIT_DIRECTORY), {tmp_path / 'code'}"
    )


def test_user_module_that_does_not_import(run_failing, tmp_path):
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "inference.py").write_text("import no_such_module_anywhere\n")
    result = run_failing(tmp_path)
    assert result.returncode == 1
    assert last_line(result) == (
        f"dockyard.serving: could not import {tmp_path / 'code' / 'inference.py'}: "
        "ModuleNotFoundError: No module named 'no_such_module_anywhere'"
    )


def test_unknown_framework(run_failing, tmp_path):
    result = run_failing(tmp_path, DOCKYARD_FRAMEWORK="caffe")
    assert result.returncode == 1
    assert last_line(result) == (
        "dockyard.serving: unknown framework 'caffe' in DOCKYARD_FRAMEWORK; known: sklearn, xgboost, "
        "pytorch, tensorflow"
    )


def test_invalid_setting(run_failing, tmp_path):
    result = run_failing(tmp_path, SAGEMAKER_MODEL_SERVER_WORKERS="many")
    assert result.returncode == 1
    assert last_line(result) == (
        "dockyard.serving: SAGEMAKER_MODEL_SERVER_WORKERS must be an integer >= 1, got 'many'"
    )


def test_port_in_use(run_failing, blocking_model_dir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_failing(blocking_model_dir, SAGEMAKER_BIND_TO_PORT=str(port))
    assert result.returncode == 1
    assert last_line(result).startswith(f"dockyard.serving: cannot listen on 127.0.0.1:{port}: ")


def test_only_the_serve_argument_is_accepted():
    result = subprocess.run(
        [sys.executable, "-m", "dockyard.serving", "train"], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "usage: python -m dockyard.serving serve" in result.stderr
