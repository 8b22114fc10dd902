"""Model data and code from the local disk: absolute paths, file:// URLs, directories."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from artifact_helpers import data_source, make_tar_gz, tree

from dockyard.artifacts import ArtifactError, ArtifactStore

MODEL = {"model.joblib": b"weights", "code/inference.py": b"def model_fn(d): ...\n"}


@pytest.fixture
def model_tar_gz(tmp_path: Path) -> Path:
    # A space in the path: file:// URLs must be percent-decoded.
    path = tmp_path / "my models" / "model.tar.gz"
    path.parent.mkdir()
    path.write_bytes(make_tar_gz(MODEL))
    return path


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    root = tmp_path / "model-src"
    (root / "code").mkdir(parents=True)
    (root / "model.joblib").write_bytes(b"weights")
    (root / "code" / "inference.py").write_bytes(b"def model_fn(d): ...\n")
    (root / "code" / "serve").write_bytes(b"#!/bin/sh\n")
    (root / "code" / "serve").chmod(0o755)
    return root


@pytest.mark.parametrize("as_url", [False, True], ids=["absolute path", "file:// URL"])
def test_model_data_url_tar_gz_is_extracted_in_place(
    as_url: bool, model_tar_gz: Path, tmp_path: Path, store: ArtifactStore
) -> None:
    url = model_tar_gz.as_uri() if as_url else str(model_tar_gz)
    dest = tmp_path / "model"

    store.materialize_model_data({"ModelDataUrl": url}, dest)

    assert tree(dest) == MODEL
    # Local files are read where they are: nothing is copied into the download cache.
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


@pytest.mark.parametrize("as_url", [False, True], ids=["absolute path", "file:// URL"])
def test_model_data_url_directory_is_copied(
    as_url: bool, model_dir: Path, tmp_path: Path, store: ArtifactStore
) -> None:
    dest = tmp_path / "model"

    store.materialize_model_data(
        {"ModelDataUrl": model_dir.as_uri() if as_url else str(model_dir)}, dest
    )

    assert tree(dest) == tree(model_dir)
    assert os.access(dest / "code" / "serve", os.X_OK)
    (dest / "model.joblib").write_bytes(b"changed by the container")
    assert (model_dir / "model.joblib").read_bytes() == b"weights"


def test_a_container_without_model_data_gets_an_empty_directory(
    tmp_path: Path, store: ArtifactStore
) -> None:
    dest = tmp_path / "model"

    store.materialize_model_data({"Image": "my-image:latest"}, dest)

    assert dest.is_dir() and list(dest.iterdir()) == []


def test_s3_prefix_from_a_local_directory(
    model_dir: Path, tmp_path: Path, store: ArtifactStore
) -> None:
    dest = tmp_path / "model"
    container = data_source(model_dir.as_uri(), "S3Prefix", "None")

    store.materialize_model_data(container, dest)

    assert tree(dest) == tree(model_dir)


def test_s3_object_uncompressed_from_a_local_file(tmp_path: Path, store: ArtifactStore) -> None:
    weights = tmp_path / "weights" / "model.safetensors"
    weights.parent.mkdir()
    weights.write_bytes(b"tensor bytes")
    dest = tmp_path / "model"
    container = data_source(str(weights), "S3Object", "None")

    store.materialize_model_data(container, dest)

    assert tree(dest) == {"model.safetensors": b"tensor bytes"}


def test_gzip_s3_object_from_a_local_file(
    model_tar_gz: Path, tmp_path: Path, store: ArtifactStore
) -> None:
    dest = tmp_path / "model"
    container = data_source(model_tar_gz.as_uri(), "S3Object", "Gzip")

    store.materialize_model_data(container, dest)

    assert tree(dest) == MODEL


@pytest.mark.parametrize(
    ("data_type", "compression", "expected"),
    [
        ("S3Prefix", "Gzip", "CompressionType Gzip needs S3DataType S3Object"),
        ("S3Folder", "None", "S3DataType of .* must be S3Prefix or S3Object, not 'S3Folder'"),
        ("S3Object", "Zstd", "CompressionType of .* must be None or Gzip, not 'Zstd'"),
    ],
)
def test_invalid_model_data_source_is_refused(
    data_type: str,
    compression: str,
    expected: str,
    model_tar_gz: Path,
    tmp_path: Path,
    store: ArtifactStore,
) -> None:
    container = data_source(str(model_tar_gz), data_type, compression)

    with pytest.raises(ArtifactError, match=expected):
        store.materialize_model_data(container, tmp_path / "model")


def test_model_data_url_and_source_together_are_refused(
    model_tar_gz: Path, tmp_path: Path, store: ArtifactStore
) -> None:
    container = data_source(str(model_tar_gz), "S3Object", "Gzip")
    container["ModelDataUrl"] = str(model_tar_gz)

    with pytest.raises(ArtifactError, match="ModelDataUrl or ModelDataSource, not both"):
        store.materialize_model_data(container, tmp_path / "model")


def test_missing_local_path_is_named(tmp_path: Path, store: ArtifactStore) -> None:
    missing = tmp_path / "nowhere" / "model.tar.gz"

    with pytest.raises(ArtifactError) as raised:
        store.materialize_model_data({"ModelDataUrl": missing.as_uri()}, tmp_path / "model")

    assert (
        str(raised.value)
        == f"Could not find model data at {missing.as_uri()}: no such file or directory."
    )


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/model.tar.gz",
        "models/model.tar.gz",
        "file://fileserver/models/model.tar.gz",
    ],
)
def test_unsupported_locations_are_named(url: str, tmp_path: Path, store: ArtifactStore) -> None:
    with pytest.raises(ArtifactError) as raised:
        store.materialize_model_data({"ModelDataUrl": url}, tmp_path / "model")

    assert str(raised.value) == (
        f'Unsupported model data location "{url}": '
        "use s3://, https://, http://, file:// or an absolute path."
    )


def test_a_non_empty_destination_is_refused_and_left_alone(
    model_tar_gz: Path, tmp_path: Path, store: ArtifactStore
) -> None:
    dest = tmp_path / "model"
    dest.mkdir()
    (dest / "mine.txt").write_bytes(b"keep me")

    with pytest.raises(ArtifactError, match="is not empty"):
        store.materialize_model_data({"ModelDataUrl": str(model_tar_gz)}, dest)

    assert tree(dest) == {"mine.txt": b"keep me"}


def test_a_directory_that_cannot_be_copied_is_reported(
    model_dir: Path, tmp_path: Path, store: ArtifactStore
) -> None:
    (model_dir / "dangling").symlink_to(tmp_path / "deleted-weights.bin")
    dest = tmp_path / "model"

    with pytest.raises(ArtifactError) as raised:
        store.materialize_model_data({"ModelDataUrl": str(model_dir)}, dest)

    assert str(raised.value) == (
        f"Could not copy model data from {model_dir}: "
        f"[Errno 2] No such file or directory: '{model_dir / 'dangling'}'"
    )

    assert list(dest.iterdir()) == []


@pytest.mark.parametrize("as_url", [False, True], ids=["absolute path", "file:// URL"])
def test_code_directory_is_used_as_it_is(
    as_url: bool, model_dir: Path, tmp_path: Path, store: ArtifactStore
) -> None:
    dest = tmp_path / "code"
    code = model_dir / "code"

    assert store.materialize_code(code.as_uri() if as_url else str(code), dest) == code
    assert not dest.exists()


def test_sourcedir_tar_gz_is_extracted(tmp_path: Path, store: ArtifactStore) -> None:
    sourcedir = tmp_path / "sourcedir.tar.gz"
    sourcedir.write_bytes(
        make_tar_gz({"inference.py": b"print('hi')\n", "requirements.txt": b"numpy\n"})
    )
    dest = tmp_path / "code"

    assert store.materialize_code(sourcedir.as_uri(), dest) == dest
    assert tree(dest) == {"inference.py": b"print('hi')\n", "requirements.txt": b"numpy\n"}


def test_missing_code_is_named(tmp_path: Path, store: ArtifactStore) -> None:
    with pytest.raises(
        ArtifactError, match=f"Could not find code at {tmp_path}/gone: no such file or directory."
    ):
        store.materialize_code(str(tmp_path / "gone"), tmp_path / "code")


def test_unsafe_sourcedir_is_refused(tmp_path: Path, store: ArtifactStore) -> None:
    sourcedir = tmp_path / "sourcedir.tar.gz"
    sourcedir.write_bytes(make_tar_gz({"../../escape.py": b"x"}))

    with pytest.raises(
        ArtifactError, match=f'Refusing to unpack {sourcedir}: member "../../escape.py"'
    ):
        store.materialize_code(str(sourcedir), tmp_path / "code")
