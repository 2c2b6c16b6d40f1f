"""Driving the installed ``confstore`` command as a subprocess, on pipes or a pseudo-terminal."""

from __future__ import annotations

import asyncio
import json
import os
import select
import signal
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from confstore import ConfigStore, open_store

T = TypeVar("T")


def confstore_command() -> list[str]:
    """The console script installed next to this interpreter, else ``python -m confstore.cli``."""
    script = Path(sys.executable).with_name("confstore")
    return [str(script)] if script.exists() else [sys.executable, "-m", "confstore.cli"]


def cli_environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CONFSTORE_URL", "NO_COLOR")}
    env.update(TERM="xterm", **extra)
    return env


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


@dataclass
class Cli:
    """Runs ``confstore --url <url> ...`` against one SQLite file per test."""

    url: str
    cwd: Path

    def __call__(self, *args: str, stdin: str | None = None, url: str | None = None) -> Result:
        argv = [*confstore_command(), "--url", url or self.url, *args]
        return self.run_raw(argv, stdin=stdin)

    def run_raw(
        self, argv: list[str], *, stdin: str | None = None, timeout: float = 60, **env: str
    ) -> Result:
        done = subprocess.run(
            argv,
            input=stdin,
            capture_output=True,
            text=True,
            env=cli_environment(**env),
            cwd=self.cwd,
            timeout=timeout,
            check=False,
        )
        return Result(done.returncode, done.stdout, done.stderr)

    def seed(self, *args: str) -> None:
        """Run a command in this process, to set up what a test then checks through the
        installed command (each subprocess costs a Python start-up)."""
        from confstore.cli import main

        assert main(["--url", self.url, *args]) == 0

    def importing_stdin(self, *options: str) -> subprocess.Popen[bytes]:
        """``confstore [options] --url <url> import -`` started on pipes: it waits for stdin
        (so it is still running whenever a test signals it); stdout goes nowhere. SIGINT is
        at its default in it, as in a command a shell starts in a terminal."""
        return subprocess.Popen(
            [*confstore_command(), *options, "--url", self.url, "import", "-"],
            stdin=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            cwd=self.cwd,
            env=cli_environment(),
            preexec_fn=_default_sigint,
        )

    def in_pty(self, *args: str, url: str | None = None, **env: str) -> tuple[int, str]:
        """Run ``confstore`` on a pseudo-terminal (stdin, stdout and stderr): exit code, output."""
        argv = [*confstore_command(), "--url", url or self.url, *args]
        return run_in_pty(argv, cwd=self.cwd, **env)

    def store(self, url: str | None = None) -> ConfigStore:
        return open_store(url or self.url)

    def call(self, action: Callable[[ConfigStore], Awaitable[T]], url: str | None = None) -> T:
        """Run ``action`` on an initialised store at ``url`` (default: this test's store)."""

        async def run() -> T:
            async with self.store(url) as store:
                return await action(store)

        return asyncio.run(run())


def _default_sigint() -> None:
    """In the child, before exec: SIGINT back to its default. A test run started in the
    background without job control (``pytest &`` in a script, ``nohup``) ignores SIGINT, and
    children inherit that: the command under test then rightly ignores Ctrl-C as well (exit 6
    on the empty stdin instead of 130)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_in_pty(argv: list[str], *, cwd: Path, **env: str) -> tuple[int, str]:
    """Run ``argv`` with stdin, stdout and stderr on a pseudo-terminal; its exit code and output."""
    import pty  # POSIX only, like the behaviour under test

    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        argv, stdin=terminal, stdout=terminal, stderr=terminal, cwd=cwd, env=cli_environment(**env)
    )
    os.close(terminal)
    output = read_until_closed(controller, 60)
    os.close(controller)
    return process.wait(timeout=60), output


def read_until_closed(descriptor: int, timeout: float) -> str:
    chunks = []
    while True:
        ready, _, _ = select.select([descriptor], [], [], timeout)
        if not ready:
            raise TimeoutError("the command produced no output in time")
        try:
            data = os.read(descriptor, 65536)
        except OSError:  # EIO: every writer of the terminal has gone
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks).decode("utf-8", "replace")


@contextmanager
def running_emulator(backend: str, **options: Any) -> Iterator[str]:
    """A plugin's HTTP emulator (``vespa``, ``elasticsearch`` or ``opensearch``, the latter the
    Elasticsearch emulator in its OpenSearch flavour) serving on 127.0.0.1 from a thread of this
    process, built with ``options``; yields the store URL other processes can use."""
    if backend == "opensearch":
        options.setdefault("flavor", "opensearch")
    plugin = "elasticsearch" if backend == "opensearch" else backend
    module = pytest.importorskip(f"confstore_{plugin}.emulator")
    emulator_class = {"vespa": "VespaEmulator", "elasticsearch": "ElasticsearchEmulator"}[plugin]
    loop = asyncio.new_event_loop()
    started = threading.Event()
    urls: list[str] = []
    stop = asyncio.Event()

    async def serve() -> None:
        async with getattr(module, emulator_class)(**options) as emulator:
            urls.append(f"{backend}+{emulator.url}")
            started.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    if not started.wait(30):
        raise TimeoutError(f"the {backend} emulator did not start")
    try:
        yield urls[0]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        loop.close()
