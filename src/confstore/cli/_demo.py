"""``confstore demo``: a short, narrated walk-through of what confstore does, on a real store."""

from __future__ import annotations

import argparse
import json
from typing import Any

from .._url import StoreURL
from ._commands import show_diff, show_entry, show_history
from ._common import ExitCode, open_cli_store, store_url
from ._output import Console

TENANT = "demo"
SCOPE, SERVICE, CONFIG_KEY = "agent", "support-bot", "llm_settings"
FIRST_VALUE: dict[str, Any] = {
    "llm_model": "gpt-4",
    "llm_api_key": "sk-demo-not-a-real-key",
    "temperature": 0.7,
    "max_tokens": 512,
}
SECOND_VALUE: dict[str, Any] = {**FIRST_VALUE, "llm_model": "gpt-4o", "temperature": 0.2}


async def demo(args: argparse.Namespace, console: Console) -> int:
    console.json_mode = False  # the demo is for people
    key = (TENANT, SCOPE, SERVICE, CONFIG_KEY)
    where = f"--tenant {TENANT} {SCOPE} {SERVICE} {CONFIG_KEY}"
    console.line(f"confstore demo on {StoreURL.parse(store_url(args))}")
    async with open_cli_store(args) as store:
        _step(console, 1, "write a config", f"confstore set {where} '{_inline(FIRST_VALUE)}'")
        first = await store.set_config(*key, FIRST_VALUE, updated_by="demo", comment="first try")
        console.line(f"wrote version {first.version}")

        _step(console, 2, "read it back (the API key is masked)", f"confstore get {where}")
        show_entry(console, first)

        _step(
            console,
            3,
            "change it, only if nobody else wrote in between",
            f"confstore set {where} '{_inline(SECOND_VALUE)}' --expected-version {first.version}",
        )
        second = await store.set_config(
            *key,
            SECOND_VALUE,
            expected_version=first.version,
            updated_by="demo",
            comment="cheaper, calmer model",
        )
        console.line(f"wrote version {second.version}")

        _step(console, 4, "every version is kept", f"confstore history {where} --limit 3")
        show_history(console, await store.get_config_history(*key, limit=3))

        _step(console, 5, "what changed", f"confstore diff {where}")
        show_diff(console, "/".join(key), first, second)

        _step(
            console,
            6,
            "export the tenant: a backup you can import anywhere (it keeps secrets)",
            f"confstore export --tenant {TENANT}",
        )
        await store.write_export(TENANT, console.out)
    console.line(
        "\nnext: `confstore rollback "
        f"{where} {first.version}` brings version {first.version} back; "
        "`confstore --help` lists every command."
    )
    return ExitCode.OK


def _step(console: Console, number: int, title: str, command: str) -> None:
    console.line(f"\n{console.paint(f'{number}. {title}', 'bold')}")
    console.line(console.paint(f"$ {command}", "dim"))


def _inline(value: dict[str, Any]) -> str:
    return json.dumps(value, separators=(", ", ": "))
