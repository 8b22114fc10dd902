"""The data plane: invocations routed over an immutable routing snapshot, bytes streamed
through, per-container metrics."""
