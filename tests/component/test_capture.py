"""Data capture in process: a full buffer and a streamed body cost records (counted), never the
invocation; what is buffered is written at shutdown, in SageMaker's layout."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from prometheus_client import CollectorRegistry

from dockyard.asyncinference.storage import Storage
from dockyard.capture import capture as capture_module
from dockyard.capture.capture import DataCapture


def capturing(tmp_path: Path, registry: CollectorRegistry, percentage: int = 100) -> DataCapture:
    config = {"DataCaptureConfig": {
        "EnableCapture": True, "InitialSamplingPercentage": percentage,
        "DestinationS3Uri": (tmp_path / "capture").as_uri(),
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}]}}
    endpoint = SimpleNamespace(name="Ep", pending=None, deployment=SimpleNamespace(config=config))
    store: Any = SimpleNamespace(list_endpoints=lambda: [endpoint])
    capture = DataCapture(store, Storage("us-east-1", (tmp_path,)), registry)
    capture.refresh()
    return capture


def count(registry: CollectorRegistry, name: str) -> float:
    return registry.get_sample_value(name, {"endpoint": "ep"}) or 0.0


def test_full_buffer_and_streamed_bodies_are_counted_not_captured(tmp_path, monkeypatch):
    monkeypatch.setattr(capture_module, "BUFFER", 2)
    registry = CollectorRegistry()
    capture = capturing(tmp_path, registry)
    for _ in range(3):
        capture.observe("ep", "v", None, "text/csv", b"1", "application/json", b"[1]")
    assert count(registry, "dockyard_capture_dropped_total") == 1
    capture.observe("ep", "v", None, "text/csv", object(), "application/json", b"[1]")  # a stream
    capture.observe("ep", "v", None, "text/csv", b"1", "application/json", None)
    assert count(registry, "dockyard_capture_skipped_total") == 2


def test_an_endpoint_at_zero_percent_or_unknown_is_not_captured(tmp_path):
    registry = CollectorRegistry()
    capture = capturing(tmp_path, registry, percentage=0)
    capture.observe("ep", "v", None, "text/csv", b"1", "application/json", b"[1]")
    capture.observe("other", "v", None, "text/csv", b"1", "application/json", b"[1]")
    asyncio.run(capture.close())
    assert not (tmp_path / "capture").exists()


def test_shutdown_writes_what_is_buffered(tmp_path):
    capture = capturing(tmp_path, CollectorRegistry())
    capture.observe("Ep", "v", "id-1", "text/csv", b"1,2", "application/json", b"[3]")
    asyncio.run(capture.close())
    (file,) = (tmp_path / "capture").rglob("*.jsonl")
    assert file.relative_to(tmp_path / "capture").parts[:2] == ("Ep", "v")
    (line,) = file.read_text().splitlines()
    record = json.loads(line)
    assert record["captureData"] == {
        "endpointInput": {"observedContentType": "text/csv", "mode": "INPUT", "data": "1,2", "encoding": "CSV"},
        "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT", "data": "[3]",
                           "encoding": "JSON"},
    }
    assert record["eventMetadata"]["inferenceId"] == "id-1" and record["eventVersion"] == "0"


def test_an_unwritable_destination_drops_and_counts(tmp_path):
    registry = CollectorRegistry()
    capture = capturing(tmp_path, registry)
    capture._storage = Storage("us-east-1", (tmp_path / "elsewhere",))  # the destination is outside the roots
    capture.observe("Ep", "v", None, "text/csv", b"1", "text/csv", b"2")
    capture.flush()
    assert registry.get_sample_value("dockyard_capture_dropped_total", {"endpoint": "Ep"}) == 1
    assert not list((tmp_path / "capture").rglob("*.jsonl"))
