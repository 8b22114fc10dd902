"""The one error this package raises: ``str(e)`` is a message for the user, naming the URL."""

from __future__ import annotations


class ArtifactError(Exception):
    """Model data or code could not be fetched or unpacked."""


def download_error(what: str, url: str, problem: str) -> ArtifactError:
    """The error for a location that exists in principle but could not be read."""
    return ArtifactError(f"Could not download {what} from {url}: {problem}")
