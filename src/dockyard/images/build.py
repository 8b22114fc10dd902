"""Building dockyard's managed images locally: one recipe, driven by the catalogue.

Each image is the base image (see ``build_base``) plus a virtualenv holding the framework and the
model server's two dependencies, plus dockyard's ``serving`` package (copied in; it imports nothing
else from dockyard), with ``ENTRYPOINT python3 -m dockyard.serving`` so SageMaker's ``docker run
<image> serve`` starts it. Framework versions are pinned to the ones installed where dockyard runs,
so models trained here unpickle there; what was actually installed is measured after the build and
recorded in the image's ``io.dockyard.framework-version`` label.

Every image is tagged with its dockyard name and with the AWS URIs of the matching SageMaker image,
so an "extend" Dockerfile ``FROM 683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:…``
builds unchanged.
"""

from __future__ import annotations

import importlib.metadata
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import dockyard
from dockyard.images.build_base import HOST_CA_BUNDLE, BuildError, Progress, ensure_base
from dockyard.images.catalogue import CATALOGUE, ManagedImage

if TYPE_CHECKING:
    import docker

# What the model server itself needs besides the framework (see dockyard.serving).
SERVING_DEPENDENCIES = ("aiohttp", "numpy")
# PyPI's Linux wheels of these are multi-GB CUDA builds: they come only from a local wheel
# (--find-links, or pip's own configured find-links) or from an index the user names.
CPU_WHEEL_ONLY = frozenset({"torch"})

LABEL_BIND_TO_PORT = "com.amazonaws.sagemaker.capabilities.accept-bind-to-port"
# dockyard.serving answers the multi-model API when started with SAGEMAKER_MULTI_MODEL=true.
LABEL_MULTI_MODELS = "com.amazonaws.sagemaker.capabilities.multi-models"
LABEL_FRAMEWORK = "io.dockyard.framework"
LABEL_FRAMEWORK_VERSION = "io.dockyard.framework-version"
LABEL_DOCKYARD_VERSION = "io.dockyard.version"

VENV = "/opt/dockyard/venv"
LIB = "/opt/dockyard/lib"
WHEELS = "/tmp/dockyard-wheels"
CA_BUNDLE = str(HOST_CA_BUNDLE)


@dataclass(frozen=True)
class BuildOptions:
    # Base image; None picks python:3.11-slim if present, else dockyard/base:bookworm.
    base: str | None = None
    # Where CPU wheels of CPU_WHEEL_ONLY distributions lie; empty means pip's configured find-links.
    find_links: tuple[Path, ...] = ()
    # An index serving CPU builds of CPU_WHEEL_ONLY distributions (e.g. PyTorch's CPU index).
    index_url: str | None = None
    no_cache: bool = False
    aws_tags: bool = True


@dataclass(frozen=True)
class BuiltImage:
    name: str
    image_id: str
    framework_version: str
    tags: tuple[str, ...] = field(default=())


def select(names: Iterable[str]) -> list[ManagedImage]:
    """The catalogue entries ``names`` pick (``all`` picks every one)."""
    wanted = list(dict.fromkeys(names))
    if "all" in wanted:
        return list(CATALOGUE)
    known = {m.name: m for m in CATALOGUE}
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise BuildError(f"No managed image named {', '.join(unknown)}; choose from {', '.join(known)} or all.")
    return [known[n] for n in wanted]


def _requirement_name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9._-]+)", requirement)
    assert match is not None, requirement
    return match[1]


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _extra_requirements(extra: str) -> list[str]:
    """The requirements dockyard's own pip extra ``extra`` declares (pyproject.toml is the one source)."""
    found = []
    for line in importlib.metadata.requires("dockyard") or ():
        requirement, _, marker = line.partition(";")
        if re.search(rf"""extra\s*==\s*["']{re.escape(extra)}["']""", marker):
            found.append(requirement.strip())
    return found


def _pinned(requirement: str) -> str:
    """``name==<version installed here>`` when the distribution is installed, else as declared."""
    name = _requirement_name(requirement)
    try:
        return f"{name}=={importlib.metadata.version(name)}"
    except importlib.metadata.PackageNotFoundError:
        return requirement


def requirements(managed: ManagedImage) -> list[str]:
    """What pip installs into ``managed``'s image, pinned to the versions installed here."""
    serving = [r for r in importlib.metadata.requires("dockyard") or () if ";" not in r
               and _requirement_name(r) in SERVING_DEPENDENCIES]
    return [_pinned(r) for r in (*serving, *_extra_requirements(managed.extra))]


