"""The errors AWS Batch answers with, as botocore's `batch` model and AWS's front door define them.

botocore reads the code from the `x-amzn-ErrorType` header (the part before any ':') and the message
from the body's `message`, so both are written."""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass
class AwsError(Exception):
    code: str
    message: str
    status: int

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def body(self) -> bytes:
        return json.dumps({"__type": self.code, "message": self.message}).encode()

    def headers(self) -> dict[str, str]:
        return {"x-amzn-ErrorType": self.code, "Content-Type": "application/json"}


def client_error(message: str) -> AwsError:
    """The request is wrong (a missing or bad field, an unknown object): HTTP 400, as in the model."""
    return AwsError("ClientException", message, 400)


def server_error(message: str) -> AwsError:
    return AwsError("ServerException", message, 500)


# Authentication, answered before any operation runs (AWS's words, HTTP 403).
def missing_token() -> AwsError:
    return AwsError("MissingAuthenticationTokenException", "Missing Authentication Token", 403)


def unrecognized_client() -> AwsError:
    return AwsError("UnrecognizedClientException", "The security token included in the request is invalid.", 403)


def invalid_signature(message: str | None = None) -> AwsError:
    return AwsError("InvalidSignatureException", message or (
        "The request signature we calculated does not match the signature you provided. Check your AWS "
        "Secret Access Key and signing method. Consult the service documentation for details."), 403)


def incomplete_signature(message: str) -> AwsError:
    return AwsError("IncompleteSignatureException", message, 400)


def access_denied(message: str) -> AwsError:
    return AwsError("AccessDeniedException", message, 403)


def unknown_operation(method: str, path: str) -> AwsError:
    return AwsError("UnknownOperationException", f"No AWS Batch operation is served at {method} {path}", 404)
