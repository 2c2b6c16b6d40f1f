"""The ``confstore`` console script (``confstore = _confstore_cli:main``).

It lives outside the confstore package on purpose: a console script imports its module before
running anything, and importing ``confstore`` takes a good part of a second. A Ctrl-C during
that import must end the command as a Ctrl-C later does (one line on stderr, exit status 130),
not with a traceback, so this module imports only the standard library before it takes over
SIGINT, and confstore after.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from types import FrameType

INTERRUPTED = 130
_interrupts: list[int] = []
_Main = Callable[[], int]


def main() -> int:
    """Run ``confstore`` with the process's arguments; returns its exit status."""
    try:
        run_confstore = _import_confstore()
        return run_confstore()
    except KeyboardInterrupt:
        return _report_interrupt(sys.argv[1:])


def _import_confstore() -> _Main:
    """``confstore.cli.main``, imported with SIGINT only noted: a KeyboardInterrupt raised in
    the middle of an import can surface as another error (pydantic-core, importing datetime,
    turns it into a Rust panic printed on stderr), so Ctrl-C takes effect once it is done."""
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        from confstore.cli import main as run_confstore  # SIGINT ignored (nohup, `&`): keep so

        return run_confstore
    signal.signal(signal.SIGINT, _note_interrupt)
    try:
        from confstore.cli import main as run_confstore
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if _interrupts:
        raise KeyboardInterrupt
    return run_confstore


def _note_interrupt(signum: int, frame: FrameType | None) -> None:
    _interrupts.append(signum)


def _report_interrupt(argv: list[str]) -> int:
    """What ``confstore`` reports when interrupted while it runs a command (see its --help)."""
    import json

    if "--json" in argv[: argv.index("--") if "--" in argv else len(argv)]:
        report = {"type": "KeyboardInterrupt", "message": "interrupted", "exit_code": INTERRUPTED}
        print(json.dumps({"error": report}), file=sys.stderr, flush=True)
    else:
        print("confstore: interrupted", file=sys.stderr, flush=True)
    return INTERRUPTED
