"""The SageMaker container contract, check by check, against one running container.

One main run starts the container the way the platform does and goes through the checks in the
order of ``results.TITLES``; for an image a second, short run checks SAGEMAKER_BIND_TO_PORT (the
main run leaves it unset, as for a container alone on its instance). Checks that cannot mean
anything after an earlier failure are skipped with the reason, but the container is always stopped
by SIGTERM so that the last check runs too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field

import aiohttp

from dockyard.check.results import TITLES, Report, Status
from dockyard.check.targets import CHECK_MODEL, Container, StartFailed, Target
from dockyard.runtime.contract import DEFAULT_PORT, PING_TIMEOUT, STOP_GRACE
from dockyard.runtime.health import PingPoll, poll_ping
from dockyard.runtime.ports import free_port

# Long enough to see a ping that answers, but too slowly for the platform's 2 s.
PROBE_TIMEOUT = 3 * PING_TIMEOUT
# The port the second run of an image asks for (any port but 8080 shows it is honoured).
ALTERNATE_PORT = 9080
UNSUPPORTED = "application/x-dockyard-unsupported"
SAMPLE_PAYLOAD = b"5.1,3.5,1.4,0.2\n"
SAMPLE_CONTENT_TYPE = "text/csv"
LATENCY_PINGS = 5
# How long a container may listen on 8080 but not on the port it was given before the check stops
# waiting: a server that read the wrong port does not move to the right one later.
WRONG_PORT_SECONDS = 2.0
WATCH_INTERVAL = 0.25
AFTER_STARTUP = ("ping-latency", "multi-model", "invocations", "content-type", "accept", "concurrency", "model-read-only")


@dataclass(frozen=True)
class CheckOptions:
    payload: bytes = SAMPLE_PAYLOAD
    content_type: str = SAMPLE_CONTENT_TYPE
    accept: str | None = None
    # False when the payload is dockyard's own sample: a container may fairly reject it.
    payload_given: bool = False
    startup_timeout: float = 240.0
    invoke_timeout: float = 60.0
    stop_grace: float = STOP_GRACE
    concurrency: int = 8
    # None: check the multi-model API when the image's label claims it.
    multi_model: bool | None = None
    has_model: bool = False


@dataclass
class Probe:
    status: int | None
    seconds: float
    body: bytes = b""
    content_type: str = ""
    error: str = ""


async def probe(
    http: aiohttp.ClientSession, method: str, url: str, timeout: float, data: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Probe:
    """One HTTP request, timed; a connection error or timeout gives status None and the error."""
    started = time.monotonic()
    try:
        async with http.request(method, url, data=data, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            body = await resp.read()
            return Probe(resp.status, time.monotonic() - started, body, resp.headers.get("Content-Type", ""))
    except asyncio.TimeoutError:
        return Probe(None, time.monotonic() - started, error=f"no answer within {timeout:g} s")
    except (aiohttp.ClientError, OSError) as exc:
        return Probe(None, time.monotonic() - started, error=str(exc) or type(exc).__name__)


@dataclass
class Startup(PingPoll):
    """What polling /ping during start-up saw, with the last probe and its timing."""

    last: Probe | None = None
    ping_seconds: list[float] = field(default_factory=list)
    # Set when the poll stopped early because the container listens on 8080 instead.
    on_default_port: bool = False


async def await_startup(http: aiohttp.ClientSession, container: Container, budget: float, port: int) -> Startup:
    """Poll /ping (the runtimes' poll, each try timed) until 200, exit, or the budget is spent; or
    until the container has listened on 8080 for WRONG_PORT_SECONDS when it was given ``port``."""
    seen = Startup()

    async def attempt() -> int | None:
        seen.last = await probe(http, "GET", f"{container.url}/ping", PROBE_TIMEOUT)
        return seen.last.status

    poll = asyncio.ensure_future(poll_ping(attempt, container.exit_code, budget, seen))
    try:
        if port != DEFAULT_PORT:
            await _watch_for_default_port(container, seen, port, poll)
        else:
            await poll
    finally:
        if not poll.done():
            poll.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await poll
    if seen.healthy is not None and seen.last is not None:
        seen.ping_seconds.append(seen.last.seconds)
    return seen


async def _watch_for_default_port(container: Container, seen: Startup, port: int, poll: asyncio.Future[Startup]) -> None:
    """Return when ``poll`` is done, or set ``seen.on_default_port`` once the container has listened
    on 8080 and not on ``port`` for WRONG_PORT_SECONDS (read from its listener table)."""
    since: float | None = None
    while not poll.done() and seen.answered is None:
        await asyncio.wait({poll}, timeout=WATCH_INTERVAL)
        ports = None if poll.done() else await container.listening_ports()
        if ports is None:
            continue  # finished, or the table cannot be read: the poll decides
        if DEFAULT_PORT in ports and port not in ports:
            since = since if since is not None else time.monotonic()
            if time.monotonic() - since >= WRONG_PORT_SECONDS:
                seen.on_default_port = True
                return
        else:
            since = None
    await poll


def _snippet(body: bytes, limit: int = 80) -> str:
    text = body.decode("utf-8", "replace").strip().replace("\n", "\\n")
    return text if len(text) <= limit else text[: limit - 1] + "…"


class ContractRun:
    """The checks of one main run, sharing the container, the HTTP session and the report."""

    def __init__(self, target: Target, options: CheckOptions, report: Report, http: aiohttp.ClientSession) -> None:
        # ``http`` is this run's own session: it is closed before SIGTERM (see ``run``).
        self.target, self.options, self.report, self.http = target, options, report, http
        self.invoke_path = "/invocations"
        self.sample: Probe | None = None

    async def run(self) -> None:
        port_check = "bind-port" if self.target.runtime == "process" else "default-port"
        bind_to_port = free_port() if self.target.runtime == "process" else None
        expected_port = bind_to_port or DEFAULT_PORT
        multi_model = self.options.multi_model if self.options.multi_model is not None else bool(self.target.multi_model_label)
        try:
            container = await self.target.start(bind_to_port, multi_model)
        except StartFailed as exc:
            self.report.add("serve", Status.FAIL, f"did not start: {exc}")
            self.report.skip((port_check, "ping", *AFTER_STARTUP, "sigterm"), "the container did not start")
            return
        try:
            seen = await await_startup(self.http, container, self.options.startup_timeout, expected_port)
            if self._startup(seen, container, port_check, await container.listening_ports() if seen.answered is None else None):
                await self._after_startup(container, seen, multi_model)
            else:
                self.report.skip(AFTER_STARTUP, "/ping never answered 200")
            # Our idle keep-alive connections must not be what keeps a server from stopping.
            await self.http.close()
            await self._sigterm(container)
        finally:
            if not self.report.ok:
                self.report.log_tail = await container.logs()
            await container.remove()

    def _startup(self, seen: Startup, container: Container, port_check: str, ports: list[int] | None) -> bool:
        """Record serve, port and ping; True when the container became healthy."""
        budget = self.options.startup_timeout
        port = container.url.rsplit(":", 1)[1] if port_check == "bind-port" else str(DEFAULT_PORT)
        if seen.exit_code is not None and seen.answered is None:
            self.report.add("serve", Status.FAIL, f"`serve` exited with code {seen.exit_code} before answering on the port")
            self.report.skip((port_check, "ping"), "the container exited")
            return False
        self.report.add("serve", Status.PASS, "started with the argument `serve` and kept running")
        if seen.on_default_port:
            self.report.add(port_check, Status.FAIL,
                            f"it listens on port {DEFAULT_PORT}, not on SAGEMAKER_BIND_TO_PORT={port}",
                            f"It listens on {DEFAULT_PORT} instead.")
            self.report.skip(("ping",), "nothing answered on the port")
            return False
        if seen.answered is None:
            others = [p for p in ports or () if str(p) != port]
            advice = f"It listens on {', '.join(map(str, others))} instead." if others else ""
            self.report.add(port_check, Status.FAIL, f"nothing answered HTTP on port {port} within {budget:g} s", advice)
            self.report.skip(("ping",), "nothing answered on the port")
            return False
        self.report.add(port_check, Status.PASS, f"answered HTTP on port {port} after {seen.answered:.2f} s")
        if seen.healthy is None:
            last = seen.last
            saw = f"HTTP {last.status}" if last and last.status is not None else (last.error if last else "nothing")
            how = "exited" if seen.exit_code is not None else f"within {budget:g} s"
            self.report.add("ping", Status.FAIL, f"no HTTP 200 from /ping {how} (last answer: {saw})")
            return False
        self.report.add("ping", Status.PASS, f"HTTP 200 after {seen.healthy:.2f} s")
        return True

    async def _after_startup(self, container: Container, seen: Startup, multi_model: bool) -> None:
        await self._ping_latency(container, seen)
        if multi_model:
            await self._multi_model_load(container)
        else:
            self.report.add("multi-model", Status.SKIP, "not claimed: no multi-models label (--multi-model checks it anyway)")
        await self._invocations(container)
        await self._negotiation(container, "content-type", {"Content-Type": UNSUPPORTED}, 415)
        await self._negotiation(container, "accept", {"Content-Type": self.options.content_type, "Accept": UNSUPPORTED}, 406)
        await self._concurrency(container)
        if multi_model and self.report.status_of("multi-model") is Status.PASS:
            await self._multi_model_unload(container)
        self._model_read_only()

    async def _ping_latency(self, container: Container, seen: Startup) -> None:
        # During start-up a slow /ping only delays the first 200: the platform keeps polling (AWS's
        # own scikit-learn BYOC sample loads its model on the first /ping). After it, a slow /ping
        # fails the health check.
        at_startup = max(seen.ping_seconds)
        slowest = 0.0
        for _ in range(LATENCY_PINGS):
            result = await probe(self.http, "GET", f"{container.url}/ping", PROBE_TIMEOUT)
            if result.status != 200:
                what = f"HTTP {result.status}" if result.status is not None else result.error
                self.report.add("ping-latency", Status.FAIL, f"a /ping after start-up got {what}")
                return
            slowest = max(slowest, result.seconds)
            if slowest > PING_TIMEOUT:
                break
        if slowest > PING_TIMEOUT:
            self.report.add("ping-latency", Status.FAIL, f"/ping took {slowest:.2f} s; the platform waits {PING_TIMEOUT:g} s")
        elif at_startup > PING_TIMEOUT:
            self.report.add("ping-latency", Status.WARN,
                            f"the first /ping to answer 200 took {at_startup:.2f} s (later ones at most "
                            f"{slowest * 1000:.0f} ms): the platform keeps polling during start-up, but each "
                            f"try it makes gives up after {PING_TIMEOUT:g} s")
        else:
            self.report.add("ping-latency", Status.PASS, f"slowest /ping {max(at_startup, slowest) * 1000:.0f} ms")

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": self.options.content_type}
        if self.options.accept:
            headers["Accept"] = self.options.accept
        return headers

    async def _invoke(self, container: Container, headers: dict[str, str]) -> Probe:
        return await probe(
            self.http, "POST", f"{container.url}{self.invoke_path}", self.options.invoke_timeout,
            data=self.options.payload, headers=headers,
        )

    async def _invocations(self, container: Container) -> None:
        self.sample = result = await self._invoke(container, self._headers())
        where = f"POST {self.invoke_path} ({self.options.content_type})"
        if result.status is not None and 200 <= result.status < 300:
            self.report.add(
                "invocations", Status.PASS,
                f"{where} → HTTP {result.status} {result.content_type} in {result.seconds:.2f} s: {_snippet(result.body)}",
            )
            return
        got = f"HTTP {result.status}: {_snippet(result.body)}" if result.status is not None else result.error
        if not self.options.payload_given and result.status is not None and 400 <= result.status < 500:
            self.report.add("invocations", Status.WARN, f"{where} with dockyard's sample → {got}",
                            "The container rejected dockyard's sample payload (one iris row as CSV): pass your own "
                            "with --payload FILE --content-type TYPE.")
            return
        self.report.add("invocations", Status.FAIL, f"{where} → {got}")

    async def _negotiation(self, container: Container, check_id: str, headers: dict[str, str], expected: int) -> None:
        result = await self._invoke(container, headers)
        header = "Content-Type" if check_id == "content-type" else "Accept"
        if result.status == expected:
            self.report.add(check_id, Status.PASS, f"{header}: {UNSUPPORTED} → HTTP {expected}")
            return
        got = f"HTTP {result.status}" if result.status is not None else result.error
        self.report.add(check_id, Status.WARN, f"{header}: {UNSUPPORTED} → {got}, not {expected}")

    async def _concurrency(self, container: Container) -> None:
        count = self.options.concurrency
        invocations = [asyncio.ensure_future(self._invoke(container, self._headers())) for _ in range(count)]
        # A ping that is slow anyway has failed ping-latency already; here only the load's effect counts.
        ping: Probe | None = None
        if self.report.status_of("ping-latency") is Status.PASS:
            # Yield once so that the invocations are sent first: the ping must be answered while they run.
            await asyncio.sleep(0)
            ping = await probe(self.http, "GET", f"{container.url}/ping", PROBE_TIMEOUT)
        results = await asyncio.gather(*invocations)
        expected = self.sample.status if self.sample else None
        unanswered = [r for r in results if r.status is None]
        different = [r for r in results if r.status is not None and r.status != expected]
        problems = []
        if unanswered:
            problems.append(f"{len(unanswered)} of {count} got no answer ({unanswered[0].error})")
        if different:
            problems.append(f"{len(different)} of {count} answered HTTP {different[0].status} instead of {expected}")
        if ping is not None and (ping.status != 200 or ping.seconds > PING_TIMEOUT):
            what = f"HTTP {ping.status} in {ping.seconds:.2f} s" if ping.status is not None else ping.error
            problems.append(f"/ping during them: {what}")
        if problems:
            self.report.add("concurrency", Status.FAIL, "; ".join(problems))
            return
        slowest = max(r.seconds for r in results)
        meanwhile = f"; /ping meanwhile {ping.seconds * 1000:.0f} ms" if ping else ""
        self.report.add("concurrency", Status.PASS, f"{count} requests at once all answered (slowest {slowest:.2f} s){meanwhile}")

    async def _multi_model_load(self, container: Container) -> None:
        if not self.options.has_model:
            self.report.add("multi-model", Status.FAIL, "the container claims multi-model support, but no model was given",
                            "Pass --model-dir with a model the container can load.")
            return
        base = f"{container.url}/models"
        steps = (
            ("GET /models", "GET", base, None, (200,)),
            ("POST /models", "POST", base,
             json.dumps({"model_name": CHECK_MODEL, "url": container.multi_model_url}).encode(), (200, 201)),
            (f"GET /models/{CHECK_MODEL}", "GET", f"{base}/{CHECK_MODEL}", None, (200,)),
        )
        for label, method, url, data, ok in steps:
            result = await probe(self.http, method, url, self.options.invoke_timeout, data=data,
                                 headers={"Content-Type": "application/json"} if data else None)
            if result.status not in ok:
                got = f"HTTP {result.status}: {_snippet(result.body)}" if result.status is not None else result.error
                self.report.add("multi-model", Status.FAIL, f"{label} → {got}")
                return
        self.invoke_path = f"/models/{CHECK_MODEL}/invoke"
        self.report.add("multi-model", Status.PASS, f"loaded {CHECK_MODEL} through POST /models; invoking {self.invoke_path}")

    async def _multi_model_unload(self, container: Container) -> None:
        url = f"{container.url}/models/{CHECK_MODEL}"
        deleted = await probe(self.http, "DELETE", url, self.options.invoke_timeout)
        gone = await probe(self.http, "GET", url, self.options.invoke_timeout)
        result = next(r for r in self.report.results if r.id == "multi-model")
        if deleted.status == 200 and gone.status == 404:
            result.detail += "; DELETE unloaded it (then 404)"
        else:
            result.status = Status.FAIL
            result.detail += f"; DELETE → HTTP {deleted.status}, then GET → HTTP {gone.status} (expected 200, then 404)"

    def _model_read_only(self) -> None:
        if not self.target.mounts_model:
            self.report.add("model-read-only", Status.SKIP,
                            "the process runtime gives the model directory in DOCKYARD_MODEL_DIR; check the image")
        elif not self.options.has_model:
            self.report.add("model-read-only", Status.SKIP, "no --model-dir given to mount at /opt/ml/model")
        elif self.report.status_of("invocations") is Status.FAIL:
            self.report.add("model-read-only", Status.FAIL, "with the model mounted read-only at /opt/ml/model, "
                            "the sample invocation failed")
        else:
            self.report.add("model-read-only", Status.PASS, "served with the model mounted read-only at /opt/ml/model")

    async def _sigterm(self, container: Container) -> None:
        code = await container.exit_code()
        if code is not None:
            self.report.add("sigterm", Status.SKIP, f"the container had already exited with code {code}")
            return
        grace = self.options.stop_grace
        started = time.monotonic()
        await container.terminate()
        code = await container.wait_exit(grace)
        if code is None:
            self.report.add("sigterm", Status.FAIL, f"still running {grace:g} s after SIGTERM (the platform then kills it)")
        else:
            self.report.add("sigterm", Status.PASS, f"exited with code {code} {time.monotonic() - started:.2f} s after SIGTERM")


async def _bind_to_port(target: Target, options: CheckOptions, report: Report, http: aiohttp.ClientSession) -> None:
    """An image's second run: given SAGEMAKER_BIND_TO_PORT, it must answer /ping there."""
    labelled = bool(target.bind_to_port_label)
    try:
        container = await target.start(ALTERNATE_PORT, False)
    except StartFailed as exc:
        report.add("bind-port", Status.FAIL, f"did not start: {exc}")
        return
    try:
        seen = await await_startup(http, container, options.startup_timeout, ALTERNATE_PORT)
        if seen.healthy is not None:
            advice = "" if labelled else "Add the label so that the platform knows."
            status = Status.PASS if labelled else Status.WARN
            report.add("bind-port", status, f"SAGEMAKER_BIND_TO_PORT={ALTERNATE_PORT}: /ping answered 200 there", advice)
            return
        if seen.on_default_port:
            detail = f"SAGEMAKER_BIND_TO_PORT={ALTERNATE_PORT}: it listens on port {DEFAULT_PORT} instead"
        else:
            detail = (f"SAGEMAKER_BIND_TO_PORT={ALTERNATE_PORT}: no HTTP 200 from /ping on that port "
                      f"within {options.startup_timeout:g} s")
        if labelled:
            report.add("bind-port", Status.FAIL, detail + ", although the image's label says it honours it")
        else:
            report.add("bind-port", Status.WARN, detail + "; the image cannot share an instance's network with others")
    finally:
        await container.remove()


async def check(target: Target, options: CheckOptions) -> Report:
    """Run every check against ``target``; the report lists them in ``results.TITLES`` order."""
    report = Report(target.description, target.runtime)
    async with aiohttp.ClientSession() as http:
        await ContractRun(target, options, report, http).run()
    if target.runtime != "process" and report.status_of("serve") is Status.PASS:
        async with aiohttp.ClientSession() as http:
            await _bind_to_port(target, options, report, http)
    order = {check_id: i for i, check_id in enumerate(TITLES)}
    report.results.sort(key=lambda r: order[r.id])
    return report
