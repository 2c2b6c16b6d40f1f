"""docs/writing-a-backend.md builds a package that installs and passes the conformance suite.

The package is installed into a throwaway virtual environment layered on this one (so it sees
confstore, pytest and hatchling without a download), never into the environment running the tests:
its entry point stays invisible to every other test.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "writing-a-backend.md"
CODE_BLOCK = re.compile(
    r'^```[\w-]+ title="(?P<path>[^"]+)"\n(?P<code>.*?)^```$', re.MULTILINE | re.DOTALL
)
EXPECTED_FILES = {
    "pyproject.toml",
    "src/confstore_example/__init__.py",
    "src/confstore_example/plugin.py",
    "src/confstore_example/store.py",
    "src/confstore_example/documents.py",
    "tests/conftest.py",
    "tests/test_conformance.py",
    "tests/test_document_store.py",
}

pytestmark = pytest.mark.slow


def extract_package(destination: Path) -> set[str]:
    """Write every titled code block of the doc under ``destination``; return the paths."""
    written = set()
    for block in CODE_BLOCK.finditer(DOC.read_text(encoding="utf-8")):
        path = destination / block["path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(block["code"], encoding="utf-8")
        written.add(block["path"])
    return written


def layered_venv(location: Path) -> Path:
    """A venv without pip whose interpreter also sees this environment's packages.

    ``--system-site-packages`` would expose the base interpreter's packages, not this venv's,
    so a .pth file adds this environment's site-packages (running its .pth files too).
    """
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(location)], check=True, timeout=120
    )
    python = location / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.strip()
    parent = sysconfig.get_paths()["purelib"]
    Path(purelib, "_parent_environment.pth").write_text(
        f"import site; site.addsitedir({parent!r})\n", encoding="utf-8"
    )
    return python


def test_the_doc_holds_a_complete_package(tmp_path: Path) -> None:
    assert extract_package(tmp_path) == EXPECTED_FILES
    pyproject = (tmp_path / "pyproject.toml").read_text(encoding="utf-8")
    assert '[project.entry-points.confstore]\nexample = "confstore_example.plugin"' in pyproject


def test_the_doc_package_installs_passes_the_suite_and_confstore_conformance(
    tmp_path: Path,
) -> None:
    package = tmp_path / "confstore-example"
    extract_package(package)
    python = layered_venv(tmp_path / "venv")
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    pip_install = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    install = subprocess.run(
        [*pip_install, "--no-deps", "--no-build-isolation", "--no-index", str(package)],
        capture_output=True,
        text=True,
        timeout=300,
        env=environment,
        check=False,
    )
    assert install.returncode == 0, install.stdout + install.stderr

    def run_python(*arguments: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(python), *arguments],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=600,
            env=environment,
            check=False,
        )

    run = run_python("-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs", cwd=package)
    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-3000:]
    summary = run.stdout.strip().splitlines()[-1]
    passed = int(re.search(r"(\d+) passed", summary)[1])  # type: ignore[index]
    assert passed >= 160, summary
    assert "failed" not in summary
    assert "error" not in summary
    certify = run_python(
        *("-m", "confstore.cli", "conformance", "example://certified", "--json"),
        *("-k", "test_first_write_is_version_1 or test_peer_reads_a_write"),
        cwd=tmp_path,
    )
    assert certify.returncode == 0, certify.stdout + certify.stderr[-3000:]
    report = json.loads(certify.stdout)
    assert report["verdict"].startswith("PASS: ExampleConfigStore meets the confstore contract")
    assert report["totals"]["passed"] == 2
