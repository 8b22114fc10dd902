"""dockyard's benchmark suite: ``python -m benchmarks`` (see ``docs/benchmarks.md``).

Every figure is measured side by side in one run — through dockyard and straight to the same
container, or dockyard next to MLServer and KServe — with percentiles over many requests and
the spread over repeated runs, because a shared machine is too noisy for absolute numbers.
"""
