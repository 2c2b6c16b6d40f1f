"""Secrets are masked wherever confstore shows a value to people."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from confstore import ConfigEntry, ConfigScope, InvalidConfigError
from confstore._secrets import mask_secrets, refuse_masked_secrets, secret_name_paths

NOW = datetime(2026, 1, 1, tzinfo=UTC)
VALUE = {
    "llm_api_key": "sk-live-123",
    "db": {"password": "hunter2", "port": 5432},
    "accounts": [{"access_token": "tok-1", "max_tokens": 100}],
    "unset_secret": None,
}


def test_keys_named_like_secrets_are_masked_at_any_depth() -> None:
    assert mask_secrets(VALUE) == {
        "llm_api_key": "***",
        "db": {"password": "***", "port": 5432},
        "accounts": [{"access_token": "***", "max_tokens": 100}],
        "unset_secret": None,
    }


def test_explicit_secret_paths_are_masked_whatever_their_name() -> None:
    assert mask_secrets({"plain": "x", "inner": {"plain": "y"}}, {"inner.plain"}) == {
        "plain": "x",
        "inner": {"plain": "***"},
    }


def test_secret_name_paths_lists_where_secrets_are() -> None:
    assert sorted(secret_name_paths(VALUE)) == [
        "accounts[0].access_token",
        "db.password",
        "llm_api_key",
        "unset_secret",
    ]


def test_writing_the_mask_back_as_a_secret_is_refused() -> None:
    with pytest.raises(InvalidConfigError) as caught:
        refuse_masked_secrets({"db": {"password": "***"}})
    assert caught.value.field == "db.password"


def test_config_entry_repr_masks_secrets_but_keeps_the_value_intact() -> None:
    entry = ConfigEntry("t", ConfigScope.SYSTEM, "s", "k", VALUE, 1, NOW, NOW)
    for text in (repr(entry), str(entry), f"{entry}"):
        assert "sk-live-123" not in text
        assert "hunter2" not in text
        assert "tok-1" not in text
        assert "max_tokens': 100" in text
    assert entry.config_value["llm_api_key"] == "sk-live-123"


@pytest.mark.parametrize(
    "name",
    [
        "private_key",
        "privateKey",
        "ssh-private-key",
        "tls.private.key",
        "credentials",
        "aws_credential",
        "GoogleCredentials",
        "auth",
        "basic_auth",
        "proxyAuth",
        "HTTPAuth",
        "authorization",
        "x-auth-token",
        "refreshToken",
    ],
)
def test_names_of_keys_credentials_and_auth_are_secret(name: str) -> None:
    assert mask_secrets({name: "s3cr3t"}) == {name: "***"}


@pytest.mark.parametrize("name", ["author", "authority", "auth_enabled", "oauth_url", "keyring"])
def test_names_that_only_look_alike_are_not_secret(name: str) -> None:
    assert mask_secrets({name: "shown"}) == {name: "shown"}


def test_token_lists_are_secret_but_token_counts_are_not() -> None:
    value = {"api_tokens": ["t-1", "t-2"], "tokens": {"ci": "t-3"}, "max_tokens": 512}
    assert mask_secrets(value) == {"api_tokens": "***", "tokens": "***", "max_tokens": 512}
    assert sorted(secret_name_paths(value)) == ["api_tokens", "tokens"]


def test_the_mask_anywhere_inside_a_secret_is_refused() -> None:
    with pytest.raises(InvalidConfigError) as caught:
        refuse_masked_secrets({"auth": {"user": "u", "password": "x", "keys": ["k", "***"]}})
    assert caught.value.field == "auth.keys[1]"
    with pytest.raises(InvalidConfigError):
        refuse_masked_secrets({"access_tokens": ["**********"]})
    refuse_masked_secrets({"comment": "***", "max_tokens": 3})


def test_the_mask_at_a_typed_secret_path_is_refused_whatever_its_name() -> None:
    with pytest.raises(InvalidConfigError) as caught:
        refuse_masked_secrets({"module": {"dsn": "***"}}, {"module.dsn"})
    assert caught.value.field == "module.dsn"
