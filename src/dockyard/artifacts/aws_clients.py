"""One boto3 client per service and region, made on first use and shared between threads.

boto3's default session is not safe to share across threads, so each client comes from a session
of its own; a boto3 client itself is thread-safe once made. Used for S3 (model data, async
inference payloads) and SNS (async inference notifications).
"""

from __future__ import annotations

import threading
from typing import Any

import boto3


class LazyClient:
    def __init__(self, service: str) -> None:
        self._service = service
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    def get(self, region: str) -> Any:
        with self._lock:
            client = self._clients.get(region)
            if client is None:
                client = self._clients[region] = boto3.session.Session().client(self._service, region_name=region)
            return client
