"""What a check run produces: one result per contract rule (pass, fail, warn or skip) with a hint."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Status(str, Enum):
    PASS = "pass"
    FAIL = "fail"
    # The contract's "should": worth fixing, but SageMaker would still run the container.
    WARN = "warn"
    SKIP = "skip"


# Check id → what it verifies, in the order the checks run.
TITLES: dict[str, str] = {
    "serve": "starts with `serve`",
    "default-port": "listens on 8080 when SAGEMAKER_BIND_TO_PORT is unset",
    "bind-port": "listens on SAGEMAKER_BIND_TO_PORT",
    "ping": "/ping answers 200 within the startup budget",
    "ping-latency": "every /ping after start-up answers within 2 s",
    "multi-model": "serves the multi-model API (/models)",
    "invocations": "/invocations answers the sample payload",
    "content-type": "answers 415 to an unsupported Content-Type",
    "accept": "answers 406 to an unsupported Accept",
    "concurrency": "answers concurrent requests, /ping included",
    "model-read-only": "reads the model from /opt/ml/model, mounted read-only",
    "sigterm": "stops within the grace period after SIGTERM",
}

HINTS: dict[str, str] = {
    "serve": "SageMaker runs `docker run IMAGE serve`: the argument `serve` must start the server and keep it "
             "running. Use an exec-form ENTRYPOINT (or none, with `serve` on PATH); tini as entrypoint is "
             "confused by the argument.",
    "default-port": "Listen on port 8080 when SAGEMAKER_BIND_TO_PORT is unset.",
    "bind-port": "Read the port from SAGEMAKER_BIND_TO_PORT (8080 when unset): in a multi-container model every "
                 "container gets its own. Images say they honour it with the label "
                 "com.amazonaws.sagemaker.capabilities.accept-bind-to-port=true.",
    "ping": "Answer GET /ping with HTTP 200 once the model is loaded: an endpoint whose container never does "
            "fails to start.",
    "ping-latency": "Answer /ping without work on the request path (no model call, no lock shared with "
                    "inference): SageMaker gives each ping 2 s.",
    "multi-model": "An image labelled com.amazonaws.sagemaker.capabilities.multi-models=true must serve POST/GET "
                   "/models, GET/DELETE /models/{name} and POST /models/{name}/invoke.",
    "invocations": "POST /invocations must answer 2xx within the invocation timeout (60 s on SageMaker); the "
                   "container log below says why it did not.",
    "content-type": "Answer 415 for a Content-Type you cannot read, as SageMaker's framework containers do: the "
                    "client then gets a clear error instead of a failed prediction.",
    "accept": "Answer 406 for an Accept you cannot produce, as SageMaker's framework containers do.",
    "concurrency": "Serve requests concurrently (threads, workers or async) and keep /ping responsive while "
                   "predictions run.",
    "model-read-only": "Read the model from /opt/ml/model and write nothing there: SageMaker mounts it "
                       "read-only. Write scratch files to /tmp.",
    "sigterm": "Handle SIGTERM: stop accepting requests, finish those in flight, exit. A shell script entrypoint "
               "must `exec` the server so that the signal reaches it. SageMaker sends SIGKILL 30 s after SIGTERM.",
}


@dataclass
class CheckResult:
    id: str
    status: Status
    detail: str
    # Extra advice for this run, shown before the general hint.
    advice: str = ""

    @property
    def title(self) -> str:
        return TITLES[self.id]

    @property
    def hint(self) -> str:
        if self.status in (Status.PASS, Status.SKIP):
            return ""
        return " ".join(part for part in (self.advice, HINTS[self.id]) if part)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "status": self.status.value, "detail": self.detail, "hint": self.hint}


@dataclass
class Report:
    target: str
    runtime: str
    results: list[CheckResult] = field(default_factory=list)
    # The container's last log lines, kept when a check failed.
    log_tail: str = ""

    def add(self, check_id: str, status: Status, detail: str, advice: str = "") -> CheckResult:
        result = CheckResult(check_id, status, detail, advice)
        self.results.append(result)
        return result

    def skip(self, check_ids: tuple[str, ...], why: str) -> None:
        for check_id in check_ids:
            self.add(check_id, Status.SKIP, why)

    def status_of(self, check_id: str) -> Status | None:
        return next((r.status for r in self.results if r.id == check_id), None)

    @property
    def failed(self) -> list[str]:
        return [r.id for r in self.results if r.status is Status.FAIL]

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "runtime": self.runtime,
            "ok": self.ok,
            "failed": self.failed,
            "checks": [r.to_json() for r in self.results],
            "log_tail": self.log_tail,
        }
