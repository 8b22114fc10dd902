"""Signing in to the console of a server with credentials, over plain HTTP: the form, the session
cookies, what a session opens and what it does not, CSRF, signing out; and, in-process with a
clock of the test's own, expiry and the limit on failed sign-ins."""

from __future__ import annotations

import html
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from email.message import Message
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from servers import Server, self_signed_tls

from dockyard.api import auth
from dockyard.api.errors import runtime_errors
from dockyard.console.signin import FAILURE_WINDOW, MAX_FAILURES, SignIn

KEY, SECRET = "AKIDCONSOLE", "console-secret"
TEMP_KEY, TEMP_SECRET, TOKEN = "ASIACONSOLE", "temporary-secret", "the-session-token"
SIGNIN = "/_dockyard/console/signin"
WRONG = "The access key id, secret access key or session token is wrong."


@dataclass
class Answer:
    status: int
    headers: Message
    body: bytes

    @property
    def cookies(self) -> dict[str, str]:
        """Set-Cookie: name → the whole header."""
        return {c.split("=", 1)[0]: c for c in self.headers.get_all("Set-Cookie") or []}

    def json(self) -> dict[str, str]:
        return json.loads(self.body)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def call(server: Server, method: str, path: str, *, session: dict[str, str] | None = None, form: dict[str, str] | None = None,
         headers: dict[str, str] | None = None, body: bytes | None = None) -> Answer:
    """One request, redirects not followed; ``session``: the cookies the sign-in set."""
    headers = dict(headers or {})
    if form is not None:
        body = urllib.parse.urlencode(form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    if session:
        headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in session.items())
    request = urllib.request.Request(server.url + path, data=body, method=method, headers=headers)
    try:
        with urllib.request.build_opener(_NoRedirects).open(request, timeout=10) as response:
            return Answer(response.status, response.headers, response.read())
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, exc.headers, exc.read())


def sign_in(server: Server, key: str = KEY, secret: str = SECRET, token: str = "") -> dict[str, str]:
    answer = call(server, "POST", SIGNIN, form={"access_key_id": key, "secret_access_key": secret, "session_token": token})
    assert (answer.status, answer.headers["Location"]) == (303, "/"), answer.body
    return {name: header.split("=", 1)[1].split(";", 1)[0] for name, header in answer.cookies.items()}


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("signin")
    srv = Server(root / "state", root / "server.log", credentials={KEY: SECRET, TEMP_KEY: TEMP_SECRET},
                 session_tokens={TEMP_KEY: TOKEN}).start()
    yield srv
    srv.stop()


def test_the_page_redirects_to_the_form_and_a_right_key_gets_a_strict_http_only_session(secured: Server) -> None:
    page = call(secured, "GET", "/")
    assert (page.status, page.headers["Location"]) == (303, SIGNIN)
    form = call(secured, "GET", SIGNIN)
    assert form.status == 200 and form.headers["Cache-Control"] == "no-store"
    for field in (b'name="access_key_id"', b'name="secret_access_key" type="password"', b'method="post"'):
        assert field in form.body

    answer = call(secured, "POST", SIGNIN, form={"access_key_id": KEY, "secret_access_key": SECRET})
    assert (answer.status, answer.headers["Location"]) == (303, "/")
    session, csrf = answer.cookies["dockyard-console-session"], answer.cookies["dockyard-console-csrf"]
    for cookie in (session, csrf):
        attributes = {a.strip().split("=")[0].lower() for a in cookie.split(";")[1:]}
        assert {"path", "max-age", "samesite"} <= attributes and "secure" not in attributes  # plain HTTP
        assert "Max-Age=43200" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert "HttpOnly" in session and "HttpOnly" not in csrf  # the script reads the CSRF token, never the id
    assert len(session.split("=", 1)[1].split(";")[0]) >= 43  # secrets.token_urlsafe(32)

    cookies = sign_in(secured)
    assert call(secured, "GET", "/", session=cookies).status == 200
    assert call(secured, "GET", "/_dockyard/console/api/endpoints", session=cookies).json() == {"endpoints": []}
    assert call(secured, "GET", "/_dockyard/console/static/console.js", session=cookies).status == 200
    assert "console: AKIDCONSOLE signed in from 127.0.0.1" in secured.log()


