"""Model data: fetch it (s3://, http(s)://, file://, paths), unpack it safely, cache downloads.

``ArtifactStore`` does the fetching and unpacking; ``ArtifactError`` is what it raises.
"""

from dockyard.artifacts.errors import ArtifactError
from dockyard.artifacts.store import ArtifactStore

__all__ = ["ArtifactError", "ArtifactStore"]
