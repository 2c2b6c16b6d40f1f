"""A writer process for the SQLite multi-process tests.

Usage: python _sqlite_writer.py DB_PATH WRITER_NAME COUNT

Opens the store, prints "READY", waits for one line on stdin (so a parent can start several
writers at the same moment), then writes COUNT versions of one shared key and prints
"VERSION WRITER_NAME SEQUENCE" after each set_config returns, flushed at once, so a parent that
kills this process knows exactly which versions were acknowledged. Exits non-zero (with the
error on stderr) if any write fails.
"""

from __future__ import annotations

import asyncio
import sys

from confstore import open_store

TENANT, SCOPE, SERVICE, CONFIG_KEY = "multiprocess", "system", "writer", "shared"


async def main(path: str, writer: str, count: int) -> None:
    async with open_store(f"sqlite:///{path}") as store:
        sys.stdout.write("READY\n")
        sys.stdout.flush()
        await asyncio.to_thread(sys.stdin.readline)
        for sequence in range(count):
            entry = await store.set_config(
                TENANT, SCOPE, SERVICE, CONFIG_KEY, {"writer": writer, "sequence": sequence}
            )
            sys.stdout.write(f"{entry.version} {writer} {sequence}\n")
            sys.stdout.flush()


if __name__ == "__main__":
    db_path, writer_name, total = sys.argv[1:4]
    asyncio.run(main(db_path, writer_name, int(total)))