@pytest.mark.parametrize("key, secret", [(KEY, "not-the-secret"), ("AKIDNOBODY", SECRET), (KEY, ""), (TEMP_KEY, TEMP_SECRET)])
def test_a_wrong_key_or_secret_gets_the_form_again_saying_so_without_saying_which(secured: Server, key: str, secret: str) -> None:
    answer = call(secured, "POST", SIGNIN, form={"access_key_id": key, "secret_access_key": secret})
    assert answer.status == 403
    assert f'<p class="message" id="signin-message">{WRONG}</p>'.encode() in answer.body
    assert answer.cookies == {}


@pytest.mark.parametrize("content_type, body", [
    ("multipart/form-data; boundary=xx", b"--xx\r\ngarbage"),
    ("multipart/form-data", b"garbage"),
    ("application/json", b'{"access_key_id": "AKIDCONSOLE"}'),
])
def test_a_body_that_is_not_the_form_gets_the_form_again_saying_so(secured: Server, content_type: str, body: bytes) -> None:
    answer = call(secured, "POST", SIGNIN, headers={"Content-Type": content_type}, body=body)
    assert answer.status == 400
    expected = f"Sign in with the form: its fields come as application/x-www-form-urlencoded, not {content_type.split(';')[0]}."
    assert f'<p class="message" id="signin-message">{expected}</p>'.encode() in answer.body
    assert answer.cookies == {}


@pytest.mark.parametrize("charset, body, problem", [
    ("", b"access_key_id=\xff\xfe&secret_access_key=x", "'utf-8' codec can't decode byte 0xff"),
    ("; charset=bogus", b"access_key_id=a&secret_access_key=b", "unknown encoding: bogus"),
])
def test_a_form_that_does_not_decode_gets_the_form_again_naming_why(secured: Server, charset: str, body: bytes, problem: str) -> None:
    answer = call(secured, "POST", SIGNIN, headers={"Content-Type": f"application/x-www-form-urlencoded{charset}"}, body=body)
    assert answer.status == 400
    assert f"The sign-in form could not be read: {html.escape(problem)}".encode() in answer.body
    assert "Traceback" not in secured.log()


def test_a_key_with_a_session_token_signs_in_with_its_token_only(secured: Server) -> None:
    for token in ("x", ""):  # the message names the token: the key and secret alone are right
        wrong = call(secured, "POST", SIGNIN, form={"access_key_id": TEMP_KEY, "secret_access_key": TEMP_SECRET, "session_token": token})
        assert wrong.status == 403 and WRONG.encode() in wrong.body
    cookies = sign_in(secured, TEMP_KEY, TEMP_SECRET, TOKEN)
    assert call(secured, "GET", "/_dockyard/console/api/endpoints", session=cookies).status == 200


def test_without_a_session_console_calls_get_a_clear_403(secured: Server) -> None:
    for method, path in (("GET", "/_dockyard/console/api/endpoints"), ("GET", "/_dockyard/console/events"),
                         ("POST", "/_dockyard/console/api/advice"), ("POST", "/_dockyard/console/signout")):
        answer = call(secured, method, path, session={"dockyard-console-session": "made-up"}, body=b"{}")
        assert (answer.status, answer.headers["x-amzn-ErrorType"]) == (403, "MissingAuthenticationTokenException:"), path
        assert answer.json()["message"] == ("Not signed in to the console (or the session expired): sign in at "
                                            f"{SIGNIN}, or sign the request with SigV4.")


