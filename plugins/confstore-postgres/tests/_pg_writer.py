"""A writer process for the tests: ``_pg_writer.py URL CONFIG_KEY COUNT NAME [--step]``.

Writes COUNT versions of (tenant "multi", system, "svc", CONFIG_KEY), each value naming NAME and
the write's number, and prints ``version value-json`` per acknowledged write. With ``--step`` it
waits for a line on stdin before each write.
"""

from __future__ import annotations

import asyncio
import json
import sys

from confstore import open_store


async def main(url: str, config_key: str, count: int, name: str, step: bool) -> None:
    async with open_store(url) as store:
        for number in range(count):
            if step:
                await asyncio.to_thread(sys.stdin.readline)
            value = {"writer": name, "n": number}
            entry = await store.set_config("multi", "system", "svc", config_key, value)
            print(entry.version, json.dumps(value), flush=True)


if __name__ == "__main__":
    url, config_key, count, name = sys.argv[1:5]
    asyncio.run(main(url, config_key, int(count), name, "--step" in sys.argv[5:]))
