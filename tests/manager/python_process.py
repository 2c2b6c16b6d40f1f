"""Running a Python script in a real subprocess, the way another service or operator would."""

from __future__ import annotations

import asyncio
import sys


async def run_python(
    script: str, *args: str, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    """Run ``script`` with ``args`` in a new interpreter; its exit status, stdout and stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await process.communicate()
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()
