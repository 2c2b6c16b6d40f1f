"""Backend discovery: built-ins, explicit registration, entry points and helpful errors."""

from __future__ import annotations

import importlib.util
import json
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


def test_a_scheme_of_the_same_family_is_suggested() -> None:
    if "vespa+http" not in backend_registry.schemes():
        pytest.skip("confstore-vespa is not installed here")
    with pytest.raises(NoSuchBackendError, match=r"did you mean vespa\+http or vespa\+https\?"):
        open_store("vespa://localhost:8080")


@pytest.mark.parametrize(
    ("url", "package"),
    [
        ("etcd+http://h1:2379", "confstore-etcd"),
        ("postgres://db/configs", "confstore-postgres"),
        ("opensearch+https://search:9200", "confstore-elasticsearch"),
        ("vespa+http://localhost:8080", "confstore-vespa"),
        ("confstore+https://configs.internal", "confstore-remote"),
    ],
)
def test_a_first_party_scheme_without_its_plugin_names_the_package(url: str, package: str) -> None:
    backend_registry.schemes()
    family = url.split(":", 1)[0].split("+", 1)[0]
    registered = backend_registry._discovered or {}
    removed = {  # the family's schemes, as if the plugin were not installed
        scheme: registered.pop(scheme)
        for scheme in list(registered)
        if scheme.split("+", 1)[0] == family
    }
    try:
        with pytest.raises(NoSuchBackendError, match=f"pip install {package}") as raised:
            open_store(url)
        assert raised.value.package == package
    finally:
        registered.update(removed)


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


def fake_distribution(where: Path, name: str, plugin_source: str) -> None:
    """An installed distribution ``name`` whose ``confstore`` entry point is ``plugin_source``."""
    module = name.replace("-", "_") + "_plugin"
    (where / f"{module}.py").write_text(textwrap.dedent(plugin_source))
    dist_info = where / f"{name}-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(f"[confstore]\n{module} = {module}\n")


PLUGIN = """
    from confstore import MemoryConfigStore
    from confstore.hookspecs import hookimpl

    def open_store(url, **options):
        import {driver}  # what the store needs; missing here
        return MemoryConfigStore()

    @hookimpl
    def confstore_register_backends(register):
        for scheme in {schemes}:
            register(scheme, {factory}, package="{package}")
"""

CHECKS = """
import confstore
from confstore import MemoryConfigStore, register_backend

register_backend("in-process", lambda url, **options: MemoryConfigStore())
for attempt in range(2):
    try:
        confstore.open_store("shared://x")
    except confstore.AmbiguousBackendError as error:
        print("ambiguous", sorted(error.packages), error)
for url in ("alpha://", "in-process://", "memory://", "sqlite://:memory:"):
    print("opened", type(confstore.open_store(url)).__name__)
try:
    confstore.open_store("needs-driver://x")
except confstore.NoSuchBackendError as error:
    print("missing", error.package, error)
"""


def test_plugins_that_clash_or_cannot_load_get_clear_errors(tmp_path: Path) -> None:
    """Real distributions on sys.path, found by pluggy in fresh interpreters.

    Two plugins registering one scheme: one error naming both, every time, and the registry
    (other plugins, built-ins, in-process registrations) intact. A registered backend whose
    driver is missing: the install hint is the package its hook registered, for any plugin.
    """
    memory = "lambda url, **options: MemoryConfigStore()"
    fake_distribution(
        tmp_path,
        "confstore-alpha",
        PLUGIN.format(
            driver="os", schemes=("shared", "alpha"), factory=memory, package="confstore-alpha"
        ),
    )
    fake_distribution(
        tmp_path,
        "confstore-beta",
        PLUGIN.format(
            driver="no_such_driver_module",
            schemes=("shared", "needs-driver"),
            factory="open_store",
            package="confstore-beta-with-driver",
        ),
    )
    env = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-c", CHECKS], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    clash = (
        "['confstore-alpha', 'confstore-beta'] confstore backend scheme 'shared' is registered by"
    )
    assert [line.startswith(f"ambiguous {clash}") for line in lines[:2]] == [True, True]
    assert lines[2:6] == [
        "opened MemoryConfigStore",
        "opened MemoryConfigStore",
        "opened MemoryConfigStore",
        "opened SQLiteConfigStore",
    ]
    assert lines[6].startswith("missing confstore-beta-with-driver the confstore backend for")
    assert "No module named 'no_such_driver_module'" in lines[6]
    assert lines[6].endswith("install it with: pip install confstore-beta-with-driver")
    command = [sys.executable, "-m", "confstore.cli", "--url", "shared://x", "--json", "stats"]
    cli = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    assert cli.returncode == 5
    report = json.loads(cli.stderr)["error"]
    assert report["type"] == "AmbiguousBackendError"
    assert "confstore-alpha and confstore-beta" in report["message"]


