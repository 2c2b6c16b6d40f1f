"""confstore import reads its document a piece at a time, in one transaction, with progress."""

from __future__ import annotations

import gc
import json
import signal
from pathlib import Path
from typing import Any

import pytest
from cli_harness import Cli
from test_cli_transfer import everything, history_document

from confstore import ExportFileReader
from confstore.cli import _transfer, main

# Larger than one piece the reader takes from a file, so entries straddle pieces.
KEYS, VERSIONS = 40, 150


def write_document(path: Path, document: dict[str, Any]) -> None:
    path.write_text(json.dumps(document, indent=2))


def export_order(entry: dict[str, Any]) -> tuple[str, int]:
    """Where an entry of ``history_document`` comes in an export."""
    return entry["service"], entry["version"]


def test_a_document_of_many_pieces_is_imported_whole(cli: Cli, tmp_path: Path) -> None:
    document = history_document("acme", KEYS, VERSIONS)
    write_document(tmp_path / "big.json", document)
    assert (tmp_path / "big.json").stat().st_size > 2 * (1 << 20)
    result = cli("import", "big.json", "--json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["versions_written"] == KEYS * VERSIONS
    assert everything(cli)["acme"] == sorted(document["configs"], key=export_order)


def test_a_bad_last_entry_exits_6_and_writes_nothing(cli: Cli, tmp_path: Path) -> None:
    document = history_document("acme", KEYS, VERSIONS)
    document["configs"].append({**document["configs"][0], "version": "seven"})
    write_document(tmp_path / "bad.json", document)
    result = cli("import", "bad.json")
    assert result.exit_code == 6
    assert f"configs[{KEYS * VERSIONS}]" in result.stderr
    assert everything(cli) == {}


def test_a_document_cut_short_exits_6_and_writes_nothing(cli: Cli, tmp_path: Path) -> None:
    text = json.dumps(history_document("acme", KEYS, VERSIONS))
    (tmp_path / "cut.json").write_text(text[: len(text) - 100])
    result = cli("import", "cut.json")
    assert result.exit_code == 6
    assert "ends early" in result.stderr
    assert everything(cli) == {}


def test_a_tenant_named_after_the_configs_needs_the_tenant_option(cli: Cli, tmp_path: Path) -> None:
    """Known only after the whole list was read, too late to choose where to import it."""
    configs = history_document("acme", KEYS, VERSIONS)["configs"]
    write_document(tmp_path / "late.json", {"configs": configs, "tenant_id": "acme"})
    result = cli("import", "late.json")
    assert result.exit_code == 6
    assert "--tenant" in result.stderr
    assert everything(cli) == {}
    assert cli("import", "late.json", "--tenant", "acme").exit_code == 0
    assert list(everything(cli)) == ["acme"]


def test_a_terminal_shows_the_progress_of_the_import(cli: Cli, tmp_path: Path) -> None:
    write_document(tmp_path / "big.json", history_document("acme", KEYS, VERSIONS))
    exit_code, output = cli.in_pty("import", "big.json")
    assert exit_code == 0, output
    assert "KiB" in output
    assert "100% done" in output
    assert f"{KEYS * VERSIONS} versions written" in output


def test_an_export_of_many_pieces_imports_back_whole(cli: Cli, tmp_path: Path) -> None:
    """An export (one entry per line) is read a run of lines at a time, across pieces."""
    document = history_document("acme", KEYS, VERSIONS)
    write_document(tmp_path / "source.json", document)
    assert cli("import", "source.json").exit_code == 0
    assert cli("export", "--tenant", "acme", "--history", "-o", "export.json").exit_code == 0
    assert (tmp_path / "export.json").stat().st_size > 1 << 20
    copy = f"sqlite:///{tmp_path / 'copy.db'}"
    result = cli("import", "export.json", "--json", url=copy)
    assert result.exit_code == 0, result.stderr
    assert result.json()["versions_written"] == KEYS * VERSIONS
    assert everything(cli, copy) == everything(cli)
    again = cli("import", "export.json", "--json", url=copy)
    assert again.json()["versions_written"] == 0


def test_a_tab_indented_document_with_crlf_line_ends_is_imported_whole(
    cli: Cli, tmp_path: Path
) -> None:
    """Read a run of entries at a time, across pieces, as json.dump(indent=N) writes them."""
    document = history_document("acme", KEYS, VERSIONS)
    text = json.dumps(document, indent="\t").replace("\n", "\r\n")
    (tmp_path / "tabs.json").write_bytes(text.encode())
    assert len(text) > 2 * (1 << 20)
    result = cli("import", "tabs.json", "--json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["versions_written"] == KEYS * VERSIONS
    assert everything(cli)["acme"] == sorted(document["configs"], key=export_order)


def test_the_import_command_pauses_the_cyclic_collector_and_restores_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run in this process, so the collector's state can be seen as each piece is read."""
    write_document(tmp_path / "doc.json", history_document("acme", 10, 300))
    collector_on: list[bool] = []
    read_piece = ExportFileReader._read_piece

    def reading(reader: ExportFileReader) -> None:
        collector_on.append(gc.isenabled())
        read_piece(reader)

    monkeypatch.setattr(ExportFileReader, "_read_piece", reading)
    path = str(tmp_path / "doc.json")
    assert main(["--url", f"sqlite:///{tmp_path / 'store.db'}", "import", path]) == 0
    assert len(collector_on) > 2
    assert not any(collector_on)
    assert gc.isenabled()


def test_the_import_command_keeps_freed_memory_while_it_reads_and_restores_malloc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """glibc's trim and mmap thresholds are raised while pieces are read, then set back."""
    write_document(tmp_path / "doc.json", history_document("acme", 10, 300))
    settings: dict[int, int] = {}
    seen_while_reading: list[dict[int, int]] = []

    def mallopt(parameter: int, value: int) -> int:
        settings[parameter] = value
        return 1

    read_piece = ExportFileReader._read_piece

    def reading(reader: ExportFileReader) -> None:
        seen_while_reading.append(dict(settings))
        read_piece(reader)

    monkeypatch.setattr(_transfer, "_glibc_mallopt", lambda: mallopt)
    monkeypatch.setattr(ExportFileReader, "_read_piece", reading)
    path = str(tmp_path / "doc.json")
    assert main(["--url", f"sqlite:///{tmp_path / 'store.db'}", "import", path]) == 0
    raised = {_transfer._M_TRIM_THRESHOLD: 1 << 30, _transfer._M_MMAP_THRESHOLD: 32 << 20}
    assert len(seen_while_reading) > 2
    assert all(seen == raised for seen in seen_while_reading)
    assert settings == {
        _transfer._M_TRIM_THRESHOLD: 128 * 1024,
        _transfer._M_MMAP_THRESHOLD: 128 * 1024,
    }


def test_a_malloc_that_refuses_the_mmap_threshold_is_left_as_it_is(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[int, int]] = []

    def refusing(parameter: int, value: int) -> int:
        calls.append((parameter, value))
        return 0

    monkeypatch.setattr(_transfer, "_glibc_mallopt", lambda: refusing)
    with _transfer._freed_memory_kept():
        pass
    assert calls == [(_transfer._M_MMAP_THRESHOLD, 32 << 20)]


def test_ctrl_c_in_the_middle_of_an_import_exits_130_and_writes_nothing(
    cli: Cli, tmp_path: Path
) -> None:
    text = json.dumps(history_document("acme", KEYS, VERSIONS), indent=2).encode()
    with cli.importing_stdin() as process:
        assert process.stdin is not None
        # Far more than a pipe holds: once written, the import has read most of it.
        process.stdin.write(text[: len(text) * 2 // 3])
        process.stdin.flush()
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    assert (process.returncode, stderr) == (130, b"confstore: interrupted\n")
    assert everything(cli) == {}
