"""SigV4 verification: the signature is computed again with botocore's own signer from the signed
headers and the body, and compared in constant time. No crypto of our own."""

from __future__ import annotations

import datetime
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from botocore.auth import SIGV4_TIMESTAMP, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from barge.awsapi.errors import incomplete_signature, invalid_signature, missing_token, unrecognized_client

SERVICE = "batch"
ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW = datetime.timedelta(minutes=15)  # AWS's window, either side of now
_FIELD = re.compile(r"(Credential|SignedHeaders|Signature)=([^,\s]+)")


@dataclass(frozen=True)
class Authorization:
    access_key: str
    date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str


@dataclass(frozen=True)
class Signer:
    """Who signed: the key, and the region they signed for (the region of every ARN answered)."""
    access_key: str
    region: str


def parse_authorization(value: str) -> Authorization:
    if not value.startswith(ALGORITHM + " "):
        raise incomplete_signature(f"Authorization header requires the {ALGORITHM} algorithm.")
    fields = dict(_FIELD.findall(value[len(ALGORITHM):]))
    missing = [f for f in ("Credential", "SignedHeaders", "Signature") if f not in fields]
    if missing:
        raise incomplete_signature(f"Authorization header requires '{missing[0]}' parameter.")
    scope = fields["Credential"].split("/")
    if len(scope) != 5 or scope[4] != "aws4_request":
        raise incomplete_signature("Credential should be scoped to a valid region, service and aws4_request.")
    return Authorization(scope[0], scope[1], scope[2], scope[3], tuple(fields["SignedHeaders"].split(";")),
                         fields["Signature"])


def verify(method: str, raw_path: str, headers: Mapping[str, str], body: bytes,
           secret_of: Callable[[str], str | None], now: datetime.datetime) -> Signer:
    """The signer of a request, or the AwsError AWS answers an unsigned, expired or badly signed one with."""
    lower = {k.lower(): v for k, v in headers.items()}
    if "authorization" not in lower:
        raise missing_token()
    auth = parse_authorization(lower["authorization"])
    if auth.service != SERVICE:
        raise invalid_signature(f"Credential should be scoped to correct service: '{SERVICE}'.")
    secret = secret_of(auth.access_key)
    if secret is None:
        raise unrecognized_client()
    stamp = lower.get("x-amz-date", "")
    try:
        signed_at = datetime.datetime.strptime(stamp, SIGV4_TIMESTAMP).replace(tzinfo=datetime.UTC)
    except ValueError:
        raise incomplete_signature("Authorization header requires existence of either a 'X-Amz-Date' or a "
                                   "'Date' header.") from None
    if not stamp.startswith(auth.date):
        raise invalid_signature("Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
                                "from HTTP.")
    if abs(now - signed_at) > MAX_SKEW:
        raise invalid_signature(f"Signature expired: {stamp} is now earlier than "
                                f"{(now - MAX_SKEW).strftime(SIGV4_TIMESTAMP)} "
                                f"({now.strftime(SIGV4_TIMESTAMP)} - 15 min.)")
    if "host" not in auth.signed_headers:
        raise invalid_signature("'Host' must be a signed header.")
    try:
        signed = {name: lower[name] for name in auth.signed_headers}
    except KeyError as exc:
        raise invalid_signature(f"Signed header '{exc.args[0]}' is missing from the request.") from None
    declared = lower.get("x-amz-content-sha256")
    if declared is not None and declared != hashlib.sha256(body).hexdigest():
        # botocore would sign the declared hash instead of the body: a body must be the one signed
        raise invalid_signature("The provided 'x-amz-content-sha256' header does not match what was computed.")
    expected = _signature(method, raw_path, signed, body, auth, secret, stamp)
    if not hmac.compare_digest(expected, auth.signature):
        raise invalid_signature()
    return Signer(auth.access_key, auth.region)


def _signature(method: str, raw_path: str, signed: dict[str, str], body: bytes, auth: Authorization,
               secret: str, stamp: str) -> str:
    request = AWSRequest(method=method, url=f"http://{signed['host']}{raw_path}", headers=signed, data=body)
    request.context["timestamp"] = stamp
    signer = SigV4Auth(Credentials(auth.access_key, secret), auth.service, auth.region)
    canonical = signer.canonical_request(request)
    return str(signer.signature(signer.string_to_sign(request, canonical), request))

