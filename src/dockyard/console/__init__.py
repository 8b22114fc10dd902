"""The web console that ``dockyard serve`` serves at ``/``: endpoints and their status, instances
and containers, live charts per container, logs, an invoke form and the container-strategy
advisor — a static page (``static/``) fed by JSON routes and one live channel (``live.py``)."""

from dockyard.console.live import LiveChannel, Sources
from dockyard.console.routes import install

__all__ = ["LiveChannel", "Sources", "install"]