def image_tags(managed: ManagedImage, aws: bool = True) -> list[str]:
    """The dockyard name, plus every AWS URI (example URI's account and region, known tags)."""
    tags = [f"{managed.dockyard_name}:latest"]
    if aws:
        host = managed.example_uri.split("/", 1)[0]
        example_tag = managed.example_uri.rsplit(":", 1)[1]
        for repository in managed.aws_repositories:
            tags += [f"{host}/{repository}:{tag}" for tag in dict.fromkeys((example_tag, *managed.aws_tags))]
    return tags


def _pip_find_links() -> list[Path]:
    """Directories pip itself is configured to find wheels in (``find-links``)."""
    links = os.environ.get("PIP_FIND_LINKS", "").split()
    try:
        listing = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True,
                                 timeout=60, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        listing = ""
    for line in listing.splitlines():
        key, _, value = line.partition("=")
        if key.endswith("find-links"):
            links += shlex.split(value.strip().strip("'\""))
    return [Path(link.removeprefix("file://")) for link in links if "://" not in link.removeprefix("file://")]


def _local_wheel(distribution: str, pinned: str, directories: Iterable[Path]) -> Path | None:
    """A wheel of ``distribution`` (at the pinned version, if pinned) for this Python."""
    version = pinned.split("==", 1)[1] if "==" in pinned else None
    python_tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    for directory in directories:
        for wheel in sorted(directory.glob("*.whl"), reverse=True):
            parts = wheel.name.split("-")
            if _normalise(parts[0]) != _normalise(distribution) or (version and parts[1] != version):
                continue
            if parts[2] in (python_tag, "py3"):
                return wheel
    return None


def dockerfile(base: str, managed: ManagedImage, install_lines: list[str], ca_bundle: bool) -> str:
    """The Dockerfile of ``managed``'s image: ``install_lines`` (see ``pip_lines``) put the Python packages in."""
    lines = [f"FROM {base}"]
    if ca_bundle:
        # HTTPS may pass an intercepting proxy whose CA only the host's bundle holds.
        lines += [f"COPY ca-certificates.crt {CA_BUNDLE}",
                  f"ENV PIP_CERT={CA_BUNDLE} REQUESTS_CA_BUNDLE={CA_BUNDLE} SSL_CERT_FILE={CA_BUNDLE}"]
    lines += [
        f"RUN python3 -m venv {VENV}",
        # The venv first on PATH: "RUN pip install …" in an extending Dockerfile lands next to the framework.
        f"ENV PATH={VENV}/bin:$PATH PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1",
        *install_lines,
        # Last, so that a change to dockyard's code rebuilds one small layer only.
        f"COPY dockyard/ {LIB}/dockyard/",
        f"ENV PYTHONPATH={LIB} DOCKYARD_FRAMEWORK={managed.framework}",
        (f'LABEL {LABEL_BIND_TO_PORT}="true" {LABEL_MULTI_MODELS}="true" {LABEL_FRAMEWORK}="{managed.framework}" '
         f'{LABEL_DOCKYARD_VERSION}="{dockyard.__version__}"'),
        'ENTRYPOINT ["python3", "-m", "dockyard.serving"]',
        'CMD ["serve"]',
    ]
    return "\n".join(lines) + "\n"


def pip_lines(context: Path, reqs: list[str], options: BuildOptions) -> list[str]:
    """The Dockerfile lines installing ``reqs``; CPU-only distributions from a local wheel copied into
    ``context``, or from the given index."""
    cpu_only = [r for r in reqs if _normalise(_requirement_name(r)) in CPU_WHEEL_ONLY]
    rest = [shlex.quote(r) for r in reqs if r not in cpu_only]
    lines, cleanup = [], ""
    if cpu_only and options.index_url:
        quoted = " ".join(shlex.quote(r) for r in cpu_only)
        lines.append(f"RUN pip install --index-url {shlex.quote(options.index_url)} {quoted}")
    elif cpu_only:
        directories = options.find_links or tuple(_pip_find_links())
        (context / "wheels").mkdir()
        for requirement in cpu_only:
            name = _requirement_name(requirement)
            wheel = _local_wheel(name, requirement, directories)
            if wheel is None:
                raise BuildError(
                    f"{name} must be installed from a CPU build (PyPI's Linux wheel is a multi-GB CUDA build), and no "
                    f"{name} wheel for this Python was found in {', '.join(map(str, directories)) or 'any find-links'}: "
                    f"pass --find-links DIR holding {name}-*+cpu-*.whl, or --index-url with an index of CPU builds."
                )
            shutil.copy2(wheel, context / "wheels" / wheel.name)
            rest.insert(0, f"{WHEELS}/{wheel.name}")
        lines.append(f"COPY wheels/ {WHEELS}/")
        cleanup = f" && rm -rf {WHEELS}"
    lines.append(f"RUN pip install {' '.join(rest)}{cleanup}")
    return lines


