"""Signing in to the console on a server with credentials: a browser cannot sign SigV4, so it
signs in once with an access key id and secret from the credentials file and gets a session.

- ``GET /_dockyard/console/signin`` is the form; ``POST`` checks the key and secret with
  ``auth.authenticate`` (constant time) and answers with two cookies, both ``SameSite=Strict``
  (and ``Secure`` over TLS): the session id (``HttpOnly``) and the session's CSRF token, which
  the console's script copies into the ``X-Dockyard-Console-Token`` header of every POST.
  After ``MAX_FAILURES`` failed sign-ins from one address in ``FAILURE_WINDOW`` seconds, that
  address is refused until the window has passed.
- Sessions live in memory (a restart signs everyone out) until they expire or sign out.
- ``authorizes`` is the access rule the SigV4 middleware asks about an unsigned request. A
  session lets through only what the console uses: the page, its static files, JSON routes and
  live channel (reads: the cookie suffices, which SameSite=Strict keeps to the server's own
  pages), and POSTs — the console's own and the invoke form's
  ``/endpoints/NAME/invocations`` — only with the CSRF header. Anything else (the control plane,
  an invocation without a session cookie) is left to SigV4, so boto3 sees what it saw before.
"""

from __future__ import annotations

import collections
import html
import logging
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from aiohttp import web

from dockyard.api import auth
from dockyard.console.live import STILL_ALLOWED
from dockyard.console.routes import PREFIX
from dockyard.errors import AwsError

log = logging.getLogger(__name__)

SIGNIN = f"{PREFIX}/signin"
SIGNOUT = f"{PREFIX}/signout"
SESSION_COOKIE = "dockyard-console-session"
CSRF_COOKIE = "dockyard-console-csrf"
CSRF_HEADER = "X-Dockyard-Console-Token"
MAX_FAILURES = 10
FAILURE_WINDOW = 300.0
_INVOCATION = re.compile(r"/endpoints/[^/]+/invocations")
_READS = frozenset({"GET", "HEAD"})
_FORM_TYPE = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class Session:
    access_key_id: str
    csrf: str
    expires: float  # on the SignIn's clock


