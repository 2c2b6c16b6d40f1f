"""What the console's browser tests share: Debian's Chromium (installed on first use), a real
``confstore serve`` process over a SQLite file, and a page wrapper that records everything the
browser reports (console errors, page errors, JavaScript dialogs, requests)."""

from __future__ import annotations

import asyncio
import fcntl
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Dialog, Page, Request, expect

from confstore import SQLiteConfigStore
from confstore.server import TokenFile

ROOT = Path(__file__).parents[2]
CLI = (sys.executable, "-m", "confstore.cli")
# Debian's real binary: /usr/bin/chromium is a shell wrapper that adds flags and start-up time.
CHROMIUM = Path("/usr/lib/chromium/chromium")
SCREENSHOTS = ROOT / "test-artifacts" / "console"
CONTRAST_CHECK = (Path(__file__).parent / "contrast.js").read_text()
# Form controls without a label, buttons and links without a name, for assistive technology.
UNNAMED_CHECK = """root => [...root.querySelectorAll('input, select, textarea, button, a[href]')]
  .filter(e => e.getClientRects().length > 0 && !e.closest('[hidden]'))
  .filter(e => e.matches('input, select, textarea')
    ? e.labels.length === 0 && !e.getAttribute('aria-label')
    : !(e.textContent.trim() || e.getAttribute('aria-label')))
  .map(e => e.outerHTML.slice(0, 80))"""
# Created before the server starts: name -> (role, tenants).
TOKENS = {
    "ops": ("admin", ["*"]),
    "acme-reader": ("read", ["acme"]),
    "acme-writer": ("write", ["acme"]),
}
LAPTOP = {"width": 1366, "height": 860}
PHONE = {"width": 390, "height": 844}
# Every test module runs on the session's event loop, where the one browser lives.
CONSOLE_LOOP = pytest.mark.asyncio(loop_scope="session")


