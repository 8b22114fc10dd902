"""SigV4 verification against requests signed by botocore itself: what passes, and what AWS
would refuse, with AWS's codes and words."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path
from unittest import mock

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from multidict import CIMultiDict, CIMultiDictProxy

from dockyard.api.auth import Credential, authenticate, load_credentials, verify
from dockyard.errors import AwsError

KEYS = {"AKIDEXAMPLE": Credential("secret-one"), "AKIDOTHER": Credential("secret-two"),
        "ASIATEMPORARY": Credential("secret-three", "the-session-token")}
NOW = dt.datetime(2026, 11, 29, 12, 0, 0, tzinfo=dt.timezone.utc)


def signed(body: bytes = b'{"MaxResults": 3}', *, key: str = "AKIDEXAMPLE", secret: str = "secret-one",
           service: str = "sagemaker", region: str = "eu-west-1", at: dt.datetime = NOW,
           path: str = "/", extra: dict[str, str] | None = None, token: str | None = None) -> tuple[str, CIMultiDictProxy[str], bytes]:
    request = AWSRequest(method="POST", url=f"http://127.0.0.1:8780{path}", data=body,
                         headers={"X-Amz-Target": "SageMaker.ListModels", "Content-Type": "application/x-amz-json-1.1",
                                  "Host": "127.0.0.1:8780", **(extra or {})})
    with mock.patch("botocore.auth.get_current_datetime", return_value=at.replace(tzinfo=None)):
        SigV4Auth(Credentials(key, secret, token), service, region).add_auth(request)
    headers = CIMultiDictProxy(CIMultiDict(request.headers.items()))
    return path, headers, body


def check(path: str, headers: CIMultiDictProxy[str], body: bytes, now: dt.datetime = NOW) -> str:
    return verify("POST", path, headers, hashlib.sha256(body).hexdigest(), KEYS, now)


def refused(path: str, headers: CIMultiDictProxy[str], body: bytes, now: dt.datetime = NOW) -> AwsError:
    with pytest.raises(AwsError) as info:
        check(path, headers, body, now)
    return info.value


def test_a_botocore_signature_verifies_in_any_region_and_names_its_key() -> None:
    assert check(*signed()) == "AKIDEXAMPLE"
    assert check(*signed(key="AKIDOTHER", secret="secret-two", region="ap-south-1")) == "AKIDOTHER"
    path, headers, body = signed(path="/endpoints/my-endpoint/invocations?x=1")
    assert check(path, headers, body) == "AKIDEXAMPLE"


def test_a_body_changed_after_signing_is_an_invalid_signature() -> None:
    path, headers, _ = signed(b"1,2,3")
    err = refused(path, headers, b"1,2,4")
    assert (err.code, err.status) == ("InvalidSignatureException", 403)
    assert err.message.startswith("The request signature we calculated does not match the signature you provided.")


def test_a_signed_header_changed_after_signing_is_an_invalid_signature() -> None:
    path, headers, body = signed()
    tampered = CIMultiDict(headers)
    tampered["X-Amz-Target"] = "SageMaker.DeleteModel"
    assert refused(path, CIMultiDictProxy(tampered), body).code == "InvalidSignatureException"


def test_the_wrong_secret_is_an_invalid_signature() -> None:
    err = refused(*signed(secret="not-the-secret"))
    assert (err.code, err.status) == ("InvalidSignatureException", 403)


def test_an_unknown_key_is_unrecognized() -> None:
    err = refused(*signed(key="AKIDNOBODY"))
    assert (err.code, err.status, err.message) == (
        "UnrecognizedClientException", 403, "The security token included in the request is invalid.")


def test_a_key_with_a_session_token_needs_that_token_and_a_key_without_one_ignores_it() -> None:
    assert check(*signed(key="ASIATEMPORARY", secret="secret-three", token="the-session-token")) == "ASIATEMPORARY"
    for token in (None, "another-token", ""):
        err = refused(*signed(key="ASIATEMPORARY", secret="secret-three", token=token))
        assert (err.code, err.status, err.message) == (
            "UnrecognizedClientException", 403, "The security token included in the request is invalid."), token
    assert check(*signed(token="any-token")) == "AKIDEXAMPLE"


def test_authenticate_checks_secret_and_any_session_token() -> None:
    assert authenticate(KEYS, "AKIDEXAMPLE", "secret-one")
    assert authenticate(KEYS, "AKIDEXAMPLE", "secret-one", "ignored: this key has no token")
    assert not authenticate(KEYS, "AKIDEXAMPLE", "secret-two")
    assert not authenticate(KEYS, "AKIDNOBODY", "secret-one")
    assert not authenticate(KEYS, "AKIDEXAMPLE", "")
    assert authenticate(KEYS, "ASIATEMPORARY", "secret-three", "the-session-token")
    assert not authenticate(KEYS, "ASIATEMPORARY", "secret-three")
    assert not authenticate(KEYS, "ASIATEMPORARY", "secret-three", "another-token")
    assert not authenticate(KEYS, "AKIDEXAMPLE", "sécret")  # not ASCII: refused, not a TypeError


def test_no_authorization_is_a_missing_token() -> None:
    path, headers, body = signed()
    bare = CIMultiDict(headers)
    del bare["Authorization"]
    err = refused(path, CIMultiDictProxy(bare), body)
    assert (err.code, err.status, err.message) == ("MissingAuthenticationTokenException", 403, "Missing Authentication Token")


def test_a_signature_older_or_newer_than_five_minutes_is_refused() -> None:
    old = refused(*signed(at=NOW - dt.timedelta(minutes=6)))
    assert old.code == "InvalidSignatureException"
    assert old.message == "Signature expired: 20261129T115400Z is now earlier than 20261129T115500Z (20261129T120000Z - 5 min.)"
    assert refused(*signed(at=NOW + dt.timedelta(minutes=6))).message.startswith("Signature not yet current: 20261129T120600Z")
    assert check(*signed(at=NOW - dt.timedelta(minutes=4))) == "AKIDEXAMPLE"


def test_a_signature_for_another_service_is_refused() -> None:
    err = refused(*signed(service="s3"))
    assert (err.code, err.message) == ("InvalidSignatureException", "Credential should be scoped to correct service: 'sagemaker'.")


def test_a_content_sha256_header_must_match_the_body() -> None:
    path, headers, body = signed(b"abc", extra={"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
    assert "x-amz-content-sha256" in refused(path, headers, body).message
    good = hashlib.sha256(b"abc").hexdigest()
    assert check(*signed(b"abc", extra={"X-Amz-Content-SHA256": good})) == "AKIDEXAMPLE"


def test_a_malformed_authorization_header_is_an_incomplete_signature() -> None:
    path, headers, body = signed()
    broken = CIMultiDict(headers)
    broken["Authorization"] = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261129/eu-west-1/sagemaker/aws4_request"
    err = refused(path, CIMultiDictProxy(broken), body)
    assert (err.code, err.status) == ("IncompleteSignatureException", 400)
    assert "requires 'SignedHeaders' parameter" in err.message and "requires 'Signature' parameter" in err.message


def test_credentials_file_is_an_ini_of_key_pairs(tmp_path: Path) -> None:
    path = tmp_path / "credentials"
    path.write_text("[ci]\naws_access_key_id = AKID1\naws_secret_access_key = s%cret=1\n\n"
                    "[alice]\naws_access_key_id=AKID2\naws_secret_access_key=two\naws_session_token = tok\n")
    assert load_credentials(path) == {"AKID1": Credential("s%cret=1"), "AKID2": Credential("two", "tok")}
    path.write_text("[ci]\naws_access_key_id = AKID1\n")
    with pytest.raises(ValueError, match=r"section \[ci\] needs aws_access_key_id and aws_secret_access_key"):
        load_credentials(path)
    path.write_text("")
    with pytest.raises(ValueError, match="holds no"):
        load_credentials(path)
    with pytest.raises(ValueError, match="cannot read credentials file"):
        load_credentials(tmp_path / "missing")


@pytest.mark.parametrize("stamp", ["", "2026-11-29T12:00:00Z", "20261329T120000Z", "20261129T120000"])
def test_a_missing_or_malformed_date_is_an_incomplete_signature(stamp: str) -> None:
    path, headers, body = signed()
    broken = CIMultiDict(headers)
    broken["X-Amz-Date"] = stamp
    err = refused(path, CIMultiDictProxy(broken), body)
    assert (err.code, err.status) == ("IncompleteSignatureException", 400)
    assert "X-Amz-Date" in err.message
