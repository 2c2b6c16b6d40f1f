"""Another process that holds a lock on a SQLite file until told to let go."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path


async def start_lock_holder(script: str, path: Path) -> asyncio.subprocess.Process:
    """Run ``script`` (Python, given ``path`` as its argument) in a new process and return once
    it prints "LOCKED"; it lets go when a line is written to its stdin."""
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        str(path),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert holder.stdin is not None
    assert holder.stdout is not None
    try:
        assert await holder.stdout.readline() == b"LOCKED\n"
    except BaseException:
        holder.kill()
        await holder.wait()
        raise
    return holder
