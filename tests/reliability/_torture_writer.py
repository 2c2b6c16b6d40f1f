"""Torture-test writer: appends versions to one key and reports each one after it is acknowledged.

Usage: python _torture_writer.py DB_PATH WRITER_ID FIRST COUNT
Prints "VERSION WRITER_ID SEQUENCE" per acknowledged write, flushed at once, so a parent that
kills this process with SIGKILL knows exactly which versions confstore acknowledged.
"""

from __future__ import annotations

import asyncio
import sys

from confstore import open_store


async def main(path: str, writer: int, first: int, count: int) -> None:
    async with open_store(f"sqlite:///{path}") as store:
        for sequence in range(first, first + count):
            entry = await store.set_config(
                "torture", "system", "svc", "shared", {"writer": writer, "sequence": sequence}
            )
            sys.stdout.write(f"{entry.version} {writer} {sequence}\n")
            sys.stdout.flush()


if __name__ == "__main__":
    db_path, writer_id, first_sequence, total = sys.argv[1:5]
    asyncio.run(main(db_path, int(writer_id), int(first_sequence), int(total)))
