"""Model data from S3 (moto's S3 server on a loopback port, found through AWS_ENDPOINT_URL_S3)."""

from __future__ import annotations

import tarfile
from pathlib import Path
from typing import Any

import pytest
from artifact_helpers import RequestLog, data_source, make_tar_gz, run_in_threads, tar_gz_with, tree

from dockyard.artifacts import ArtifactError, ArtifactStore

MODEL = {"model.joblib": b"weights", "code/inference.py": b"def model_fn(d): ...\n"}


def test_model_data_url_tar_gz(s3: Any, bucket: str, tmp_path: Path, store: ArtifactStore) -> None:
    s3.put_object(Bucket=bucket, Key="xgb/model.tar.gz", Body=make_tar_gz(MODEL))
    dest = tmp_path / "model"

    store.materialize_model_data({"ModelDataUrl": f"s3://{bucket}/xgb/model.tar.gz"}, dest)

    assert tree(dest) == MODEL


def test_a_multi_model_container_gets_an_empty_model_directory(
    s3: Any, bucket: str, tmp_path: Path, store: ArtifactStore
) -> None:
    s3.put_object(Bucket=bucket, Key="mme/a/model.tar.gz", Body=make_tar_gz(MODEL))
    container = {"Mode": "MultiModel", "ModelDataUrl": f"s3://{bucket}/mme/"}
    dest = tmp_path / "model"

    store.materialize_model_data(container, dest)
    # One of its models, as the platform fetches it on an invocation with TargetModel.
    store.materialize_model_data(
        {"ModelDataUrl": f"s3://{bucket}/mme/a/model.tar.gz"}, tmp_path / "a"
    )

    assert list(dest.iterdir()) == []
    assert tree(tmp_path / "a") == MODEL


def test_the_generic_aws_endpoint_url_is_honoured_too(
    s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    s3.put_object(Bucket=bucket, Key="model.tar.gz", Body=make_tar_gz(MODEL))
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.meta.endpoint_url)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3")
    dest = tmp_path / "model"

    ArtifactStore(tmp_path / "cache").materialize_model_data(
        {"ModelDataUrl": f"s3://{bucket}/model.tar.gz"}, dest
    )

    assert tree(dest) == MODEL


def test_gzip_s3_object(s3: Any, bucket: str, tmp_path: Path, store: ArtifactStore) -> None:
    s3.put_object(Bucket=bucket, Key="m/model.tar.gz", Body=make_tar_gz(MODEL))
    dest = tmp_path / "model"

    store.materialize_model_data(
        data_source(f"s3://{bucket}/m/model.tar.gz", "S3Object", "Gzip"), dest
    )

    assert tree(dest) == MODEL


def test_uncompressed_s3_object_is_named_after_the_last_key_segment(
    s3: Any, bucket: str, tmp_path: Path, store: ArtifactStore
) -> None:
    s3.put_object(Bucket=bucket, Key="llm/v1/model.safetensors", Body=b"tensors")
    dest = tmp_path / "model"

    store.materialize_model_data(
        data_source(f"s3://{bucket}/llm/v1/model.safetensors", "S3Object", "None"), dest
    )

    assert tree(dest) == {"model.safetensors": b"tensors"}


def test_s3_prefix_copies_every_object_under_it_with_relative_keys(
    s3: Any, bucket: str, tmp_path: Path, store: ArtifactStore
) -> None:
    objects = {
        "llm/v1/config.json": b"{}",
        "llm/v1/weights/part-1.bin": b"one",
        "llm/v1/weights/deep/part-2.bin": b"two",
        "llm/v1/tokenizer/": b"",  # an empty-folder marker, as the S3 console makes them
        "llm/v10/other-model.bin": b"not under llm/v1/",
        "llm/v1.txt": b"not under llm/v1/ either",
    }
    for key, body in objects.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    container = data_source(f"s3://{bucket}/llm/v1/", "S3Prefix", "None")
    dest = tmp_path / "model"

    store.materialize_model_data(container, dest)

    assert tree(dest) == {
        "config.json": b"{}",
        "weights/part-1.bin": b"one",
        "weights/deep/part-2.bin": b"two",
    }


def test_s3_prefix_must_end_with_a_slash(
    s3: Any, bucket: str, tmp_path: Path, store: ArtifactStore
) -> None:
    s3.put_object(Bucket=bucket, Key="llm/v1/config.json", Body=b"{}")
    container = data_source(f"s3://{bucket}/llm/v1", "S3Prefix", "None")

    with pytest.raises(ArtifactError, match=f"S3Prefix s3://{bucket}/llm/v1 must end with '/'"):
        store.materialize_model_data(container, tmp_path / "model")


