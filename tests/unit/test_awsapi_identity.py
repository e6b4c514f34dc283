"""Who calls: the credentials file, and the impersonation headers the API server is called with."""

from __future__ import annotations

import kubernetes
import pytest

from barge.awsapi.identity import CredentialsError, Identity, parse_credentials
from barge.awsapi.kubeapi import KubeApi

pytestmark = pytest.mark.unit


def test_the_caller_is_impersonated_with_each_group_on_its_own_header() -> None:
    config = kubernetes.client.Configuration()
    config.api_key = {"authorization": "token"}
    config.api_key_prefix = {"authorization": "Bearer"}
    headers = KubeApi(config)._headers(Identity("AKID", "s", "alice", ("a", "b")), "application/json")
    assert headers["Impersonate-User"] == "alice"
    assert headers.getall("Impersonate-Group") == ["a", "b"]
    assert headers["Authorization"] == "Bearer token"


def test_the_credentials_file_names_the_bad_entry() -> None:
    good = parse_credentials([{"accessKeyId": "A", "secretAccessKey": "s", "username": "u", "groups": ["g"]}])
    assert good["A"].groups == ("g",)
    for data, named in (([{"accessKeyId": "A", "username": "u"}], "[0].secretAccessKey"),
                        ([{"accessKeyId": "A", "secretAccessKey": "s", "username": "u", "role": "x"}], "'role'"),
                        ({"accessKeyId": "A"}, "non-empty YAML list")):
        with pytest.raises(CredentialsError, match=named.replace("[", r"\[").replace("]", r"\]")):
            parse_credentials(data)
