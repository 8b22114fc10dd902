"""``ArtifactStore``: turns a ContainerDefinition's model data into the files of /opt/ml/model.

It applies SageMaker's rules (reference §5.2): ``ModelDataUrl`` is one ``.tar.gz`` extracted into
the model directory; ``ModelDataSource.S3DataSource`` is a tar.gz (Gzip + S3Object), one object
(None + S3Object) or every object under a key prefix (None + S3Prefix). As a local-development
extension, a ``ModelDataUrl`` may name a local directory, whose contents are copied. The API is
synchronous: callers run it in a thread.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from dockyard.artifacts.cache import DownloadCache
from dockyard.artifacts.errors import ArtifactError
from dockyard.artifacts.sources import Location, Sources
from dockyard.artifacts.unpack import extract_tar_gz, safe_target

_MODEL_DATA = "model data"
_DATA_TYPES = ("S3Prefix", "S3Object")
_COMPRESSION_TYPES = ("None", "Gzip")


class ArtifactStore:
    """Fetches model data and code, caching downloads under ``cache_dir``."""

    def __init__(self, cache_dir: Path, region: str = "us-east-1") -> None:
        self._sources = Sources(region)
        self._cache = DownloadCache(Path(cache_dir))

    def materialize_model_data(self, container: dict[str, Any], dest: Path) -> None:
        """Fill the empty directory ``dest`` with what SageMaker puts in /opt/ml/model.

        A container with neither ``ModelDataUrl`` nor ``ModelDataSource`` leaves ``dest`` empty,
        and so does a multi-model container (``Mode: MultiModel``): its ``ModelDataUrl`` is the
        prefix that models are loaded from one at a time, on demand. To fetch one of those, pass
        ``{"ModelDataUrl": prefix + target_model}``.
        On failure ``dest`` is emptied again and ``ArtifactError`` says what went wrong.
        """
        url = container.get("ModelDataUrl")
        source = container.get("ModelDataSource")
        if url and source:
            raise ArtifactError("A container may set ModelDataUrl or ModelDataSource, not both.")
        with _filling(Path(dest), _MODEL_DATA):
            if container.get("Mode") == "MultiModel":
                return
            if url:
                self._unpack_or_copy(url, Path(dest))
            elif source:
                self._materialize_source(source, Path(dest))

    def materialize_code(self, submit_directory: str, dest: Path) -> Path:
        """The directory holding SAGEMAKER_SUBMIT_DIRECTORY's code.

        A local directory is returned as it is; a sourcedir ``.tar.gz`` (any supported URL or
        path) is extracted into the empty directory ``dest``, which is returned.
        """
        location = self._sources.locate(submit_directory, "code")
        if isinstance(location, Path) and location.is_dir():
            return location
        with _filling(Path(dest), "code"):
            with self._open(location) as archive:
                extract_tar_gz(archive, Path(dest), submit_directory)
        return Path(dest)

    def _materialize_source(self, source: dict[str, Any], dest: Path) -> None:
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
            self._unpack_or_copy(uri, dest)
        elif data_type == "S3Object":
            self._copy_object(uri, dest)
        else:
            self._copy_prefix(uri, dest)

    def _unpack_or_copy(self, url: str, dest: Path) -> None:
        location = self._sources.locate(url, _MODEL_DATA)
        if isinstance(location, Path) and location.is_dir():
            _copy_directory(location, dest)
            return
        with self._open(location) as archive:
            extract_tar_gz(archive, dest, url)

    def _copy_object(self, uri: str, dest: Path) -> None:
        location = self._sources.locate(uri, _MODEL_DATA)
        if isinstance(location, Path) and location.is_dir():
            raise ArtifactError(f"S3Object {uri} is a directory: use S3DataType S3Prefix.")
        # SageMaker names the file after the last '/'-separated part of the key.
        name = location.name if isinstance(location, Path) else uri.rsplit("/", 1)[-1]
        if not name:
            raise ArtifactError(f"S3Object {uri} names no object: its last part is empty.")
        self._write(location, safe_target(dest, name, uri, "object"))

    def _copy_prefix(self, uri: str, dest: Path) -> None:
        listing = self._sources.list_prefix(uri, _MODEL_DATA)
        if isinstance(listing, Path):
            _copy_directory(listing, dest)
            return
        for relative_key, obj in listing:
            target = safe_target(dest, relative_key, uri, "object")
            target.parent.mkdir(parents=True, exist_ok=True)
            self._write(obj, target)

    def _write(self, location: Location, target: Path) -> None:
        if isinstance(location, Path):
            shutil.copy2(location, target)
            return
        with self._open(location) as source, target.open("wb") as out:
            shutil.copyfileobj(source, out)

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


def _copy_directory(source: Path, dest: Path) -> None:
    try:
        shutil.copytree(source, dest, dirs_exist_ok=True)
    except shutil.Error as e:
        # copytree carries on past failures and reports them all as (source, target, reason).
        problems = e.args[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ArtifactError(
            f"Could not copy {_MODEL_DATA} from {source}: {problems[0][2]}{more}"
        ) from e


def _empty(directory: Path) -> None:
    for child in directory.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
