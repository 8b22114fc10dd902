"""The web console that ``dockyard serve`` serves at ``/``: endpoints and their status, instances
and containers, live charts per container, logs, an invoke form and the container-strategy
advisor — a static page (``static/``) fed by JSON routes and one live channel (``live.py``); on a
server with credentials, behind a sign-in (``signin.py``)."""

from dockyard.console.live import LiveChannel, Sources
from dockyard.console.routes import install
from dockyard.console.signin import SignIn

__all__ = ["LiveChannel", "SignIn", "Sources", "install"]
