"""SigV4 verification: requests signed by botocore's own signer are accepted; unsigned, expired,
tampered or unknown-key requests get AWS's error codes."""

from __future__ import annotations

import datetime
from unittest import mock

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from barge.awsapi.errors import AwsError
from barge.awsapi.sigv4 import verify

pytestmark = pytest.mark.unit
NOW = datetime.datetime(2026, 11, 30, 12, 0, 0, tzinfo=datetime.UTC)
SECRETS = {"AKID": "secret"}
HOST = "127.0.0.1:8787"


def signed(path: str = "/v1/describejobs", body: bytes = b'{"jobs": []}', key: str = "AKID", secret: str = "secret",
           service: str = "batch", region: str = "eu-west-1", at: datetime.datetime = NOW,
           method: str = "POST") -> AWSRequest:
    request = AWSRequest(method=method, url=f"http://{HOST}{path}", data=body,
                         headers={"Content-Type": "application/json", "User-Agent": "test"})
    with mock.patch("botocore.auth.get_current_datetime", return_value=at.replace(tzinfo=None)):
        SigV4Auth(Credentials(key, secret), service, region).add_auth(request)
    request.headers["Host"] = HOST
    return request


def check(request: AWSRequest, body: bytes | None = None, path: str | None = None) -> object:
    raw_path = path or request.url.split(HOST, 1)[1]
    return verify(request.method, raw_path, dict(request.headers.items()),
                  request.body if body is None else body, SECRETS.get, NOW)


def code_of(request: AWSRequest, **kwargs: object) -> tuple[str, int]:
    with pytest.raises(AwsError) as caught:
        check(request, **kwargs)  # type: ignore[arg-type]
    return caught.value.code, caught.value.status


def test_a_request_signed_by_botocore_is_accepted_with_its_region() -> None:
    signer = check(signed(region="ap-south-1"))
    assert (signer.access_key, signer.region) == ("AKID", "ap-south-1")  # type: ignore[attr-defined]


def test_a_path_holding_an_encoded_arn_and_a_query_string_verifies() -> None:
    path = "/v1/tags/arn%3Aaws%3Abatch%3Aeu-west-1%3A000000000000%3Ajob-queue%2Fq?tagKeys=a&tagKeys=b"
    assert check(signed(path=path, body=b"", method="DELETE"))


@pytest.mark.parametrize(("change", "expected"), [
    ("body", ("InvalidSignatureException", 403)),
    ("path", ("InvalidSignatureException", 403)),
    ("secret", ("InvalidSignatureException", 403)),
    ("key", ("UnrecognizedClientException", 403)),
    ("service", ("InvalidSignatureException", 403)),
    ("old", ("InvalidSignatureException", 403)),
    ("future", ("InvalidSignatureException", 403)),
])
def test_tampered_expired_or_foreign_requests_are_refused(change: str, expected: tuple[str, int]) -> None:
    if change == "body":
        assert code_of(signed(), body=b'{"jobs": ["x"]}') == expected
    elif change == "path":
        assert code_of(signed(), path="/v1/submitjob") == expected
    elif change == "secret":
        assert code_of(signed(secret="wrong")) == expected
    elif change == "key":
        assert code_of(signed(key="OTHER")) == expected
    elif change == "service":
        assert code_of(signed(service="s3")) == expected
    else:
        skew = datetime.timedelta(minutes=16) * (-1 if change == "old" else 1)
        with pytest.raises(AwsError) as caught:
            check(signed(at=NOW + skew))
        assert (caught.value.code, caught.value.status) == expected
        assert "Signature expired" in caught.value.message


def test_a_declared_payload_hash_must_be_the_bodys() -> None:
    request = AWSRequest(method="POST", url=f"http://{HOST}/v1/describejobs", data=b'{"jobs": []}',
                         headers={"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
    with mock.patch("botocore.auth.get_current_datetime", return_value=NOW.replace(tzinfo=None)):
        SigV4Auth(Credentials("AKID", "secret"), "batch", "eu-west-1").add_auth(request)
    request.headers["Host"] = HOST
    assert code_of(request, body=b'{"jobs": ["anything"]}') == ("InvalidSignatureException", 403)


def test_within_the_fifteen_minute_window_is_accepted() -> None:
    assert check(signed(at=NOW - datetime.timedelta(minutes=14)))


def test_unsigned_and_malformed_authorization() -> None:
    request = signed()
    del request.headers["Authorization"]
    assert code_of(request) == ("MissingAuthenticationTokenException", 403)
    request.headers["Authorization"] = "AWS4-HMAC-SHA256 Credential=AKID/20261130/eu-west-1/batch/aws4_request"
    assert code_of(request) == ("IncompleteSignatureException", 400)
    request.headers.replace_header("Authorization", "Basic dXNlcjpwYXNz")
    assert code_of(request) == ("IncompleteSignatureException", 400)