def test_a_console_post_needs_the_sessions_csrf_header(secured: Server) -> None:
    cookies = sign_in(secured)
    advice = json.dumps({"answers": {"language": "python", "framework": "sklearn"}}).encode()
    json_type = {"Content-Type": "application/json"}
    missing = call(secured, "POST", "/_dockyard/console/api/advice", session=cookies, headers=json_type, body=advice)
    assert (missing.status, missing.json()["__type"]) == (403, "AccessDeniedException")
    assert missing.json()["message"] == ("A console request that changes state must carry the session's X-Dockyard-Console-Token "
                                         "header (against cross-site request forgery); this one has none.")
    wrong = call(secured, "POST", "/_dockyard/console/api/advice", session=cookies, body=advice,
                 headers={**json_type, "X-Dockyard-Console-Token": cookies["dockyard-console-session"]})
    assert wrong.status == 403 and wrong.json()["message"].endswith("this one has a wrong one.")
    right = call(secured, "POST", "/_dockyard/console/api/advice", session=cookies, body=advice,
                 headers={**json_type, "X-Dockyard-Console-Token": cookies["dockyard-console-csrf"]})
    assert right.status == 200 and right.json()["next_command"].startswith("dockyard init")


def test_a_session_opens_the_consoles_invocations_but_never_the_aws_apis(secured: Server) -> None:
    cookies = sign_in(secured)
    token = {"X-Dockyard-Console-Token": cookies["dockyard-console-csrf"], "Content-Type": "text/csv"}
    # Past the access rule: the runtime API itself answers (no such endpoint).
    invoked = call(secured, "POST", "/endpoints/nope/invocations", session=cookies, headers=token, body=b"1,2")
    assert (invoked.status, invoked.headers["x-amzn-ErrorType"]) == (400, "ValidationError:")
    assert "nope" in invoked.json()["message"]
    without_header = call(secured, "POST", "/endpoints/nope/invocations", session=cookies, body=b"1,2")
    assert (without_header.status, without_header.json()["__type"]) == (403, "AccessDeniedException")
    # No session cookie: SigV4's answer, as boto3 always got it.
    unsigned = call(secured, "POST", "/endpoints/nope/invocations", headers=token, body=b"1,2")
    assert (unsigned.status, unsigned.json()["message"]) == (403, "Missing Authentication Token")
    # The control plane, metrics and other admin routes are never the session's.
    control = call(secured, "POST", "/", session=cookies, body=b"{}", headers={
        **token, "X-Amz-Target": "SageMaker.ListModels", "Content-Type": "application/x-amz-json-1.1"})
    assert (control.status, control.json()["__type"]) == (403, "MissingAuthenticationTokenException")
    for path in ("/metrics", "/_dockyard/endpoints/nope/logs"):
        assert call(secured, "GET", path, session=cookies, headers=token).status == 403, path
    # A request that is signed is judged by its signature alone, cookie or not.
    boto = secured.client("sagemaker")
    assert boto.list_models()["Models"] == []


def test_signing_out_ends_the_session_and_its_open_live_channel(secured: Server) -> None:
    cookies = sign_in(secured)
    request = urllib.request.Request(secured.url + "/_dockyard/console/events", headers={
        "Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())})
    events = urllib.request.urlopen(request, timeout=30)
    assert events.readline() == b"retry: 1000\n"
    assert call(secured, "POST", "/_dockyard/console/signout", session=cookies).status == 403  # no CSRF header
    out = call(secured, "POST", "/_dockyard/console/signout", session=cookies,
               headers={"X-Dockyard-Console-Token": cookies["dockyard-console-csrf"]})
    assert out.status == 204
    assert set(out.cookies) == {"dockyard-console-session", "dockyard-console-csrf"}
    assert all("Max-Age=0" in c for c in out.cookies.values())
    # The server ends the stream at its next message (one a second at least), not 20 s of them later.
    for _ in range(60):
        if events.readline() == b"":
            break
    else:
        pytest.fail("the live channel went on after signing out")
    events.close()
    assert call(secured, "GET", "/_dockyard/console/api/endpoints", session=cookies).status == 403
    assert call(secured, "GET", "/", session=cookies).headers["Location"] == SIGNIN


def test_tls_makes_the_cookies_secure_and_their_lifetime_is_the_setting(tmp_path: Path) -> None:
    import ssl


    srv = Server(tmp_path / "state", tmp_path / "server.log", {"DOCKYARD_CONSOLE_SESSION_SECONDS": "7200"},
                 credentials={KEY: SECRET}, tls=self_signed_tls(tmp_path)).start()
    try:
        request = urllib.request.Request(srv.url + SIGNIN, method="POST",
                                         data=urllib.parse.urlencode({"access_key_id": KEY, "secret_access_key": SECRET}).encode())
        opener = urllib.request.build_opener(_NoRedirects, urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=srv.verify)))
        with pytest.raises(urllib.error.HTTPError) as info:
            opener.open(request, timeout=10)
        assert info.value.code == 303
        cookies = info.value.headers.get_all("Set-Cookie")
        assert len(cookies) == 2 and all("; Secure" in c and "Max-Age=7200" in c for c in cookies)
    finally:
        srv.stop()


