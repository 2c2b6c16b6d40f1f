"""Both HTTP plugins are built on confstore.docstore, and what they import at run time is the
client alone (the emulators are test code)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from confstore import open_store
from confstore.docstore import DEFAULT_CHANGE_WINDOW, DocumentConfigStore

URLS = ["vespa+http://127.0.0.1:1", "elasticsearch+http://127.0.0.1:1"]


@pytest.mark.parametrize("url", URLS)
def test_the_http_plugins_run_the_document_protocol_with_its_default_window(url: str) -> None:
    store = open_store(url)
    assert isinstance(store, DocumentConfigStore)
    assert store.change_window == DEFAULT_CHANGE_WINDOW


def test_using_the_plugins_imports_no_emulator_code() -> None:
    program = (
        "import sys, confstore_vespa, confstore_elasticsearch\n"
        "from confstore import open_store\n"
        f"stores = [open_store(url) for url in {URLS!r}]\n"
        "test_code = ('.emulator', 'confstore.emulation', 'aiohttp.web', 'pytest')\n"
        "print(sorted(m for m in sys.modules if any(part in m for part in test_code)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"
