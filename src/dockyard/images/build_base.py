"""The Python base image that managed images (and instance sandboxes) build on.

Without ``--base``: ``python:3.11-slim`` when the engine already has it (any machine with
registry access can pull it), else ``dockyard/base:bookworm``, made when missing from Debian's
packages with ``mmdebstrap`` and imported into the engine — no image registry needed. The host's
CA bundle goes into that image, because HTTPS may pass an intercepting proxy whose CA only the
host's bundle holds (pip inside a build would otherwise fail with CERTIFICATE_VERIFY_FAILED).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import docker

PYTHON_BASE = "python:3.11-slim"
DEBIAN_BASE = "dockyard/base:bookworm"
DEBIAN_SUITE = "bookworm"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")

Progress = Callable[[str], None]


class BuildError(Exception):
    """A build could not be done; ``str(e)`` says why and what to do."""


def image_present(client: docker.DockerClient, reference: str) -> bool:
    """Whether the engine has an image by this reference (no pull)."""
    import docker

    try:
        client.images.get(reference)
        return True
    except docker.errors.ImageNotFound:
        return False


def local_base(client: docker.DockerClient, preferred: str | None = None) -> str | None:
    """The first Python base image the engine has: ``preferred``, python:3.11-slim, dockyard/base."""
    candidates = [preferred] if preferred else []
    return next((c for c in (*candidates, PYTHON_BASE, DEBIAN_BASE) if image_present(client, c)), None)


def ensure_base(client: docker.DockerClient, requested: str | None, progress: Progress) -> str:
    """The base image to build on, pulled or created when the engine lacks it."""
    import docker

    if requested is None:
        return local_base(client) or create_debian_base(client, progress)
    if image_present(client, requested):
        return requested
    if requested == DEBIAN_BASE:
        return create_debian_base(client, progress)
    progress(f"Pulling base image {requested}")
    try:
        client.images.pull(requested)
    except docker.errors.APIError as exc:
        raise BuildError(
            f"Base image {requested} is not in the engine and could not be pulled: {exc.explanation or exc}. "
            f"Omit --base to use {DEBIAN_BASE}, built from Debian packages with no registry."
        ) from None
    return requested


def create_debian_base(client: docker.DockerClient, progress: Progress, tag: str = DEBIAN_BASE) -> str:
    """Make a minimal Debian image with python3, pip and venv, and import it as ``tag``."""
    mmdebstrap = shutil.which("mmdebstrap")
    if mmdebstrap is None:
        raise BuildError(
            f"No base image to build on: the engine has neither {PYTHON_BASE} nor {DEBIAN_BASE}, and mmdebstrap "
            f"(which makes {DEBIAN_BASE} from Debian packages) is not installed: apt-get install mmdebstrap, "
            f"or pass --base with an image your engine can pull."
        )
    with tempfile.TemporaryDirectory(prefix="dockyard-base-") as tmp:
        tarball = Path(tmp) / "base.tar"
        command = [mmdebstrap, "--variant=minbase", "--include=python3,python3-pip,python3-venv,ca-certificates"]
        if HOST_CA_BUNDLE.is_file():
            command.append(f"--customize-hook=cp {HOST_CA_BUNDLE} \"$1{HOST_CA_BUNDLE}\"")
        # No mirror argument: mmdebstrap then uses its default Debian source (as apt is configured).
        command += [DEBIAN_SUITE, str(tarball)]
        progress(f"Creating {tag} from Debian {DEBIAN_SUITE} packages with mmdebstrap")
        _run(command, progress)
        progress(f"Importing {tag}")
        repository, _, version = tag.rpartition(":")
        answer = client.api.import_image_from_file(str(tarball), repository=repository, tag=version,
                                                   changes=['CMD ["/bin/bash"]'])
    # Podman's import ignores the tag (it tags ":latest"); both engines name the new image's id.
    image_id = json.loads(answer.strip().splitlines()[-1])["status"]
    client.api.tag(image_id, repository, version, force=True)
    return tag


def _run(command: list[str], progress: Progress) -> None:
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace") as proc:
        assert proc.stdout is not None
        last: list[str] = []
        for line in proc.stdout:
            line = line.rstrip()
            if line:
                progress(line)
                last = (last + [line])[-10:]
    if proc.returncode != 0:
        tail = "\n".join(last)
        raise BuildError(f"{Path(command[0]).name} failed with exit code {proc.returncode}:\n{tail}")
