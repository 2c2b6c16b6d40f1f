"""A writer process for the tests: ``_pg_writer.py URL CONFIG_KEY COUNT NAME [--step | --tasks N]``.

Writes COUNT versions of (tenant "multi", system, "svc", CONFIG_KEY), each value naming NAME and
the write's number, and prints ``version value-json`` per acknowledged write. With ``--step`` it
waits for a line on stdin before each write. With ``--tasks N``, N concurrent tasks each write
COUNT versions, task i to CONFIG_KEY-(i mod 4) (so the store batches them), and it prints
``config_key version value-json`` per acknowledged write.
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


async def concurrent(url: str, config_key: str, count: int, name: str, tasks: int) -> None:
    async with open_store(url) as store:

        async def task(number: int) -> None:
            task_key = f"{config_key}-{number % 4}"
            for write in range(count):
                value = {"writer": name, "task": number, "n": write}
                entry = await store.set_config("multi", "system", "svc", task_key, value)
                print(task_key, entry.version, json.dumps(value), flush=True)

        await asyncio.gather(*(task(number) for number in range(tasks)))


if __name__ == "__main__":
    url, config_key, count, name = sys.argv[1:5]
    if "--tasks" in sys.argv:
        tasks = int(sys.argv[sys.argv.index("--tasks") + 1])
        asyncio.run(concurrent(url, config_key, int(count), name, tasks))
    else:
        asyncio.run(main(url, config_key, int(count), name, "--step" in sys.argv[5:]))