def _context(directory: Path) -> None:
    """dockyard's ``__init__`` and ``serving`` package, all a managed image needs of dockyard."""
    package = Path(dockyard.__file__).parent
    target = directory / "dockyard"
    target.mkdir()
    shutil.copy2(package / "__init__.py", target / "__init__.py")
    shutil.copytree(package / "serving", target / "serving", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    if HOST_CA_BUNDLE.is_file():
        shutil.copy2(HOST_CA_BUNDLE, directory / "ca-certificates.crt")


def run_build(client: docker.DockerClient, progress: Progress, **kwargs: object) -> str:
    """Run one ``docker build`` through the Engine API, reporting its output; the new image's id."""
    image_id = None
    last: list[str] = []
    for chunk in client.api.build(rm=True, forcerm=True, decode=True, **kwargs):
        if "error" in chunk:
            detail = "\n".join(last[-8:])
            raise BuildError(f"docker build failed: {chunk['error'].strip()}\n{detail}".rstrip())
        if "aux" in chunk and "ID" in chunk["aux"]:
            image_id = chunk["aux"]["ID"]
        text = (chunk.get("stream") or chunk.get("status") or "").rstrip()
        for line in text.splitlines():
            if line.strip():
                progress(line)
                last.append(line)
                if line.startswith("Successfully built "):
                    image_id = image_id or line.split()[-1]
    if image_id is None:
        raise BuildError("docker build finished without naming the image it built")
    return image_id


def _installed_version(client: docker.DockerClient, image_id: str, distribution: str) -> str:
    """The version of ``distribution`` inside the image, read by running it (never assumed)."""
    probe = f"import importlib.metadata as m; print(m.version({distribution!r}))"
    output = client.containers.run(image_id, entrypoint=["python3", "-c", probe], command=[], remove=True)
    return output.decode().strip()


def build_image(
    client: docker.DockerClient, managed: ManagedImage, base: str, options: BuildOptions, progress: Progress
) -> BuiltImage:
    """Build, label and tag one managed image."""
    reqs = requirements(managed)
    with tempfile.TemporaryDirectory(prefix=f"dockyard-{managed.name}-") as tmp:
        context = Path(tmp)
        _context(context)
        text = dockerfile(base, managed, pip_lines(context, reqs, options), (context / "ca-certificates.crt").exists())
        (context / "Dockerfile").write_text(text)
        progress(f"Building {managed.dockyard_name} on {base}: {' '.join(reqs)}")
        image_id = run_build(client, progress, path=str(context), nocache=options.no_cache)
    version = _installed_version(client, image_id, managed.distribution)
    labelled = f"FROM {image_id}\nLABEL {LABEL_FRAMEWORK_VERSION}=\"{version}\"\n"
    image_id = run_build(client, progress, fileobj=io.BytesIO(labelled.encode()))
    # A tag allows letters, digits, "_", "." and "-": torch's "2.13.0+cpu" is tagged "2.13.0-cpu".
    version_tag = re.sub(r"[^\w.-]", "-", version)
    tags = [*image_tags(managed, options.aws_tags), f"{managed.dockyard_name}:{version_tag}"]
    for tag in tags:
        repository, _, name = tag.rpartition(":")
        client.api.tag(image_id, repository, name, force=True)
    return BuiltImage(managed.name, image_id, version, tuple(tags))


def build(client: docker.DockerClient, names: Iterable[str], options: BuildOptions, progress: Progress) -> list[BuiltImage]:
    """Build the base image if needed, then each managed image ``names`` picks."""
    chosen = select(names)
    base = ensure_base(client, options.base, progress)
    return [build_image(client, managed, base, options, progress) for managed in chosen]
