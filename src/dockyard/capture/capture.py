"""Data capture: which endpoints capture (``refresh``), the hot-path hook (``observe``: a sampling
decision and an append to a bounded deque) and the background flush that writes the records.

Files follow SageMaker's layout, so Model Monitor tooling reads them:
``<DestinationS3Uri>/<endpoint>/<variant>/<yyyy>/<mm>/<dd>/<hh>/<mm-ss-mmm>-<uuid>.jsonl``, one
JSON line per invocation (``captureData.endpointInput``/``endpointOutput``, ``eventMetadata``,
``eventVersion`` "0"). Capture never fails or blocks an invocation: a record that finds the
buffer full, or whose destination cannot be written, is dropped and counted
(``dockyard_capture_dropped_total``); a streamed body is not captured (counted in
``dockyard_capture_skipped_total``). What is buffered is flushed at shutdown.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, NamedTuple

from prometheus_client import CollectorRegistry, Counter

from dockyard.asyncinference.storage import Location, Storage, StorageError
from dockyard.control.store import Store
from dockyard.gateway.invocation import Invocation, InvocationResult

log = logging.getLogger(__name__)
BUFFER = 10_000  # records waiting to be written, at most
FLUSH_EVERY = 1.0  # seconds


@dataclass(frozen=True)
class CaptureConfig:
    enabled: bool
    percentage: int
    destination: str
    kms_key_id: str | None
    capture_input: bool
    capture_output: bool
    csv_types: frozenset[str]
    json_types: frozenset[str]

    @classmethod
    def from_endpoint_config(cls, config: dict[str, Any]) -> CaptureConfig | None:
        spec = config.get("DataCaptureConfig")
        if not spec:
            return None
        modes = {o["CaptureMode"] for o in spec.get("CaptureOptions", ())}
        types = spec.get("CaptureContentTypeHeader", {})
        return cls(
            enabled=spec.get("EnableCapture", True),
            percentage=int(spec["InitialSamplingPercentage"]),
            destination=spec["DestinationS3Uri"],
            kms_key_id=spec.get("KmsKeyId"),
            capture_input=bool(modes & {"Input", "InputAndOutput"}),
            capture_output=bool(modes & {"Output", "InputAndOutput"}),
            # SageMaker's defaults when the lists are not given.
            csv_types=frozenset(types.get("CsvContentTypes", ["text/csv"])),
            json_types=frozenset(types.get("JsonContentTypes", ["application/json"])),
        )


class _Record(NamedTuple):
    """One sampled invocation (a tuple: the cheapest record to build on the hot path)."""

    config: CaptureConfig
    endpoint: str
    variant: str
    time: float
    inference_id: str | None
    input: tuple[str | None, bytes] | None  # (content type, body)
    output: tuple[str | None, bytes] | None


class DataCapture:
    def __init__(self, store: Store, storage: Storage, registry: CollectorRegistry) -> None:
        self._store, self._storage = store, storage
        # By lower-cased endpoint name, only endpoints that capture; replaced whole by ``refresh``.
        self._configs: dict[str, CaptureConfig] = {}
        self._buffer: deque[_Record] = deque()
        self._dropped = Counter("dockyard_capture_dropped_total",
                                "Captured invocations dropped (buffer full or destination unreachable)",
                                ["endpoint"], registry=registry)
        self._skipped = Counter("dockyard_capture_skipped_total",
                                "Sampled invocations not captured because a body was streamed",
                                ["endpoint"], registry=registry)
        self._task: asyncio.Task[None] | None = None

    def refresh(self) -> None:
        """Re-read every endpoint's DataCaptureConfig; call it on the store's thread. An endpoint
        being updated captures as its new config says from the UpdateEndpoint on."""
        configs = {}
        for ep in self._store.list_endpoints():
            config = CaptureConfig.from_endpoint_config((ep.pending or ep.deployment).config)
            if config is not None and config.enabled and config.percentage > 0:
                configs[ep.name.lower()] = config
        self._configs = configs

    # --- the hot path --------------------------------------------------------------------------

    def observe(self, endpoint: str, variant: str, inference_id: str | None, input_type: str | None,
                input_body: Any, output_type: str | None, output_body: bytes | None) -> None:
        """One answered invocation: kept if sampled. Bodies that are not ``bytes`` (streamed)
        are not captured."""
        config = self._configs.get(endpoint.lower())
        if config is None or random.random() * 100 >= config.percentage:
            return
        if (config.capture_input and not isinstance(input_body, bytes)) or (config.capture_output and output_body is None):
            self._skipped.labels(endpoint).inc()
            return
        if len(self._buffer) >= BUFFER:
            self._dropped.labels(endpoint).inc()
            return
        self._buffer.append(_Record(
            config, endpoint, variant, time.time(), inference_id,
            (input_type, input_body) if config.capture_input else None,
            (output_type, output_body) if config.capture_output and output_body is not None else None,
        ))

    # --- flushing ------------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._flush_loop())

    async def close(self) -> None:
        """Stop the flush loop, then write what is buffered."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await asyncio.to_thread(self.flush)

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_EVERY)
            await self._store.run(self.refresh)
            await asyncio.to_thread(self.flush)

    def flush(self) -> None:
        """Write what is buffered: one file per destination, endpoint, variant and hour."""
        groups: dict[tuple[str, str, str, str], list[_Record]] = {}
        while self._buffer:
            record = self._buffer.popleft()
            hour = datetime.fromtimestamp(record.time, timezone.utc).strftime("%Y/%m/%d/%H")
            groups.setdefault((record.config.destination, record.endpoint, record.variant, hour), []).append(record)
        for (destination, endpoint, variant, hour), records in groups.items():
            now = datetime.now(timezone.utc)
            name = f"{now.strftime('%M-%S')}-{now.microsecond // 1000:03d}-{uuid.uuid4()}.jsonl"
            uri = Location.parse(destination).join(endpoint, variant, hour, name)
            data = "".join(json.dumps(_line(r)) + "\n" for r in records).encode()
            try:
                self._storage.write_bytes(uri, data, "application/jsonl")
            except (StorageError, OSError) as exc:
                self._dropped.labels(endpoint).inc(len(records))
                log.warning("data capture of %s: dropped %d records: %s", endpoint, len(records), exc)


