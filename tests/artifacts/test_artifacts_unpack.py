"""Safe unpacking: every kind of malicious archive is refused, on Pythons with and without
tarfile's extraction filters; good archives come out whole, with their file modes."""

from __future__ import annotations

import copy
import gzip
import io
import os
import stat
import tarfile
from pathlib import Path

import pytest
from artifact_helpers import make_tar_gz, tar_gz_with, tree

from dockyard.artifacts import ArtifactError, ArtifactStore


@pytest.fixture(params=["tarfile filters", "no tarfile filters"])
def filters(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run each test as on Python >= 3.11.4 and as on older Pythons, which lack ``data_filter``."""
    if request.param == "no tarfile filters":
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    return request.param


def member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.size = 3 if kind == tarfile.REGTYPE else 0
    return info


def archive_file(tmp_path: Path, data: bytes, name: str = "model.tar.gz") -> Path:
    path = tmp_path / "upload" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    return path


# "{outside}" stands for an absolute directory next to the destination, made by each test.
MALICIOUS = {
    "absolute path": [member("{outside}/evil")],
    "dot-dot": [member("../evil")],
    "nested dot-dot": [member("code/../../evil")],
    "path through an inside symlink": [
        member("sub", tarfile.DIRTYPE),
        member("link", tarfile.SYMTYPE, "sub"),
        member("link/../../evil"),
    ],
    "escaping symlink": [member("evil", tarfile.SYMTYPE, "../outside")],
    "absolute symlink": [member("evil", tarfile.SYMTYPE, "/etc/passwd")],
    "symlink escaping from a subdirectory": [member("code/evil", tarfile.SYMTYPE, "../../outside")],
    "escaping hard link": [member("evil", tarfile.LNKTYPE, "../outside")],
    "absolute hard link": [member("evil", tarfile.LNKTYPE, "/etc/passwd")],
    "character device": [member("evil", tarfile.CHRTYPE)],
    "block device": [member("evil", tarfile.BLKTYPE)],
    "fifo": [member("evil", tarfile.FIFOTYPE)],
}

EXPECTED_PROBLEM = {
    "absolute path": "absolute path",
    "dot-dot": "outside the destination directory",
    "nested dot-dot": "outside the destination directory",
    "path through an inside symlink": "outside the destination directory",
    "escaping symlink": "is a symlink to ../outside, outside the destination directory",
    "absolute symlink": "is a symlink to an absolute path (/etc/passwd)",
    "symlink escaping from a subdirectory": "is a symlink to ../../outside",
    "escaping hard link": "is a hard link to ../outside, outside the destination directory",
    "absolute hard link": "is a hard link to an absolute path (/etc/passwd)",
    "character device": "is a device file or FIFO",
    "block device": "is a device file or FIFO",
    "fifo": "is a device file or FIFO",
}


@pytest.mark.parametrize("case", MALICIOUS)
def test_malicious_archives_are_refused_and_leave_nothing_behind(
    case: str, filters: str, tmp_path: Path, store: ArtifactStore
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    members = [_placed(m, outside) for m in MALICIOUS[case]]
    # A harmless file first: a refusal must also undo what was already extracted.
    archive = archive_file(tmp_path, tar_gz_with(*members, files={"model.bin": b"ok"}))
    dest = tmp_path / "model"
    dest.mkdir()
    outside_before = sorted(p.name for p in tmp_path.iterdir())

    with pytest.raises(ArtifactError) as raised:
        store.materialize_model_data({"ModelDataUrl": str(archive)}, dest)

    message = str(raised.value)
    assert f'member "{members[-1].name}"' in message
    assert str(archive) in message
    assert EXPECTED_PROBLEM[case] in message
    assert list(dest.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == outside_before
    assert list(outside.iterdir()) == []


def _placed(info: tarfile.TarInfo, outside: Path) -> tarfile.TarInfo:
    placed = copy.copy(info)
    placed.name = info.name.replace("{outside}", str(outside))
    return placed


def test_links_inside_the_archive_are_extracted(
    filters: str, tmp_path: Path, store: ArtifactStore
) -> None:
    data = tar_gz_with(
        member("code/helper", tarfile.SYMTYPE, "../weights/model.bin"),
        member("alias.bin", tarfile.LNKTYPE, "weights/model.bin"),
        files={"weights/model.bin": b"weights"},
    )
    dest = tmp_path / "model"

    store.materialize_model_data({"ModelDataUrl": str(archive_file(tmp_path, data))}, dest)

    assert os.readlink(dest / "code" / "helper") == "../weights/model.bin"
    assert (dest / "code" / "helper").read_bytes() == b"weights"
    assert (dest / "alias.bin").stat().st_ino == (dest / "weights" / "model.bin").stat().st_ino


def test_file_modes_are_kept_minus_dangerous_bits(
    filters: str, tmp_path: Path, store: ArtifactStore
) -> None:
    data = make_tar_gz(
        {"serve": b"#!/bin/sh\n", "setuid": b"x", "model.bin": b"w", "shared": b"s"},
        modes={"serve": 0o755, "setuid": 0o4775, "model.bin": 0o400, "shared": 0o666},
    )
    dest = tmp_path / "model"

    store.materialize_model_data({"ModelDataUrl": str(archive_file(tmp_path, data))}, dest)

    def mode(name: str) -> int:
        return stat.S_IMODE((dest / name).stat().st_mode)

    assert mode("serve") == 0o755
    assert os.access(dest / "serve", os.X_OK)
    assert mode("setuid") == 0o755
    assert mode("model.bin") == 0o600
    assert mode("shared") == 0o644


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"PK\x03\x04 a zip file, not a tar", id="zip"),
        pytest.param(
            gzip.compress(b"just some gzip'd text, not a tar archive" * 20), id="gzip-not-tar"
        ),
        pytest.param(b"", id="empty"),
    ],
)
def test_a_file_that_is_not_a_gzip_tar_is_refused(
    data: bytes, tmp_path: Path, store: ArtifactStore
) -> None:
    archive = archive_file(tmp_path, data)

    with pytest.raises(ArtifactError) as raised:
        store.materialize_model_data({"ModelDataUrl": str(archive)}, tmp_path / "model")

    assert str(raised.value) == (
        f"{archive} is not a gzip-compressed tar archive (SageMaker expects model.tar.gz)."
    )


def test_an_uncompressed_tar_is_refused(tmp_path: Path, store: ArtifactStore) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("model.bin")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    archive = archive_file(tmp_path, buffer.getvalue(), name="model.tar")

    with pytest.raises(ArtifactError, match="is not a gzip-compressed tar archive"):
        store.materialize_model_data({"ModelDataUrl": str(archive)}, tmp_path / "model")


def test_a_truncated_archive_is_reported_and_cleaned_up(
    tmp_path: Path, store: ArtifactStore
) -> None:
    data = make_tar_gz({"a.bin": os.urandom(200_000), "b.bin": os.urandom(200_000)})
    archive = archive_file(tmp_path, data[: len(data) * 3 // 4])
    dest = tmp_path / "model"

    with pytest.raises(ArtifactError, match=f"{archive} is truncated or corrupt"):
        store.materialize_model_data({"ModelDataUrl": str(archive)}, dest)

    assert tree(dest) == {}
