"""``dockyard package``: a saved model file (or SavedModel directory) becomes the model.tar.gz
layout its framework's managed image loads, with user code under code/."""

from __future__ import annotations

import tarfile
from pathlib import Path

import joblib
import pytest
from click.testing import CliRunner
from e2e.models import iris_classifier

from dockyard.cli.main import main
from dockyard.images.catalogue import CATALOGUE
from dockyard.strategy.packaging import (
    LAYOUTS,
    PackageError,
    guess_framework,
    package_model,
)


def members(archive: Path) -> list[str]:
    with tarfile.open(archive) as tar:
        return sorted(m.name for m in tar.getmembers())


def saved_model(directory: Path) -> Path:
    (directory / "variables").mkdir(parents=True)
    (directory / "saved_model.pb").write_bytes(b"graph")
    (directory / "variables" / "variables.index").write_bytes(b"index")
    return directory


def test_every_managed_framework_has_a_model_layout():
    assert {image.framework for image in CATALOGUE} <= set(LAYOUTS)


@pytest.mark.parametrize(
    ("file_name", "framework", "expected"),
    [
        ("clf.joblib", "sklearn", "model.joblib"),
        ("clf.pkl", "sklearn", "model.pkl"),
        ("booster.ubj", "xgboost", "xgboost-model"),
        ("xgboost-model", "xgboost", "xgboost-model"),
        ("net.pth", "pytorch", "model.pt"),
    ],
)
def test_a_model_file_gets_the_name_its_image_loads(tmp_path, file_name, framework, expected):
    (tmp_path / file_name).write_bytes(b"weights")
    assert guess_framework(tmp_path / file_name) == framework
    chosen, entries = package_model(tmp_path / file_name, tmp_path / "out" / "model.tar.gz")
    assert (chosen, entries) == (framework, [expected])
    assert members(tmp_path / "out" / "model.tar.gz") == [expected]


def test_a_savedmodel_goes_into_a_version_directory(tmp_path):
    model = saved_model(tmp_path / "export")
    package_model(model, tmp_path / "model.tar.gz")
    assert members(tmp_path / "model.tar.gz") == ["1", "1/saved_model.pb", "1/variables", "1/variables/variables.index"]


def test_savedmodel_versions_are_kept(tmp_path):
    saved_model(tmp_path / "export" / "3")
    assert guess_framework(tmp_path / "export") == "tensorflow"
    package_model(tmp_path / "export", tmp_path / "model.tar.gz")
    assert "3/saved_model.pb" in members(tmp_path / "model.tar.gz")


def test_errors_say_what_to_do(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"?")
    with pytest.raises(PackageError, match="pass --framework"):
        package_model(tmp_path / "weights.bin", tmp_path / "m.tar.gz")
    with pytest.raises(PackageError, match="SavedModel directory"):
        package_model(tmp_path / "weights.bin", tmp_path / "m.tar.gz", framework="tensorflow")
    with pytest.raises(PackageError, match="Could not find the model"):
        package_model(tmp_path / "missing.joblib", tmp_path / "m.tar.gz")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PackageError, match="without a TensorFlow SavedModel"):
        package_model(tmp_path / "empty", tmp_path / "m.tar.gz")


def test_cli_packages_a_model_with_its_code(tmp_path):
    joblib.dump(iris_classifier(), tmp_path / "clf.joblib")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "inference.py").write_text("def model_fn(model_dir):\n    return None\n")
    (tmp_path / "src" / "__pycache__").mkdir()
    (tmp_path / "src" / "__pycache__" / "inference.cpython-311.pyc").write_bytes(b"")
    out = tmp_path / "model.tar.gz"
    result = CliRunner().invoke(main, ["package", str(tmp_path / "clf.joblib"), "--code", str(tmp_path / "src"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "for the managed sklearn image" in result.output
    assert members(out) == ["code", "code/inference.py", "model.joblib"]


def test_cli_refuses_a_framework_without_a_managed_image(tmp_path):
    (tmp_path / "m.onnx").write_bytes(b"?")
    result = CliRunner().invoke(main, ["package", str(tmp_path / "m.onnx"), "--framework", "onnx"])
    assert result.exit_code == 1
    assert "onnx has no managed image" in result.output