def install_chromium() -> Path:
    """Debian's chromium package, installed with apt-get when missing (as root); the tests skip
    only where that cannot be done (not root, no apt-get)."""
    if CHROMIUM.exists():
        return CHROMIUM
    # pytest-xdist workers may all get here: one installs while the others wait on the lock.
    with (Path(tempfile.gettempdir()) / "confstore-console-chromium.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _apt_install_chromium()


def _apt_install_chromium() -> Path:
    if CHROMIUM.exists():
        return CHROMIUM
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        pytest.skip(
            f"the console tests need Debian's chromium package ({CHROMIUM} is missing, and "
            "installing it needs apt-get as root): run `apt-get install chromium` once"
        )
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # Other engineers' runs may hold the dpkg lock for a while: wait for it instead of failing.
    lock = ["-o", "DPkg::Lock::Timeout=300"]
    for command in (
        ["apt-get", *lock, "update", "-q"],
        ["apt-get", *lock, "install", "-y", "-q", "--no-install-recommends", "chromium"],
    ):
        result = subprocess.run(
            command, env=environment, capture_output=True, text=True, check=False, timeout=900
        )
        if result.returncode != 0:
            pytest.fail(f"{' '.join(command)} failed:\n{result.stdout[-3000:]}{result.stderr}")
    assert CHROMIUM.exists(), f"apt-get installed chromium, but {CHROMIUM} is missing"
    return CHROMIUM


@dataclass
class Server:
    """A ``confstore serve`` process and what it serves."""

    url: str
    database: Path
    tokens: dict[str, str]
    tokens_path: Path
    process: subprocess.Popen[str]

    @property
    def store_url(self) -> str:
        return f"sqlite:///{self.database}"

    def store(self) -> SQLiteConfigStore:
        """The served SQLite file, opened by this process (another writer than the server)."""
        return SQLiteConfigStore(str(self.database))

    def cli(self, *arguments: str) -> subprocess.CompletedProcess[str]:
        """The ``confstore`` command in a process of its own, on the served file and tokens."""
        return subprocess.run(
            [*CLI, "--url", self.store_url, *arguments],
            env={**os.environ, "CONFSTORE_TOKENS": str(self.tokens_path)},
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )


@contextmanager
def serve(directory: Path) -> Iterator[Server]:
    """``confstore serve`` on a free port of 127.0.0.1; stopped by its pid (SIGTERM)."""
    token_file = TokenFile(directory / "tokens.json")
    tokens = {
        name: token_file.create(name, role, tenants)[0] for name, (role, tenants) in TOKENS.items()
    }
    database = directory / "console.db"
    log = (directory / "serve.log").open("w")
    process = subprocess.Popen(
        [
            *CLI,
            "--url",
            f"sqlite:///{database}",
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--tokens",
            str(token_file.path),
        ],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        cwd=directory,
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 60)
        line = process.stdout.readline() if ready else ""
        assert line.startswith("confstore: serving on http://127.0.0.1:"), (
            line + (directory / "serve.log").read_text()
        )
        yield Server(line.split()[-1] + "/", database, tokens, token_file.path, process)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
        log.close()


@dataclass
class ConsolePage:
    """A browser page on the console, with everything the browser reported."""

    page: Page
    server: Server
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    expected_errors: list[str] = field(default_factory=list)

    def watch(self) -> None:
        def on_console(message: Any) -> None:
            if message.type == "error":
                self.console_errors.append(message.text)

        async def on_dialog(dialog: Dialog) -> None:
            self.dialogs.append(f"{dialog.type}: {dialog.message}")
            await dialog.dismiss()

        self.page.on("console", on_console)
        self.page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        self.page.on("dialog", on_dialog)
        self.page.on("request", lambda request: self.requests.append(request))

    def expect_error(self, status: int) -> None:
        """A console error the test causes on purpose: a resource answered with ``status``."""
        self.expected_errors.append(f"the server responded with a status of {status}")

    def unexpected_errors(self) -> list[str]:
        return self.page_errors + [
            text
            for text in self.console_errors
            if not any(expected in text for expected in self.expected_errors)
        ]

    async def open(self, route: str = "") -> None:
        await self.page.goto(self.server.url + route)

    async def sign_in(self, token_name: str = "ops") -> None:
        page = self.page
        if not page.url.startswith(self.server.url):
            await self.open()
        await page.get_by_label("API token").fill(self.server.tokens[token_name])
        await page.get_by_role("button", name="Sign in").click()
        await self.wait_until_shown()

    async def wait_until_shown(self) -> None:
        """Live updates are on and the route's data is on screen (the workspace is no longer busy)."""
        await self.page.locator("#live-status.live-live").wait_for()
        await self.page.locator('#workspace[aria-busy="false"]').wait_for()

    async def expect_signed_out(self, message: str) -> None:
        """The sign-in form is back with ``message``, and no token is left in the tab."""
        await expect(self.page.locator("#signin-error")).to_contain_text(message)
        await expect(self.page.locator("#workspace")).to_be_hidden()
        await expect(self.page.get_by_label("API token")).to_be_focused()
        assert await self.page.evaluate("sessionStorage.length") == 0

    async def accessibility_problems(self, selector: str = "body") -> list[str]:
        """Text under AA contrast, and controls without a label or name, under ``selector``."""
        root = self.page.locator(selector)
        contrast: list[str] = await root.evaluate(CONTRAST_CHECK)
        unnamed: list[str] = await root.evaluate(UNNAMED_CHECK)
        return contrast + [f"no label or name: {html}" for html in unnamed]

    async def overflow(self) -> int:
        """How many pixels the page is wider than the window (0: no sideways scrolling)."""
        width: int = await self.page.evaluate(
            "document.documentElement.scrollWidth - window.innerWidth"
        )
        return width

    async def go(self, route: str) -> None:
        """Follow an in-console link, as a click would (no reload)."""
        await self.page.evaluate("route => { window.location.hash = route; }", route)

    async def screenshot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        await self.page.screenshot(path=str(path))
        return path


async def seed(
    server: Server, tenant: str, writes: list[tuple[str, str, str, dict[str, Any]]], **audit: Any
) -> None:
    """Write (scope, service, key, value) versions for ``tenant`` straight into the store."""
    async with server.store() as store:
        for scope, service, key, value in writes:
            await store.set_config(tenant, scope, service, key, value, **audit)


OpenConsole = Callable[..., Awaitable[ConsolePage]]


async def wait_until(
    condition: Callable[[], bool], timeout: float = 10.0, interval: float = 0.05
) -> None:
    """Until ``condition()`` (a blocking check, run off the loop) holds, checked every
    ``interval`` s: for a change the server announces nowhere, such as its rereading of the
    tokens file."""
    checks = int(timeout / interval)
    for _ in range(checks):
        if await asyncio.to_thread(condition):
            return
        await asyncio.sleep(interval)
    raise AssertionError(f"not true within {timeout:g} s")