def test_an_empty_s3_prefix_is_an_error(
    s3: Any, bucket: str, tmp_path: Path, store: ArtifactStore
) -> None:
    container = data_source(f"s3://{bucket}/nothing/", "S3Prefix", "None")

    with pytest.raises(ArtifactError) as raised:
        store.materialize_model_data(container, tmp_path / "model")

    assert str(raised.value) == (
        f"Could not download model data from s3://{bucket}/nothing/: "
        "there are no objects under this prefix"
    )


def test_s3_prefix_keys_that_clash_leave_an_empty_directory(
    s3: Any, bucket: str, tmp_path: Path, store: ArtifactStore
) -> None:
    # "m/a" is a file, so "m/a/b" cannot be written below it.
    s3.put_object(Bucket=bucket, Key="m/a", Body=b"file")
    s3.put_object(Bucket=bucket, Key="m/a/b", Body=b"file below a file")
    container = data_source(f"s3://{bucket}/m/", "S3Prefix", "None")
    dest = tmp_path / "model"

    with pytest.raises(ArtifactError, match=f"Could not put model data into {dest}: "):
        store.materialize_model_data(container, dest)

    assert list(dest.iterdir()) == []


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("m/../../evil", "would be written outside the destination directory"),
        ("m//etc/cron.d/x", "has an absolute path"),
    ],
)
def test_s3_prefix_keys_that_leave_the_model_directory_are_refused(
    key: str, problem: str, s3: Any, bucket: str, tmp_path: Path, store: ArtifactStore
) -> None:
    s3.put_object(Bucket=bucket, Key="m/model.bin", Body=b"fine")
    s3.put_object(Bucket=bucket, Key=key, Body=b"evil")
    container = data_source(f"s3://{bucket}/m/", "S3Prefix", "None")
    dest = tmp_path / "model"

    with pytest.raises(ArtifactError) as raised:
        store.materialize_model_data(container, dest)

    assert (
        str(raised.value) == f'Refusing to unpack s3://{bucket}/m/: object "{key[2:]}" {problem}.'
    )
    assert list(dest.iterdir()) == []
    assert not (tmp_path / "evil").exists()


def test_missing_object_is_named_with_the_s3_error(
    s3: Any, bucket: str, tmp_path: Path, store: ArtifactStore
) -> None:
    with pytest.raises(ArtifactError) as raised:
        store.materialize_model_data(
            {"ModelDataUrl": f"s3://{bucket}/missing/model.tar.gz"}, tmp_path / "model"
        )

    assert str(raised.value) == (
        f"Could not download model data from s3://{bucket}/missing/model.tar.gz: "
        "NoSuchKey (The specified key does not exist.)"
    )


def test_missing_bucket_is_named_with_the_s3_error(
    aws_env: str, tmp_path: Path, store: ArtifactStore
) -> None:
    with pytest.raises(ArtifactError) as raised:
        store.materialize_model_data(
            {"ModelDataUrl": "s3://no-such-bucket-here/model.tar.gz"}, tmp_path / "model"
        )

    assert str(raised.value) == (
        "Could not download model data from s3://no-such-bucket-here/model.tar.gz: "
        "NoSuchBucket (The specified bucket does not exist)"
    )


def test_an_s3_prefix_is_not_a_model_data_url(
    s3: Any, bucket: str, tmp_path: Path, store: ArtifactStore
) -> None:
    with pytest.raises(
        ArtifactError, match=f"s3://{bucket}/models/ names an S3 prefix, not an object"
    ):
        store.materialize_model_data({"ModelDataUrl": f"s3://{bucket}/models/"}, tmp_path / "model")


def test_a_malicious_archive_in_s3_is_refused(
    s3: Any, bucket: str, tmp_path: Path, store: ArtifactStore
) -> None:
    link = tarfile.TarInfo("evil")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/shadow"
    s3.put_object(Bucket=bucket, Key="model.tar.gz", Body=tar_gz_with(link))

    with pytest.raises(
        ArtifactError, match=f'Refusing to unpack s3://{bucket}/model.tar.gz: member "evil"'
    ):
        store.materialize_model_data(
            {"ModelDataUrl": f"s3://{bucket}/model.tar.gz"}, tmp_path / "model"
        )


def test_a_second_materialize_uses_the_cache(
    s3: Any, bucket: str, s3_requests: RequestLog, tmp_path: Path, store: ArtifactStore
) -> None:
    s3.put_object(Bucket=bucket, Key="model.tar.gz", Body=make_tar_gz(MODEL))
    url = f"s3://{bucket}/model.tar.gz"

    store.materialize_model_data({"ModelDataUrl": url}, tmp_path / "first")
    store.materialize_model_data({"ModelDataUrl": url}, tmp_path / "second")

    assert tree(tmp_path / "second") == MODEL
    assert s3_requests.count("GET", bucket, "model.tar.gz") == 1
    assert s3_requests.count("HEAD", bucket, "model.tar.gz") == 2