def _line(record: _Record) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if record.input is not None:
        data["endpointInput"] = _captured(record.config, "INPUT", *record.input)
    if record.output is not None:
        data["endpointOutput"] = _captured(record.config, "OUTPUT", *record.output)
    metadata = {"eventId": str(uuid.uuid4()),
                "inferenceTime": datetime.fromtimestamp(record.time, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    if record.inference_id:
        metadata["inferenceId"] = record.inference_id
    return {"captureData": data, "eventMetadata": metadata, "eventVersion": "0"}


def _captured(config: CaptureConfig, mode: str, content_type: str | None, body: bytes) -> dict[str, Any]:
    """A body as SageMaker records it: as text when its content type is in the CSV or JSON list
    (and it is UTF-8), else base64."""
    observed = content_type or "application/octet-stream"
    kind = observed.split(";")[0].strip()
    encoding = "CSV" if kind in config.csv_types else "JSON" if kind in config.json_types else "BASE64"
    if encoding != "BASE64":
        try:
            return {"observedContentType": observed, "mode": mode, "data": body.decode("utf-8"), "encoding": encoding}
        except UnicodeDecodeError:
            pass
    return {"observedContentType": observed, "mode": mode, "data": base64.b64encode(body).decode(), "encoding": "BASE64"}


def observer(capture: DataCapture) -> Callable[[Invocation, Any, InvocationResult], None]:
    """``runtime_api.handler``'s observe hook: an answered InvokeEndpoint handed to ``capture``."""

    def observe(inv: Invocation, body: Any, result: InvocationResult) -> None:
        headers = result.headers
        capture.observe(inv.endpoint, headers.get("x-Amzn-Invoked-Production-Variant", ""),
                        inv.headers.get("X-Amzn-SageMaker-Inference-Id"), inv.headers.get("Content-Type"), body,
                        headers.get("Content-Type"), result.body if result.chunks is None else None)

    return observe