# --- in-process, on the test's clock -------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def client(aiohttp_client: Callable[..., Awaitable[TestClient]], clock: Clock) -> TestClient:
    keys = {KEY: auth.Credential(SECRET)}
    signin = SignIn(keys, 60.0, secure=False, clock=clock)

    async def endpoints(_: web.Request) -> web.Response:
        return web.json_response({"endpoints": []})

    app = web.Application(middlewares=[runtime_errors, auth.middleware(keys, 1024, session=signin.authorizes)])
    app.add_routes([*signin.routes(), web.get("/_dockyard/console/api/endpoints", endpoints)])
    return await aiohttp_client(app)


async def _sign_in(client: TestClient, secret: str = SECRET) -> int:
    response = await client.post(SIGNIN, data={"access_key_id": KEY, "secret_access_key": secret}, allow_redirects=False)
    return response.status


async def test_a_session_ends_when_it_expires(client: TestClient, clock: Clock) -> None:
    assert await _sign_in(client) == 303
    clock.now += 59
    assert (await client.get("/_dockyard/console/api/endpoints")).status == 200
    clock.now += 1
    expired = await client.get("/_dockyard/console/api/endpoints")
    assert expired.status == 403 and "the session expired" in (await expired.json())["message"]


async def test_failed_sign_ins_from_one_address_are_limited_for_a_while(client: TestClient, clock: Clock) -> None:
    for _ in range(MAX_FAILURES):
        assert await _sign_in(client, "wrong") == 403
    refused = await client.post(SIGNIN, data={"access_key_id": KEY, "secret_access_key": SECRET}, allow_redirects=False)
    assert refused.status == 429
    assert f"Too many failed sign-ins from 127.0.0.1: try again in {int(FAILURE_WINDOW) + 1} s." in await refused.text()
    clock.now += FAILURE_WINDOW
    assert await _sign_in(client) == 303  # the window has passed


async def test_a_signed_sign_out_without_a_session_answers_204_and_leaves_other_sessions(
        client: TestClient, clock: Clock) -> None:
    # A SigV4-signed request passes the middleware without any session cookie; signing out of
    # nothing clears the cookies rather than failing with a 500, and ends no one else's session.
    assert await _sign_in(client) == 303
    url = client.make_url("/_dockyard/console/signout")
    session = client.session.cookie_jar.filter_cookies(url)
    signed = AWSRequest("POST", str(url), data=b"")
    SigV4Auth(Credentials(KEY, SECRET), auth.SERVICE, "us-east-1").add_auth(signed)
    client.session.cookie_jar.clear()
    out = await client.post("/_dockyard/console/signout", headers=dict(signed.headers.items()), data=b"")
    assert out.status == 204, await out.text()
    assert sorted(c.split("=", 1)[0] for c in out.headers.getall("Set-Cookie")) == [
        "dockyard-console-csrf", "dockyard-console-session"]
    assert all("Max-Age=0" in c for c in out.headers.getall("Set-Cookie"))
    client.session.cookie_jar.update_cookies(session, url)
    assert (await client.get("/_dockyard/console/api/endpoints")).status == 200