def test_the_cache_survives_a_new_store_on_the_same_directory(
    s3: Any, bucket: str, s3_requests: RequestLog, tmp_path: Path
) -> None:
    s3.put_object(Bucket=bucket, Key="model.tar.gz", Body=make_tar_gz(MODEL))
    url = f"s3://{bucket}/model.tar.gz"

    ArtifactStore(tmp_path / "cache").materialize_model_data(
        {"ModelDataUrl": url}, tmp_path / "first"
    )
    ArtifactStore(tmp_path / "cache").materialize_model_data(
        {"ModelDataUrl": url}, tmp_path / "second"
    )

    assert tree(tmp_path / "second") == MODEL
    assert s3_requests.count("GET", bucket, "model.tar.gz") == 1


def test_a_changed_object_is_downloaded_again_and_the_old_copy_dropped(
    s3: Any, bucket: str, s3_requests: RequestLog, tmp_path: Path, store: ArtifactStore
) -> None:
    url = f"s3://{bucket}/model.tar.gz"
    s3.put_object(Bucket=bucket, Key="model.tar.gz", Body=make_tar_gz({"model.bin": b"version 1"}))
    store.materialize_model_data({"ModelDataUrl": url}, tmp_path / "first")
    s3.put_object(Bucket=bucket, Key="model.tar.gz", Body=make_tar_gz({"model.bin": b"version 2"}))

    store.materialize_model_data({"ModelDataUrl": url}, tmp_path / "second")

    assert tree(tmp_path / "first") == {"model.bin": b"version 1"}
    assert tree(tmp_path / "second") == {"model.bin": b"version 2"}
    assert s3_requests.count("GET", bucket, "model.tar.gz") == 2
    assert len([p for p in (tmp_path / "cache").rglob("*") if p.is_file()]) == 1


def test_s3_prefix_objects_are_cached_one_by_one(
    s3: Any, bucket: str, s3_requests: RequestLog, tmp_path: Path, store: ArtifactStore
) -> None:
    s3.put_object(Bucket=bucket, Key="m/a.bin", Body=b"a")
    s3.put_object(Bucket=bucket, Key="m/b.bin", Body=b"b")
    container = data_source(f"s3://{bucket}/m/", "S3Prefix", "None")
    store.materialize_model_data(container, tmp_path / "first")
    s3.put_object(Bucket=bucket, Key="m/b.bin", Body=b"b, retrained")

    store.materialize_model_data(container, tmp_path / "second")

    assert tree(tmp_path / "second") == {"a.bin": b"a", "b.bin": b"b, retrained"}
    assert s3_requests.count("GET", bucket, "m/a.bin") == 1
    assert s3_requests.count("GET", bucket, "m/b.bin") == 2


def test_concurrent_materializations_download_once(
    s3: Any, bucket: str, s3_requests: RequestLog, tmp_path: Path, store: ArtifactStore
) -> None:
    s3.put_object(Bucket=bucket, Key="model.tar.gz", Body=make_tar_gz(MODEL))
    url = f"s3://{bucket}/model.tar.gz"

    def materialize(n: int) -> None:
        store.materialize_model_data({"ModelDataUrl": url}, tmp_path / f"instance-{n}")

    assert run_in_threads(materialize, 8) == []
    assert all(tree(tmp_path / f"instance-{n}") == MODEL for n in range(8))
    assert s3_requests.count("GET", bucket, "model.tar.gz") == 1


def test_sourcedir_tar_gz_from_s3(
    s3: Any, bucket: str, tmp_path: Path, store: ArtifactStore
) -> None:
    s3.put_object(
        Bucket=bucket,
        Key="job/source/sourcedir.tar.gz",
        Body=make_tar_gz({"inference.py": b"# code\n"}),
    )
    dest = tmp_path / "code"

    assert store.materialize_code(f"s3://{bucket}/job/source/sourcedir.tar.gz", dest) == dest
    assert tree(dest) == {"inference.py": b"# code\n"}


def test_missing_sourcedir_says_code(
    s3: Any, bucket: str, tmp_path: Path, store: ArtifactStore
) -> None:
    with pytest.raises(
        ArtifactError,
        match=f"Could not download code from s3://{bucket}/sourcedir.tar.gz: NoSuchKey",
    ):
        store.materialize_code(f"s3://{bucket}/sourcedir.tar.gz", tmp_path / "code")
