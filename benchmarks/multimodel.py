"""Multi-model endpoints: what TargetModel costs warm, what a cold load costs, and many models in
little memory.

``python -m benchmarks.multimodel [--rounds N] [--cold N] [--requests N] [--runtimes process,docker]
[--baseline SRC] [--quick]`` starts a server per runtime (managed scikit-learn) and measures, side
by side in that run:

- warm hit: the same model through a single-model endpoint and through a multi-model endpoint
  (``TargetModel`` of a loaded model), requests interleaved round by round;
- cold load: invoke → answer for a model not yet on the instance (download, unpack, load), and for
  one already unpacked but not loaded (an endpoint with ``ModelCacheSetting: Disabled`` unloads after
  each invocation, so its second call of a model loads from the disk cache); beside them, round by
  round, MLServer's repository API on the same model file (``POST /v2/repository/models/{name}/load``
  then the first ``/infer``), MLServer installed as ``benchmarks/peers.py`` does;
- 200 models in ~20 models' memory, Zipf-drawn requests (``benchmarks/multimodel_zipf.py``), on
  each runtime; on docker with the engine's proof that no container was OOM-killed.

``--baseline SRC`` (``src/`` of another checkout) runs the cold loads and the Zipf run on that
code too (process runtime), for a before/after in the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import joblib
import platformdirs
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from benchmarks import multimodel_zipf, peers
from benchmarks.markdown import table
from benchmarks.stack import ROLE, SKLEARN_URI, DockyardStack
from dockyard.artifacts.package import make_model_tarball

BODY = b"5.1,3.5,1.4,0.2"
HEADERS = {"Content-Type": "text/csv", "Accept": "application/json"}


def _prefix(root: Path, count: int, code: str | None) -> Path:
    """``root/m<i>.tar.gz`` for ``count`` models (the same classifier; ``code``: its inference.py)."""
    x, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(x, y)
    source = root.parent / f"{root.name}-src"
    source.mkdir(parents=True)
    joblib.dump(model, source / "model.joblib")
    if code is not None:
        (source / "code").mkdir()
        (source / "code" / "inference.py").write_text(code)
    root.mkdir()
    for i in range(count):
        make_model_tarball(source, root / f"m{i}.tar.gz")
    return root


def _mme(stack: DockyardStack, name: str, prefix: Path, instance_type: str = "ml.m5.large",
         cache: str = "Enabled") -> None:
    stack.sm.create_model(ModelName=name, ExecutionRoleArn=ROLE, PrimaryContainer={
        "Image": SKLEARN_URI, "Mode": "MultiModel", "ModelDataUrl": prefix.resolve().as_uri() + "/",
        "MultiModelConfig": {"ModelCacheSetting": cache}})
    stack.sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": name, "InitialInstanceCount": 1, "InstanceType": instance_type}])
    stack.create_endpoint(name)


def _invoke(conn: http.client.HTTPConnection, endpoint: str, target: str | None = None,
            failures: list[str] | None = None) -> tuple[int, float]:
    headers = {**HEADERS, **({"X-Amzn-SageMaker-Target-Model": target} if target else {})}
    started = time.perf_counter()
    conn.request("POST", f"/endpoints/{endpoint}/invocations", BODY, headers)
    resp = conn.getresponse()
    body = resp.read()
    if resp.status != 200 and failures is not None:
        failures.append(f"{resp.status} {body[:300].decode(errors='replace')}")
    return resp.status, (time.perf_counter() - started) * 1000


def warm(stack: DockyardStack, rounds: int) -> dict[str, float]:
    conn = http.client.HTTPConnection("127.0.0.1", stack.port)
    single, multi = [], []
    for _ in range(20):  # warm the connections, the code paths and the model
        _invoke(conn, "bench-single")
        _invoke(conn, "bench-mme", "m0.tar.gz")
    for _ in range(rounds):
        single.append(_invoke(conn, "bench-single")[1])
        multi.append(_invoke(conn, "bench-mme", "m0.tar.gz")[1])
    return {"single": statistics.median(single), "multi": statistics.median(multi)}


def _post(url: str, body: bytes = b"") -> float:
    """POST ``url`` (a 200 expected); milliseconds."""
    started = time.perf_counter()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=120) as resp:
        resp.read()
    return (time.perf_counter() - started) * 1000


def cold(stacks: dict[str, DockyardStack], count: int, mlserver: str | None) -> dict[str, float]:
    """Median invoke → answer of cold models, per stack (not downloaded, already unpacked) and for
    MLServer (load + first infer), all in the same rounds."""
    conns = {label: http.client.HTTPConnection("127.0.0.1", s.port) for label, s in stacks.items()}
    times: dict[str, list[float]] = {}
    for i in range(1, count + 1):
        for label, conn in conns.items():
            for kind in ("not downloaded", "already unpacked"):  # the second loads from the disk cache
                status, ms = _invoke(conn, "bench-mme-nocache", f"m{i}.tar.gz")
                assert status == 200, status
                times.setdefault(f"{label}: {kind}", []).append(ms)
        if mlserver is not None:
            load = _post(f"{mlserver}/v2/repository/models/m{i}/load")
            infer = _post(f"{mlserver}/v2/models/m{i}/infer", peers.infer_body())
            times.setdefault(f"{peers.specs()[0].label}: load", []).append(load)
            times.setdefault(f"{peers.specs()[0].label}: load + first infer", []).append(load + infer)
    return {k: statistics.median(v) for k, v in times.items()}


def _mlserver(cache: Path, tmp: Path, small: Path, count: int, opened: contextlib.ExitStack) -> str | None:
    """MLServer on a repository of the cold models' files (unpacked), none loaded; its URL."""
    spec = peers.specs()[0]
    try:
        python = peers.ensure_venv(cache, spec)
        models = {}
        for i in range(1, count + 1):
            models[f"m{i}"] = tmp / "mlserver-models" / f"m{i}"
            models[f"m{i}"].mkdir(parents=True)
            joblib.dump(joblib.load(small.parent / f"{small.name}-src" / "model.joblib"), models[f"m{i}"] / "model.joblib")
        peer, base = peers.start_mlserver_repository(spec, python, models, tmp)
    except peers.PeerError as exc:
        print(f"MLServer left out: {exc}", file=sys.stderr)
        return None
    opened.callback(peer.stop)
    return base


