"""Torture: several processes write one SQLite file while some are killed with SIGKILL and restarted."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import sys
from dataclasses import dataclass, field
from pathlib import Path

from confstore import open_store

WRITER = Path(__file__).with_name("_torture_writer.py")
PROCESSES = int(os.environ.get("CONFSTORE_TORTURE_PROCESSES", "4"))
WRITES_PER_PROCESS = int(os.environ.get("CONFSTORE_TORTURE_WRITES", "500"))
KILLS = int(os.environ.get("CONFSTORE_TORTURE_KILLS", "8"))


@dataclass
class Writer:
    writer_id: int
    reported: list[tuple[int, int]] = field(default_factory=list)  # (version, sequence)
    killed: int = 0

    @property
    def next_sequence(self) -> int:
        return self.reported[-1][1] + 1 if self.reported else 0

    @property
    def remaining(self) -> int:
        return WRITES_PER_PROCESS - len(self.reported)


async def run_writer(path: Path, writer: Writer, kill_after: float | None) -> None:
    """Run the writer process until it finishes its writes or is killed after ``kill_after`` s."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(WRITER),
        str(path),
        str(writer.writer_id),
        str(writer.next_sequence),
        str(writer.remaining),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None

    async def read_reports() -> None:
        assert process.stdout is not None
        async for line in process.stdout:
            version, writer_id, sequence = map(int, line.split())
            assert writer_id == writer.writer_id
            writer.reported.append((version, sequence))

    reader = asyncio.create_task(read_reports())
    if kill_after is not None:
        await asyncio.sleep(kill_after)
        if process.returncode is None:
            process.send_signal(signal.SIGKILL)
    await reader
    stderr = await process.stderr.read() if process.stderr else b""
    code = await process.wait()
    assert code in (0, -signal.SIGKILL), stderr.decode()
    writer.killed += code == -signal.SIGKILL


async def drive(path: Path, writer: Writer, kills: int, rng: random.Random) -> None:
    while writer.remaining > 0:
        kill_after = rng.uniform(0.2, 0.8) if kills > 0 else None
        kills -= 1
        await run_writer(path, writer, kill_after)


async def test_killed_writers_lose_no_acknowledged_version(tmp_path: Path) -> None:
    path = tmp_path / "torture.db"
    async with open_store(f"sqlite:///{path}"):
        pass
    rng = random.Random(20261126)
    writers = [Writer(writer_id) for writer_id in range(PROCESSES)]
    kills = [KILLS // PROCESSES + (1 if i < KILLS % PROCESSES else 0) for i in range(PROCESSES)]
    await asyncio.gather(*(drive(path, w, k, rng) for w, k in zip(writers, kills, strict=True)))

    assert sum(writer.killed for writer in writers) >= 1, "no writer was killed mid-stream"
    async with open_store(f"sqlite:///{path}") as store:
        history = await store.get_config_history("torture", "system", "svc", "shared", limit=10**6)
    stored = {entry.version: entry.config_value for entry in history}
    assert sorted(stored) == list(range(1, len(stored) + 1)), "versions are not contiguous"
    reported = [(version, w.writer_id, seq) for w in writers for version, seq in w.reported]
    assert len({version for version, _, _ in reported}) == len(reported), (
        "a version was reported twice"
    )
    for version, writer_id, sequence in reported:
        assert stored[version] == {"writer": writer_id, "sequence": sequence}
    for writer in writers:
        sequences = [seq for _, seq in writer.reported]
        assert sequences == list(range(WRITES_PER_PROCESS))
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
