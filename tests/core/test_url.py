"""StoreURL parsing and rendering."""

from __future__ import annotations

import pytest

from confstore import (
    ConfigManager,
    InvalidConfigError,
    StoreURL,
    default_store_url,
    get_config_manager,
    open_store,
)


def test_sqlite_relative_and_absolute_paths() -> None:
    assert StoreURL.parse("sqlite:///data/config/config.db").path == "data/config/config.db"
    assert StoreURL.parse("sqlite:////var/lib/c.db").path == "/var/lib/c.db"


def test_sqlite_memory() -> None:
    url = StoreURL.parse("sqlite://:memory:")
    assert url.host == ":memory:"
    assert url.path == ""


def test_http_backend_parts() -> None:
    url = StoreURL.parse("elasticsearch+https://user:p%40ss@es.local:9200?index=cfg&timeout=5")
    assert (url.backend, url.transport) == ("elasticsearch", "https")
    assert (url.host, url.port, url.username, url.password) == ("es.local", 9200, "user", "p@ss")
    assert dict(url.options) == {"index": "cfg", "timeout": "5"}
    assert url.base_url == "https://es.local:9200"


def test_password_is_hidden_in_repr_and_str() -> None:
    url = StoreURL.parse("opensearch+http://admin:hunter2@localhost:9200")
    assert "hunter2" not in repr(url)
    assert "hunter2" not in str(url)
    assert "hunter2" in url.render(hide_password=False)


def test_scheme_is_case_insensitive() -> None:
    assert StoreURL.parse("VESPA+HTTP://h:8080").scheme == "vespa+http"


@pytest.mark.parametrize(
    "text", ["", "sqlite", "no-scheme/path", "://x", "bad scheme://x", "vespa+http://h:notaport"]
)
def test_malformed_urls_raise_invalid_config(text: str) -> None:
    with pytest.raises(InvalidConfigError):
        StoreURL.parse(text)


def test_default_url_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONFSTORE_URL", raising=False)
    assert default_store_url() == "sqlite:///data/config/config.db"
    monkeypatch.setenv("CONFSTORE_URL", "memory://x")
    assert default_store_url() == "memory://x"


def test_several_hosts_are_kept_in_order() -> None:
    url = StoreURL.parse("etcd+https://u:p@h1:2379,H2,[::1]:2381?prefix=a/")
    assert url.hosts == (("h1", 2379), ("h2", None), ("::1", 2381))
    assert (url.host, url.port, url.username, url.password) == ("h1", 2379, "u", "p")
    assert url.render(hide_password=False) == "etcd+https://u:p@h1:2379,h2,[::1]:2381?prefix=a%2F"
    assert StoreURL.parse(url.render(hide_password=False)) == url


def test_one_host_has_no_host_list() -> None:
    assert StoreURL.parse("vespa+http://h:8080").hosts == ()


@pytest.mark.parametrize(
    "text", ["etcd+http://h1:2379,,h2", "etcd+http://h1,h2:port", "etcd+http://,h2"]
)
def test_malformed_host_lists_raise_invalid_config(text: str) -> None:
    with pytest.raises(InvalidConfigError):
        StoreURL.parse(text)


@pytest.mark.parametrize("url", ["", "   "])
def test_an_empty_url_is_an_error_not_the_default_store(url: str) -> None:
    with pytest.raises(InvalidConfigError, match="empty"):
        open_store(url)
    with pytest.raises(InvalidConfigError, match="empty"):
        ConfigManager(url=url)


def test_an_empty_confstore_url_variable_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONFSTORE_URL", "")
    with pytest.raises(InvalidConfigError, match=r"\$CONFSTORE_URL is set but empty"):
        default_store_url()
    with pytest.raises(InvalidConfigError, match=r"\$CONFSTORE_URL is set but empty"):
        open_store()
    with pytest.raises(InvalidConfigError, match=r"\$CONFSTORE_URL is set but empty"):
        ConfigManager()
    with pytest.raises(InvalidConfigError, match=r"\$CONFSTORE_URL is set but empty"):
        get_config_manager()