# What each first-party plugin's store needs; none of it is needed to open a SQLite store.
PLUGIN_STORE_MODULES = [
    "confstore_vespa._store",
    "confstore_elasticsearch._store",
    "confstore_postgres._store",
    "confstore_etcd._store",
    "confstore_remote._store",
    "confstore.docstore",
    "asyncpg",
]
FRESH_SQLITE_PROCESS = """
import asyncio, json, sys
import confstore

async def main(path):
    async with confstore.open_store(f"sqlite:///{path}") as store:
        await store.set_config("acme", "system", "svc", "key", {"n": 1})
        assert (await store.get_config("acme", "system", "svc", "key")).config_value == {"n": 1}
    async with confstore.ConfigManager(url=f"sqlite:///{path}") as manager:
        await manager.get_system_config("acme")

asyncio.run(main(sys.argv[1]))
print(json.dumps(sorted(sys.modules)))
"""


def test_a_fresh_process_using_sqlite_imports_no_plugin_store_or_driver(tmp_path: Path) -> None:
    """Plugins are discovered (their small ``_plugin`` modules), but a store's module and its
    drivers are imported only when a URL of its scheme is opened."""
    installed = [name for name in PLUGIN_STORE_MODULES if importlib.util.find_spec(name)]
    assert installed, "no first-party plugin is installed: nothing to check"
    result = subprocess.run(
        [sys.executable, "-c", FRESH_SQLITE_PROCESS, str(tmp_path / "fresh.db")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    imported = set(json.loads(result.stdout))
    assert "confstore.backends.sqlite" in imported
    assert [name for name in installed if name in imported] == []


PLUGIN_URLS = {
    "vespa+http://localhost:8080": "VespaConfigStore",
    "vespa+https://vespa.internal:443": "VespaConfigStore",
    "elasticsearch+http://localhost:9200": "ElasticsearchConfigStore",
    "elasticsearch+https://user:pass@search:9200": "ElasticsearchConfigStore",
    "opensearch+http://search:9200": "ElasticsearchConfigStore",
    "opensearch+https://search:9200": "ElasticsearchConfigStore",
    "postgresql://app@db/configs": "PostgresConfigStore",
    "postgres://app:@db/configs": "PostgresConfigStore",
    "etcd+http://h1:2379,h2:2379": "EtcdConfigStore",
    "etcd+https://h1:2379": "EtcdConfigStore",
    "confstore+http://127.0.0.1:8080?token=t": "RemoteConfigStore",
    "confstore+https://configs.internal?token=t": "RemoteConfigStore",
}


def test_every_plugin_url_opens_in_a_fresh_process_with_its_store_imported_on_demand() -> None:
    if "vespa+http" not in backend_registry.schemes():
        pytest.skip("the first-party plugins are not installed here")
    code = (
        "import json, sys, confstore\n"
        "print(json.dumps({url: type(confstore.open_store(url)).__name__ for url in sys.argv[1:]}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, *PLUGIN_URLS], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == PLUGIN_URLS


@pytest.mark.parametrize(
    "package",
    [
        "confstore_vespa",
        "confstore_elasticsearch",
        "confstore_postgres",
        "confstore_etcd",
        "confstore_remote",
    ],
)
def test_a_plugin_package_exports_its_names_lazily(package: str) -> None:
    module = pytest.importorskip(package)
    for name in module.__all__:
        assert getattr(module, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'NoSuchName'"):
        module.NoSuchName  # noqa: B018


BROKEN_CHECKS = """
import confstore
for url in ("sqlite://:memory:", "memory://", "alpha://x"):
    print("opened", type(confstore.open_store(url)).__name__)
try:
    confstore.open_store("beta://x")
except confstore.NoSuchBackendError as error:
    print("missing", error)
"""


def test_a_plugin_that_cannot_be_imported_costs_only_its_own_schemes(tmp_path: Path) -> None:
    """One installed plugin whose module raises on import (a dependency missing) used to make
    every open_store, SQLite's too, raise that ImportError."""
    fake_distribution(
        tmp_path,
        "confstore-alpha",
        PLUGIN.format(
            driver="os",
            schemes=("alpha",),
            factory="lambda url, **options: MemoryConfigStore()",
            package="confstore-alpha",
        ),
    )
    fake_distribution(
        tmp_path,
        "confstore-beta",
        "\n    import no_such_dependency_of_beta"
        + PLUGIN.format(
            driver="os", schemes=("beta",), factory="open_store", package="confstore-beta"
        ),
    )
    env = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-c", BROKEN_CHECKS], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:3] == [
        "opened SQLiteConfigStore",
        "opened MemoryConfigStore",
        "opened MemoryConfigStore",
    ]
    assert lines[3].startswith("missing no confstore backend for scheme 'beta'")
    assert "plugin 'confstore_beta_plugin' could not be loaded" in lines[3]
    assert "No module named 'no_such_dependency_of_beta'" in lines[3]
    assert "cannot be loaded and is skipped" in result.stderr
    command = [sys.executable, "-m", "confstore.cli", "--url", "memory://", "tenants"]
    cli = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    assert cli.returncode == 0, cli.stderr
    warning = cli.stderr.splitlines()[0]  # one line, then the command's own "(nothing to show)"
    assert "(distribution confstore-beta) cannot be loaded and is skipped" in warning
    assert "Traceback" not in cli.stderr
