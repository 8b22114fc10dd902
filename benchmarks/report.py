"""The report: the issues' targets checked against the figures, and every section's table."""

from __future__ import annotations

from typing import Any

from benchmarks import compare, forks, gateway, startup
from benchmarks.markdown import table

GATEWAY, PYTHON_CLIENT, ONE_WRITE = "gateway", "gateway_http_client", "gateway_http_client_one_write"

# The concurrency at which the gateway and peer targets are stated.
AT = 8


def _target(name: str, value: float | None, limit: float, unit: str, lower_is_better: bool = True) -> dict[str, Any]:
    if value is None:
        return {"target": name, "value": None, "met": None}
    met = value <= limit if lower_is_better else value >= limit
    return {"target": name, "value": round(value, 4), "unit": unit, "met": met}


def check(sections: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of issues 2, 3 and 6 that this run measured, with its median figure."""
    out = []
    noop = sections.get(GATEWAY, {}).get("noop", {}).get(AT)
    if noop:
        out += [
            _target(f"gateway overhead p50 ≤ 0.3 ms (noop, c={AT})", noop["overhead_p50_ms"].median, 0.3, "ms"),
            _target(f"gateway overhead p99 ≤ 1 ms (noop, c={AT})", noop["overhead_p99_ms"].median, 1.0, "ms"),
            _target(f"throughput ≥ 0.8 × direct (noop, c={AT})", noop["throughput_ratio"].median, 0.8, "×", False),
        ]
    boto_like = sections.get(PYTHON_CLIENT, {}).get("noop", {}).get(1)
    if boto_like:
        out.append(_target(
            "gateway overhead p50 ≤ 0.15 ms, client sending like boto3 (noop, c=1)",
            boto_like["overhead_p50_ms"].median, 0.15, "ms",
        ))
    serial = sections.get("serial", {}).get(1)
    if serial:
        longest = max(n for n in serial if isinstance(n, int))
        out.append(_target(
            f"serial: ≤ 0.3 ms per hop beyond the container's own time (c=1, {longest} containers)",
            serial[longest]["per_hop_beyond_container_ms"].median, 0.3, "ms",
        ))
    peers = sections.get("peers", {}).get("by_concurrency", {}).get(AT, {})
    for name, sides in peers.items():
        if name.startswith("vs "):
            r = sides[compare.DIRECT]
            better_p99 = r["p99_difference_ms"].median <= 0
            ratio = r["throughput_ratio"].median
            row = _target(f"≥ 1.5 × {name[3:]} throughput at equal or better p99 (c={AT})", ratio, 1.5, "×", False)
            row["met"] = row["met"] and better_p99
            out.append(row)
    started = sections.get("startup", {})
    for size, limit in ((1, 1.5), (15, 10.0)):
        if size in started:
            out.append(_target(f"InService ≤ {limit:g} s ({size} container{'s' if size > 1 else ''})",
                               started[size]["seconds"].median, limit, "s"))
    forked = sections.get("forks", {})
    if forked:
        out.append(_target("fork server: 1 container InService ≤ 0.3 s", forked["fork"]["one"].median, 0.3, "s"))
    if "many" in forked.get("fork", {}):
        out.append(_target(f"fork server: {forks.MANY} containers InService ≤ 3 s", forked["fork"]["many"].median, 3.0, "s"))
        out.append(_target(f"fork server: PSS of {forks.MANY} idle containers ≤ 0.5 × spawn",
                           forked["ratio"]["pss"].median, 0.5, "×"))
    return out


def render(report: dict[str, Any]) -> str:
    m, plan = report["machine"], report["plan"]
    lines = [
        f"# dockyard benchmarks — {report['date']}",
        "",
        (
            f"`{report['command'].strip()}` — {report['seconds']:.0f} s. Machine: {m['cpus']} CPUs ({m['cpu_model']}), "
            f"{m['memory_gib']} GiB, {m['os']}; Python {m['python']}, aiohttp {m['aiohttp']}, uvloop {m['uvloop']}, "
            f"scikit-learn {m['scikit-learn']}. Load: {report['client']}; concurrency {', '.join(map(str, plan['concurrencies']))}; "
            f"{plan['repeats']} run(s) of {plan['duration_s']:g} s per figure after {plan['warmup_s']:g} s warm-up. "
            "Cells: median (min–max) over the runs. Load average (1 min) at start and end: "
            f"{report['load_average']['start'][0]:g} / {report['load_average']['end'][0]:g} on {m['cpus']} CPUs."
        ),
        "",
        "## Targets",
        "",
        table(["target", "measured (median)", "met"], [
            [t["target"], "—" if t["value"] is None else f"{t['value']:.3f} {t['unit']}",
             {True: "yes", False: "**no**", None: "—"}[t["met"]]]
            for t in report["targets"]
        ]),
    ]
    sections = report["sections"]
    parts = (
        (GATEWAY, "Gateway overhead: through dockyard vs. straight to the container", gateway.overhead_table),
        (PYTHON_CLIENT, "Gateway overhead as boto3 sends: http.client, head and body in two writes",
         gateway.overhead_table),
        (ONE_WRITE, "The same client with head and body in one write", gateway.overhead_table),
        ("serial", "Serial pipelines: latency added per container", gateway.serial_table),
        ("peers", "Peers: same model, same machine, same client", compare.tables),
        ("startup", "CreateEndpoint → InService", startup.in_service_table),
        ("memory", "Memory of idle processes", startup.memory_table),
        ("forks", "Process runtime: fork server vs spawn, side by side", forks.forks_table),
    )
    for key, title, render_section in parts:
        if key in sections:
            lines += ["", f"## {title}", "", render_section(sections[key])]
            against = gateway.baseline_table(sections[key]) if key in (GATEWAY, PYTHON_CLIENT, ONE_WRITE) else ""
            if against:
                lines += ["", "Against the baseline (`--baseline`), same runs:", "", against]
    return "\n".join(lines)
