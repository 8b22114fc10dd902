"""Model data over http(s)://, from a local HTTP server that counts what it serves."""

from __future__ import annotations

from pathlib import Path

import pytest
from artifact_helpers import HttpFiles, data_source, make_tar_gz, run_in_threads, tree

from dockyard.artifacts import ArtifactError, ArtifactStore
from dockyard.runtime.ports import free_port

MODEL = {"model.joblib": b"weights", "code/inference.py": b"def model_fn(d): ...\n"}


def test_tar_gz_over_http(http_files: HttpFiles, tmp_path: Path, store: ArtifactStore) -> None:
    url = http_files.put("/models/model.tar.gz", make_tar_gz(MODEL), ETag='"v1"')
    dest = tmp_path / "model"

    store.materialize_model_data({"ModelDataUrl": url}, dest)

    assert tree(dest) == MODEL


@pytest.mark.parametrize(
    "validator",
    [{"ETag": '"v1"'}, {"Last_Modified": "Wed, 21 Oct 2025 07:28:00 GMT"}],
    ids=["ETag", "Last-Modified"],
)
def test_a_second_materialize_uses_the_cache(
    validator: dict[str, str], http_files: HttpFiles, tmp_path: Path, store: ArtifactStore
) -> None:
    url = http_files.put("/model.tar.gz", make_tar_gz(MODEL), **validator)

    store.materialize_model_data({"ModelDataUrl": url}, tmp_path / "first")
    store.materialize_model_data({"ModelDataUrl": url}, tmp_path / "second")

    assert tree(tmp_path / "second") == MODEL
    assert http_files.gets["/model.tar.gz"] == 1
    assert http_files.heads["/model.tar.gz"] == 2


def test_a_changed_object_is_downloaded_again(
    http_files: HttpFiles, tmp_path: Path, store: ArtifactStore
) -> None:
    url = http_files.put("/model.tar.gz", make_tar_gz({"model.bin": b"version 1"}), ETag='"v1"')
    store.materialize_model_data({"ModelDataUrl": url}, tmp_path / "first")
    http_files.put("/model.tar.gz", make_tar_gz({"model.bin": b"version 2"}), ETag='"v2"')

    store.materialize_model_data({"ModelDataUrl": url}, tmp_path / "second")

    assert tree(tmp_path / "second") == {"model.bin": b"version 2"}
    assert http_files.gets["/model.tar.gz"] == 2


def test_without_validators_nothing_is_cached(
    http_files: HttpFiles, tmp_path: Path, store: ArtifactStore
) -> None:
    url = http_files.put("/model.tar.gz", make_tar_gz(MODEL))

    store.materialize_model_data({"ModelDataUrl": url}, tmp_path / "first")
    store.materialize_model_data({"ModelDataUrl": url}, tmp_path / "second")

    assert tree(tmp_path / "second") == MODEL
    assert http_files.gets["/model.tar.gz"] == 2
    assert [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] == []


def test_a_server_that_refuses_head_is_served_without_caching(
    http_files: HttpFiles, tmp_path: Path, store: ArtifactStore
) -> None:
    url = http_files.put(
        "/presigned/model.tar.gz", make_tar_gz(MODEL), allow_head=False, ETag='"v1"'
    )

    store.materialize_model_data({"ModelDataUrl": url}, tmp_path / "first")
    store.materialize_model_data({"ModelDataUrl": url}, tmp_path / "second")

    assert tree(tmp_path / "second") == MODEL
    # No version before the download, so nothing to look a cached copy up by: none is kept.
    assert http_files.gets["/presigned/model.tar.gz"] == 2
    assert [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] == []


def test_http_404_names_the_url_and_status(
    http_files: HttpFiles, tmp_path: Path, store: ArtifactStore
) -> None:
    url = f"{http_files.base_url}/missing/model.tar.gz"
    dest = tmp_path / "model"

    with pytest.raises(ArtifactError) as raised:
        store.materialize_model_data({"ModelDataUrl": url}, dest)

    assert str(raised.value) == f"Could not download model data from {url}: HTTP 404 Not Found"
    assert list(dest.iterdir()) == []


def test_an_unreachable_server_is_named(tmp_path: Path, store: ArtifactStore) -> None:
    url = f"http://127.0.0.1:{free_port()}/model.tar.gz"

    with pytest.raises(
        ArtifactError, match=f"Could not download model data from {url}: .*[Cc]onnection refused"
    ):
        store.materialize_model_data({"ModelDataUrl": url}, tmp_path / "model")


def test_a_non_tar_download_names_the_url(
    http_files: HttpFiles, tmp_path: Path, store: ArtifactStore
) -> None:
    url = http_files.put("/model.pkl", b"\x80\x04 a pickle, not a tarball", ETag='"p"')

    with pytest.raises(ArtifactError) as raised:
        store.materialize_model_data({"ModelDataUrl": url}, tmp_path / "model")

    assert (
        str(raised.value)
        == f"{url} is not a gzip-compressed tar archive (SageMaker expects model.tar.gz)."
    )


def test_concurrent_materializations_download_once(
    http_files: HttpFiles, tmp_path: Path, store: ArtifactStore
) -> None:
    url = http_files.put("/model.tar.gz", make_tar_gz(MODEL), ETag='"v1"')

    def materialize(n: int) -> None:
        store.materialize_model_data({"ModelDataUrl": url}, tmp_path / f"instance-{n}")

    assert run_in_threads(materialize, 8) == []
    assert all(tree(tmp_path / f"instance-{n}") == MODEL for n in range(8))
    assert http_files.gets["/model.tar.gz"] == 1


def test_concurrent_stores_sharing_a_cache_directory_never_see_half_a_file(
    http_files: HttpFiles, tmp_path: Path
) -> None:
    # Separate stores do not share locks (like separate processes): they may each download, but
    # every reader must see a whole archive, thanks to download-then-rename.
    big = {f"shard-{i}.bin": bytes([i]) * 300_000 for i in range(4)}
    url = http_files.put("/big.tar.gz", make_tar_gz(big), ETag='"big"')

    def materialize(n: int) -> None:
        ArtifactStore(tmp_path / "cache").materialize_model_data(
            {"ModelDataUrl": url}, tmp_path / f"i-{n}"
        )

    assert run_in_threads(materialize, 6) == []
    assert all(tree(tmp_path / f"i-{n}") == big for n in range(6))
    assert len([p for p in (tmp_path / "cache").rglob("*") if p.is_file()]) == 1


def test_sourcedir_over_https_style_url(
    http_files: HttpFiles, tmp_path: Path, store: ArtifactStore
) -> None:
    url = http_files.put(
        "/code/sourcedir.tar.gz", make_tar_gz({"inference.py": b"# code\n"}), ETag='"c"'
    )
    dest = tmp_path / "code"

    assert store.materialize_code(url, dest) == dest
    assert tree(dest) == {"inference.py": b"# code\n"}


def test_s3_prefix_needs_s3_or_a_directory(
    http_files: HttpFiles, tmp_path: Path, store: ArtifactStore
) -> None:
    url = http_files.put("/models/", b"", ETag='"d"')
    container = data_source(url, "S3Prefix", "None")

    with pytest.raises(ArtifactError, match="S3Prefix works with s3:// URIs and local directories"):
        store.materialize_model_data(container, tmp_path / "model")
