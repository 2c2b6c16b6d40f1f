"""Running a Python script file in a real subprocess, the way a user runs theirs."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

# Generous for a busy machine: a script that hangs would run forever.
EXIT_TIMEOUT = 30.0


async def run_script_file(
    path: Path, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    """Run the script with ``args`` to completion within EXIT_TIMEOUT (unclosed-resource
    warnings shown); its exit status, stdout and stderr. A script that hangs fails the test."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-W",
        "always::ResourceWarning",
        str(path),
        *args,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(EXIT_TIMEOUT):
            stdout, stderr = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        pytest.fail(f"the script did not exit within {EXIT_TIMEOUT}s")
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()