def _stack(opened: contextlib.ExitStack, root: Path, runtime: str, source: Path | None = None) -> DockyardStack:
    return opened.enter_context(DockyardStack(root, source=source, settings={"DOCKYARD_RUNTIME": runtime}))


def _print_tables(args: argparse.Namespace, w: dict[str, float], c: dict[str, float],
                  z: dict[str, dict[str, float | str]]) -> None:
    print(table(["warm hit", "p50 ms"], [
        ["single-model endpoint", f"{w['single']:.3f}"], ["multi-model, TargetModel loaded", f"{w['multi']:.3f}"],
        ["difference", f"{w['multi'] - w['single']:+.3f}"]]))
    print()
    print(table(["cold load (invoke → answer)", "p50 ms"], [[k, f"{v:.1f}"] for k, v in c.items()]))
    print()
    rows = list(next(iter(z.values())))
    for figures in z.values():
        rows += [k for k in figures if k not in rows]

    def fmt(v: float | str | None) -> str:
        return "—" if v is None else f"{v:.1f}" if isinstance(v, float) else str(v)

    print(table([f"{args.requests} Zipf(s={multimodel_zipf.ZIPF_S}) requests, {multimodel_zipf.MODELS} models, "
                 "~20 fit", *z], [[k, *(fmt(f.get(k)) for f in z.values())] for k in rows]))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.multimodel", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=300, help="warm-hit rounds per endpoint (default 300)")
    parser.add_argument("--cold", type=int, default=20, help="models loaded cold (default 20)")
    parser.add_argument("--requests", type=int, default=1000, help="Zipf requests (default 1000)")
    parser.add_argument("--runtimes", default="process,docker", help="runtimes, process first (default process,docker)")
    parser.add_argument("--baseline", type=Path, help="src/ of another checkout: cold loads and Zipf on it too")
    parser.add_argument("--no-mlserver", action="store_true", help="leave MLServer out")
    parser.add_argument("--quick", action="store_true", help="a few rounds of each, process runtime only (CI)")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.cold, args.requests, args.runtimes, args.no_mlserver = 20, 2, 60, "process", True
    cache = Path(platformdirs.user_cache_dir("dockyard")) / "benchmarks"
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="multimodel-", dir=cache) as name, contextlib.ExitStack() as opened:
        tmp = Path(name)
        small = _prefix(tmp / "small", args.cold + 1, None)
        heavy = _prefix(tmp / "heavy", multimodel_zipf.MODELS, multimodel_zipf.BALLAST_CODE)
        # Labelled "<code> (<runtime>)"; the first is this checkout on the process runtime.
        stacks = {f"dockyard ({runtime})": _stack(opened, tmp / runtime, runtime) for runtime in args.runtimes.split(",")}
        if args.baseline is not None:
            stacks["baseline (process)"] = _stack(opened, tmp / "baseline", "process", args.baseline)
        stack = stacks["dockyard (process)"]
        stack.deploy("bench-single", [small / "m0.tar.gz"])
        _mme(stack, "bench-mme", small)
        for s in stacks.values():
            _mme(s, "bench-mme-nocache", small, cache="Disabled")
        mlserver = None if args.no_mlserver else _mlserver(cache, tmp, small, args.cold, opened)
        print("warm hits …", file=sys.stderr)
        w = warm(stack, args.rounds)
        print("cold loads …", file=sys.stderr)
        c = cold(stacks, args.cold, mlserver)
        z: dict[str, dict[str, float | str]] = {}
        for label, s in stacks.items():
            print(f"Zipf over {multimodel_zipf.MODELS} models: {label} …", file=sys.stderr)
            _mme(s, "bench-zipf", heavy, instance_type=multimodel_zipf.INSTANCE_TYPE)
            z[label] = multimodel_zipf.run(s, "bench-zipf", args.requests, _invoke, docker=label.endswith("(docker)"))
            s.delete("bench-zipf")
    _print_tables(args, w, c, z)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
