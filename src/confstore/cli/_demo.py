"""``confstore demo``: a short, narrated walk-through of what confstore does, on a real store.

Each step is a real ``confstore`` command line, printed and then run exactly as printed (the
global options given to ``demo``, such as ``--url`` and ``--json``, included), so a newcomer can
copy any of them.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import shlex
from collections.abc import Awaitable, Callable
from typing import Any, TextIO

from .._url import StoreURL
from ._common import CliError, ExitCode, open_cli_store, store_url
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
WHERE = ["--tenant", TENANT, SCOPE, SERVICE, CONFIG_KEY]

# Parses a command line and runs it: ``_app`` passes its own, so the demo runs what users run.
Runner = Callable[[list[str], Console], Awaitable[int]]


async def demo(args: argparse.Namespace, console: Console, *, run: Runner) -> int:
    if not open_cli_store(args).capabilities.persistent:
        raise CliError(
            f"the demo's steps each open the store anew, and {store_url(args)} starts empty "
            "every time: use a file (sqlite:///demo.db) or a named memory store (memory://demo)",
            ExitCode.USAGE,
        )
    global_options = [*(["--url", args.url] if args.url else []), *_flags(args)]
    steps: list[dict[str, Any]] = []
    if not console.json_mode:
        console.line(f"confstore demo on {StoreURL.parse(store_url(args))}")

    async def step(title: str, *command: str) -> str:
        argv = [*global_options, *command]
        shown = shlex.join(["confstore", *argv])
        if not console.json_mode:
            console.line(f"\n{console.paint(f'{len(steps) + 1}. {title}', 'bold')}")
            console.line(console.paint(f"$ {shown}", "dim"))
        record = _Recorder(console.out, echo=not console.json_mode)
        exit_code = await run(argv, Console(console.json_mode, console.show_secrets, record))
        if exit_code != ExitCode.OK:
            raise CliError(f"the demo stopped: `{shown}` exited with {exit_code}")
        output = record.getvalue()
        steps.append({"step": len(steps) + 1, "title": title, "command": shown})
        if console.json_mode:
            steps[-1]["output"] = json.loads(output)
        return output

    written = await step(
        "write a config", "set", *WHERE, _inline(FIRST_VALUE), *_audit("first try")
    )
    await step("read it back (the API key is masked)", "get", *WHERE)
    await step(
        "change it, only if nobody else wrote in between",
        "set",
        *WHERE,
        _inline(SECOND_VALUE),
        "--expected-version",
        str(_version_written(written, console.json_mode)),
        *_audit("cheaper, calmer model"),
    )
    await step("every version is kept", "history", *WHERE, "--limit", "3")
    await step("what changed", "diff", *WHERE)
    await step(
        "export the tenant: a backup you can import anywhere (it keeps secrets)",
        "export",
        "--tenant",
        TENANT,
    )
    if console.json_mode:
        console.json({"store": StoreURL.parse(store_url(args)).render(), "steps": steps})
    else:
        console.line(
            "\nnext: `confstore rollback "
            f"{shlex.join(WHERE)} 1` brings version 1 back; `confstore --help` lists every command."
        )
    return ExitCode.OK


class _Recorder(io.StringIO):
    """Keeps what a step prints and, with ``echo``, shows it on ``shown_on`` as it comes."""

    def __init__(self, shown_on: TextIO, *, echo: bool) -> None:
        super().__init__()
        self.shown_on = shown_on
        self.echo = echo

    def write(self, text: str) -> int:
        if self.echo:
            self.shown_on.write(text)
        return super().write(text)

    def isatty(self) -> bool:
        return self.shown_on.isatty()


def _flags(args: argparse.Namespace) -> list[str]:
    return [
        flag
        for flag, given in (("--json", args.json), ("--show-secrets", args.show_secrets))
        if given
    ]


def _audit(comment: str) -> list[str]:
    return ["--by", "demo", "--comment", comment]


def _version_written(output: str, json_mode: bool) -> int:
    """The version a ``set`` step wrote, read from what it printed."""
    if json_mode:
        return int(json.loads(output)["version"])
    found = re.search(r"version (\d+)\s*$", output)
    if found is None:
        raise CliError(f"the demo could not read the version written from {output!r}")
    return int(found.group(1))


def _inline(value: dict[str, Any]) -> str:
    return json.dumps(value, separators=(", ", ": "))
