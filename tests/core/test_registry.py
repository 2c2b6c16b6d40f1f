"""Backend discovery: built-ins, explicit registration, entry points and helpful errors."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from confstore import (
    InvalidConfigError,
    MemoryConfigStore,
    NoSuchBackendError,
    StoreURL,
    open_store,
    register_backend,
)
from confstore._registry import backend_registry


def test_memory_scheme_is_built_in() -> None:
    assert isinstance(open_store("memory://"), MemoryConfigStore)


def test_named_memory_stores_share_storage() -> None:
    first = open_store("memory://registry-shared")
    second = open_store("memory://registry-shared")
    assert isinstance(first, MemoryConfigStore)
    assert isinstance(second, MemoryConfigStore)
    assert first._data is second._data
    assert open_store("memory://")._data is not open_store("memory://")._data  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("url", "package"),
    [
        ("vespa+http://localhost:8080", "confstore-vespa"),
        ("elasticsearch+https://localhost:9200", "confstore-elasticsearch"),
        ("opensearch+http://localhost:9200", "confstore-elasticsearch"),
    ],
)
def test_known_plugin_scheme_names_the_package(url: str, package: str) -> None:
    if StoreURL.parse(url).scheme in backend_registry.schemes():
        pytest.skip(f"{package} is installed here")
    with pytest.raises(NoSuchBackendError) as caught:
        open_store(url)
    assert caught.value.package == package
    assert f"pip install {package}" in str(caught.value)
    assert isinstance(caught.value, LookupError)


def test_unknown_scheme_lists_the_registered_ones() -> None:
    with pytest.raises(NoSuchBackendError, match=r"registered schemes: .*memory.*sqlite"):
        open_store("nosuch://x")


def test_unknown_option_is_rejected() -> None:
    with pytest.raises(InvalidConfigError, match="unknown option"):
        open_store("memory://?colour=blue")


def test_bad_option_value_is_rejected() -> None:
    with pytest.raises(InvalidConfigError, match="max_value_bytes"):
        open_store("memory://", max_value_bytes="lots")


def test_keyword_options_win_over_url_options() -> None:
    store = open_store("memory://?max_value_bytes=10", max_value_bytes=20)
    assert store.max_value_bytes == 20


def test_explicit_registration_serves_a_new_scheme() -> None:
    def factory(url: StoreURL, /, **options: Any) -> MemoryConfigStore:
        return MemoryConfigStore(name=f"explicit-{url.host}")

    register_backend("explicit-test", factory)
    try:
        store = open_store("explicit-test://h1")
        assert isinstance(store, MemoryConfigStore)
        assert store.name == "explicit-h1"
        with pytest.raises(ValueError, match="already registered"):
            register_backend("explicit-test", factory)
    finally:
        backend_registry.unregister("explicit-test")


def test_a_plugin_is_found_through_the_confstore_entry_point(tmp_path: Path) -> None:
    """A real distribution on sys.path, found by pluggy in a fresh interpreter."""
    (tmp_path / "fakestore_plugin.py").write_text(
        textwrap.dedent(
            """
            from confstore import MemoryConfigStore
            from confstore.hookspecs import hookimpl

            @hookimpl
            def confstore_register_backends(register):
                register("fake", lambda url, **options: MemoryConfigStore(name="fake"), package="fakestore")
            """
        )
    )
    dist_info = tmp_path / "fakestore-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: fakestore\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text("[confstore]\nfake = fakestore_plugin\n")
    code = "import confstore; s = confstore.open_store('fake://x'); print(type(s).__name__, s.name)"
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "MemoryConfigStore fake"


def test_a_misspelt_hook_in_a_plugin_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "typo_plugin.py").write_text(
        "from confstore.hookspecs import hookimpl\n"
        "@hookimpl\n"
        "def confstore_register_backend(register):\n"
        "    pass\n"
    )
    dist_info = tmp_path / "typo-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: typo\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text("[confstore]\ntypo = typo_plugin\n")
    result = subprocess.run(
        [sys.executable, "-c", "import confstore; confstore.open_store('memory://')"],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert result.returncode != 0
    assert "confstore_register_backend" in result.stderr