class SignIn:
    def __init__(self, keys: Mapping[str, auth.Credential], lifetime: float, *, secure: bool,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._keys, self._lifetime, self._secure, self._clock = keys, lifetime, secure, clock
        self._sessions: dict[str, Session] = {}
        self._failures: dict[str, collections.deque[float]] = {}

    def routes(self) -> list[web.AbstractRouteDef]:
        return [web.get(SIGNIN, self.form), web.post(SIGNIN, self.sign_in), web.post(SIGNOUT, self.sign_out)]

    # --- the access rule -----------------------------------------------------------------------

    def authorizes(self, request: web.Request) -> bool:
        """True: a signed-in console request. False: not the console's, SigV4 decides. Raises for
        a console request that may not pass (the page redirects to the sign-in form)."""
        path = request.path
        if path == SIGNIN:
            return True
        page = path == "/" and request.method in _READS
        invocation = request.method == "POST" and _INVOCATION.fullmatch(path) is not None
        if not (page or path.startswith(f"{PREFIX}/") or invocation):
            return False
        session = self.session(request.cookies.get(SESSION_COOKIE, ""))
        if session is None:
            if invocation:
                return False
            if page:
                raise web.HTTPSeeOther(SIGNIN)
            raise AwsError("MissingAuthenticationTokenException", "Not signed in to the console (or the session "
                           f"expired): sign in at {SIGNIN}, or sign the request with SigV4.", status=403)
        if request.method not in _READS and not auth.same(request.headers.get(CSRF_HEADER, ""), session.csrf):
            raise AwsError("AccessDeniedException", f"A console request that changes state must carry the session's "
                           f"{CSRF_HEADER} header (against cross-site request forgery); this one has "
                           f"{'a wrong one' if CSRF_HEADER in request.headers else 'none'}.", status=403)
        cookie = request.cookies[SESSION_COOKIE]
        request[STILL_ALLOWED] = lambda: self.session(cookie) is not None
        return True

    def session(self, session_id: str) -> Session | None:
        """The live session of this id; an expired one is forgotten."""
        session = self._sessions.get(session_id)
        if session is not None and session.expires <= self._clock():
            del self._sessions[session_id]
            return None
        return session

    # --- the routes ----------------------------------------------------------------------------

    async def form(self, _: web.Request) -> web.Response:
        return _page("")

    async def sign_in(self, request: web.Request) -> web.Response:
        client = request.remote or ""
        now = self._clock()
        failures = self._recent_failures(client, now)
        if len(failures) >= MAX_FAILURES:
            wait = int(failures[0] + FAILURE_WINDOW - now) + 1
            return _page(f"Too many failed sign-ins from {client}: try again in {wait} s.", 429)
        if request.content_type != _FORM_TYPE:
            # The form posts this; a multipart or JSON body would only fail to parse further on.
            return _page(f"Sign in with the form: its fields come as {_FORM_TYPE}, not {request.content_type}.", 400)
        try:
            form = await request.post()
        except (ValueError, LookupError) as exc:  # a body that does not decode, or an unknown charset
            return _page(f"The sign-in form could not be read: {exc}.", 400)
        akid = str(form.get("access_key_id", "")).strip()
        if not auth.authenticate(self._keys, akid, str(form.get("secret_access_key", "")),
                                 str(form.get("session_token", "")).strip()):
            failures.append(now)
            self._failures[client] = failures
            log.warning("console: failed sign-in from %s (%d in %.0f s)", client, len(failures), FAILURE_WINDOW)
            return _page("The access key id, secret access key or session token is wrong.", 403)
        self._failures.pop(client, None)
        for sid in [sid for sid, s in self._sessions.items() if s.expires <= now]:
            del self._sessions[sid]
        session_id, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        self._sessions[session_id] = Session(akid, csrf, now + self._lifetime)
        log.info("console: %s signed in from %s", akid, client)
        response = web.Response(status=303, headers={"Location": "/"})
        for name, value, http_only in ((SESSION_COOKIE, session_id, True), (CSRF_COOKIE, csrf, False)):
            response.set_cookie(name, value, path="/", max_age=int(self._lifetime), httponly=http_only,
                                samesite="Strict", secure=self._secure)
        return response

    async def sign_out(self, request: web.Request) -> web.Response:
        # authorizes() checked the CSRF header of a session; a SigV4-signed request may carry none.
        session = self._sessions.pop(request.cookies.get(SESSION_COOKIE, ""), None)
        if session is not None:
            log.info("console: %s signed out", session.access_key_id)
        response = web.Response(status=204)
        for name in (SESSION_COOKIE, CSRF_COOKIE):
            response.del_cookie(name, path="/")
        return response

    def _recent_failures(self, client: str, now: float) -> collections.deque[float]:
        """This address's failed sign-ins within the window; addresses with none left are forgotten."""
        for address in [a for a, f in self._failures.items() if f[-1] <= now - FAILURE_WINDOW]:
            del self._failures[address]
        failures = self._failures.get(client, collections.deque())
        while failures and failures[0] <= now - FAILURE_WINDOW:
            failures.popleft()
        return failures


_FORM = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Sign in · dockyard console</title>
  <link rel="icon" href="data:,">
  <style>
    body {{ font: 15px/1.4 system-ui, sans-serif; background: #f6f7f9; color: #1f2937; }}
    form {{ max-width: 22rem; margin: 12vh auto; padding: 1.5rem; background: #fff; border: 1px solid #e5e7eb; border-radius: 8px; }}
    h1 {{ font-size: 1.2rem; margin: 0 0 1rem; }}
    label {{ display: block; margin: 0.75rem 0 0.25rem; }}
    input {{ width: 100%; box-sizing: border-box; padding: 0.4rem; font: inherit; }}
    button {{ margin-top: 1rem; padding: 0.45rem 1rem; font: inherit; }}
    .message {{ color: #b91c1c; }}
    .muted {{ color: #6b7280; font-size: 0.85rem; }}
  </style>
</head>
<body>
  <form method="post" action="{action}">
    <h1>dockyard console</h1>
    <p class="message" id="signin-message">{message}</p>
    <label for="access_key_id">Access key id</label>
    <input id="access_key_id" name="access_key_id" autocomplete="username" required autofocus>
    <label for="secret_access_key">Secret access key</label>
    <input id="secret_access_key" name="secret_access_key" type="password" autocomplete="current-password" required>
    <label for="session_token">Session token <span class="muted">(only if the key has one)</span></label>
    <input id="session_token" name="session_token" type="password" autocomplete="off">
    <button type="submit">Sign in</button>
    <p class="muted">A key from the server's credentials file (<code>--credentials</code>).</p>
  </form>
</body>
</html>
"""


def _page(message: str, status: int = 200) -> web.Response:
    return web.Response(text=_FORM.format(action=SIGNIN, message=html.escape(message)), status=status,
                        content_type="text/html", headers={"Cache-Control": "no-store"})
