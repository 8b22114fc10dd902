"""``ArtifactStore``: turns a ContainerDefinition's model data into the files of /opt/ml/model.

It applies SageMaker's rules (reference §5.2): ``ModelDataUrl`` is one ``.tar.gz`` extracted into
the model directory; ``ModelDataSource.S3DataSource`` is a tar.gz (Gzip + S3Object), one object
(None + S3Object) or every object under a key prefix (None + S3Prefix). As a local-development
extension, a ``ModelDataUrl`` may name a local directory, whose contents are copied. What may be
read and how much is ``AccessPolicy``'s: every byte unpacked or copied is taken from a ``Budget``
(one per instance, shared by its containers' model data and code). The API is synchronous: callers
run it in a thread.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from dockyard.artifacts.cache import DownloadCache
from dockyard.artifacts.errors import ArtifactError
from dockyard.artifacts.policy import AccessPolicy, Budget, check_local_path
from dockyard.artifacts.sources import Location, Sources
from dockyard.artifacts.unpack import extract_tar_gz, safe_target

_MODEL_DATA = "model data"
_DATA_TYPES = ("S3Prefix", "S3Object")
_COMPRESSION_TYPES = ("None", "Gzip")


class ArtifactStore:
    """Fetches model data and code, caching downloads under ``cache_dir``."""

    def __init__(
        self, cache_dir: Path, region: str = "us-east-1", policy: AccessPolicy | None = None
    ) -> None:
        self._policy = policy = policy or AccessPolicy()
        self._sources = Sources(region, policy)
        self._cache = DownloadCache(Path(cache_dir), policy.max_unpacked_bytes)

    def budget(self, volume_bytes: int | None = None) -> Budget:
        """A fresh budget for one instance: its variant's VolumeSizeInGB if given, capped by the
        policy's unpacked-size limit (the operator's, which a model cannot raise)."""
        if volume_bytes is not None and volume_bytes < self._policy.max_unpacked_bytes:
            return Budget(volume_bytes, "the variant's VolumeSizeInGB")
        return Budget(self._policy.max_unpacked_bytes)

    def materialize_model_data(
        self, container: dict[str, Any], dest: Path, budget: Budget | None = None
    ) -> None:
        """Fill the empty directory ``dest`` with what SageMaker puts in /opt/ml/model.

        A container with neither ``ModelDataUrl`` nor ``ModelDataSource`` leaves ``dest`` empty,
        and so does a multi-model container (``Mode: MultiModel``): its ``ModelDataUrl`` is the
        prefix that models are loaded from one at a time, on demand (``materialize_target_model``).
        On failure ``dest`` is emptied again and ``ArtifactError`` says what went wrong.
        ``budget`` defaults to a fresh one.
        """
        budget = budget or self.budget()
        url = container.get("ModelDataUrl")
        source = container.get("ModelDataSource")
        if url and source:
            raise ArtifactError("A container may set ModelDataUrl or ModelDataSource, not both.")
        with _filling(Path(dest), _MODEL_DATA):
            if container.get("Mode") == "MultiModel":
                return
            if url:
                self._unpack_or_copy(url, Path(dest), budget)
            elif source:
                self._materialize_source(source, Path(dest), budget)

    def materialize_target_model(self, prefix: str, relative: str, dest: Path, budget: Budget) -> None:
        """Unpack the model archive ``relative`` names under a multi-model ``prefix`` (see
        ``Sources.under_prefix``) into the empty directory ``dest``, as ``materialize_model_data``."""
        with _filling(Path(dest), _MODEL_DATA):
            with self._open(self._sources.under_prefix(prefix, relative, _MODEL_DATA)) as archive:
                extract_tar_gz(archive, Path(dest), prefix + relative, budget)

    def materialize_code(
        self, submit_directory: str, dest: Path, budget: Budget | None = None
    ) -> Path:
        """The directory holding SAGEMAKER_SUBMIT_DIRECTORY's code.

        A local directory is returned as it is; a sourcedir ``.tar.gz`` (any supported URL or
        path) is extracted into the empty directory ``dest``, which is returned.
        """
        location = self._sources.locate(submit_directory, "code")
        if isinstance(location, Path) and location.is_dir():
            return location
        with _filling(Path(dest), "code"):
            with self._open(location) as archive:
                extract_tar_gz(archive, Path(dest), submit_directory, budget or self.budget())
        return Path(dest)

    def _materialize_source(self, source: dict[str, Any], dest: Path, budget: Budget) -> None:
        s3 = source.get("S3DataSource")
        if not isinstance(s3, dict):
            raise ArtifactError("ModelDataSource needs an S3DataSource.")
        uri, data_type, compression = (
            s3.get(k) for k in ("S3Uri", "S3DataType", "CompressionType")
        )
        if not uri:
            raise ArtifactError("ModelDataSource.S3DataSource needs an S3Uri.")
        if data_type not in _DATA_TYPES:
            raise ArtifactError(
                f"S3DataType of {uri} must be S3Prefix or S3Object, not {data_type!r}."
            )
        if compression not in _COMPRESSION_TYPES:
            raise ArtifactError(
                f"CompressionType of {uri} must be None or Gzip, not {compression!r}."
            )
        if compression == "Gzip":
            # SageMaker: Gzip means S3Uri is one gzip-compressed tar, so only S3Object makes sense.
            if data_type != "S3Object":
                raise ArtifactError(f"CompressionType Gzip needs S3DataType S3Object ({uri}).")
            self._unpack_or_copy(uri, dest, budget)
        elif data_type == "S3Object":
            self._copy_object(uri, dest, budget)
        else:
            self._copy_prefix(uri, dest, budget)

    def _unpack_or_copy(self, url: str, dest: Path, budget: Budget) -> None:
        location = self._sources.locate(url, _MODEL_DATA)
        if isinstance(location, Path) and location.is_dir():
            self._copy_directory(location, dest, budget)
            return
        with self._open(location) as archive:
            extract_tar_gz(archive, dest, url, budget)

    def _copy_object(self, uri: str, dest: Path, budget: Budget) -> None:
        location = self._sources.locate(uri, _MODEL_DATA)
        if isinstance(location, Path) and location.is_dir():
            raise ArtifactError(f"S3Object {uri} is a directory: use S3DataType S3Prefix.")
        # SageMaker names the file after the last '/'-separated part of the key.
        name = location.name if isinstance(location, Path) else uri.rsplit("/", 1)[-1]
        if not name:
            raise ArtifactError(f"S3Object {uri} names no object: its last part is empty.")
        self._write(location, safe_target(dest, name, uri, "object"), uri, budget)

    def _copy_prefix(self, uri: str, dest: Path, budget: Budget) -> None:
        listing = self._sources.list_prefix(uri, _MODEL_DATA)
        if isinstance(listing, Path):
            self._copy_directory(listing, dest, budget)
            return
        for relative_key, obj in listing:
            target = safe_target(dest, relative_key, uri, "object")
            target.parent.mkdir(parents=True, exist_ok=True)
            self._write(obj, target, obj.url, budget)

    def _write(self, location: Location, target: Path, label: str, budget: Budget) -> None:
        with self._open(location) as source, target.open("wb") as out:
            budget.copy(source, out, label)
        if isinstance(location, Path):
            shutil.copymode(location, target)

    def _copy_directory(self, source: Path, dest: Path, budget: Budget) -> None:
        def copy_file(src: str, dst: str) -> None:
            # copytree follows symlinks: each file is checked where it really is (no /dev/zero,
            # nothing outside the allowed roots), and its bytes are taken from the budget.
            path = check_local_path(Path(src), self._policy.allow_paths, _MODEL_DATA)
            self._write(path, Path(dst), str(source), budget)

        try:
            shutil.copytree(source, dest, copy_function=copy_file, dirs_exist_ok=True)
        except shutil.Error as e:
            # copytree carries on past OS errors and reports them all as (source, target, reason).
            problems = e.args[0]
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise ArtifactError(
                f"Could not copy {_MODEL_DATA} from {source}: {problems[0][2]}{more}"
            ) from e

    @contextmanager
    def _open(self, location: Location) -> Iterator[BinaryIO]:
        """Local files are read in place; remote objects through the cache."""
        if isinstance(location, Path):
            with location.open("rb") as handle:
                yield handle
        else:
            with self._cache.open(location) as handle:
                yield handle


@contextmanager
def _filling(dest: Path, what: str) -> Iterator[None]:
    """Require ``dest`` empty (creating it if need be); leave it empty again if filling fails."""
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise ArtifactError(f"Cannot put {what} into {dest}: the directory is not empty.")
    try:
        yield
    except BaseException as e:
        _empty(dest)
        if isinstance(e, OSError):
            raise ArtifactError(f"Could not put {what} into {dest}: {e}") from e
        raise


def _empty(directory: Path) -> None:
    for child in directory.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
