"""Tokens and the tokens file: shown once, stored as hashes, checked in constant time, managed
with ``confstore token``; sealed cursors."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from confstore import CursorExpiredError, InvalidConfigError, InvalidIdentifierError
from confstore.cli import main
from confstore.server import Role, TokenFile
from confstore.server._cursors import CursorSeal
from confstore.server._tokens import DuplicateTokenError, TokenError, UnknownTokenError


def test_a_token_is_stored_as_a_hash_in_a_private_file(tmp_path: Path) -> None:
    tokens = TokenFile(tmp_path / "config" / "tokens.json")
    secret, token = tokens.create("ci", "write", ["acme", "beta"])
    text = tokens.path.read_text()
    assert secret.startswith("cst_")
    assert len(secret) >= 40
    assert secret not in text
    assert token.sha256 in text
    assert stat.S_IMODE(tokens.path.stat().st_mode) == 0o600
    loaded = tokens.load()
    assert loaded.verify(secret) == token
    assert (token.role, token.tenants) == (Role.WRITE, ("acme", "beta"))


def test_verify_finds_only_the_exact_secret(tmp_path: Path) -> None:
    tokens = TokenFile(tmp_path / "tokens.json")
    first, _ = tokens.create("one", "read", ["*"])
    second, token = tokens.create("two", "admin", ["acme"])
    loaded = tokens.load()
    assert loaded.verify(second) == token
    for wrong in ("", first[:-1], second + "x", second.upper(), "cst_", "\udcff"):
        assert loaded.verify(wrong) is None or (
            loaded.verify(wrong).name == "one" and wrong == first
        )


def test_names_roles_and_tenants_are_checked(tmp_path: Path) -> None:
    tokens = TokenFile(tmp_path / "tokens.json")
    with pytest.raises(InvalidIdentifierError):
        tokens.create("bad name", "read", ["acme"])
    with pytest.raises(InvalidConfigError):
        tokens.create("ok", "root", ["acme"])
    with pytest.raises(InvalidConfigError):
        tokens.create("ok", "read", [])
    with pytest.raises(InvalidIdentifierError):
        tokens.create("ok", "read", ["../acme"])
    assert not tokens.path.exists() or tokens.stored() == []
    _, star = tokens.create("ok", "read", ["acme", "*"])
    assert star.tenants == ("*",)


def test_duplicate_and_unknown_names(tmp_path: Path) -> None:
    tokens = TokenFile(tmp_path / "tokens.json")
    tokens.create("ci", "read", ["acme"])
    with pytest.raises(DuplicateTokenError):
        tokens.create("ci", "admin", ["*"])
    with pytest.raises(UnknownTokenError):
        tokens.revoke("nobody")
    assert tokens.revoke("ci").name == "ci"
    assert tokens.stored() == []


@pytest.mark.parametrize(
    "content",
    ["", "{}", '{"format": "confstore-tokens", "format_version": 2, "tokens": []}', "[1, 2]"],
)
def test_a_malformed_tokens_file_is_a_token_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "tokens.json"
    path.write_text(content)
    with pytest.raises(TokenError):
        TokenFile(path).load()


def test_the_token_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tokens = str(tmp_path / "tokens.json")
    assert (
        main(
            [
                "token",
                "create",
                "ci",
                "--role",
                "read",
                "--tenant",
                "a",
                "--tenant",
                "b",
                "--tokens",
                tokens,
                "--json",
            ]
        )
        == 0
    )
    created = json.loads(capsys.readouterr().out)
    assert (
        main(["token", "create", "ci", "--role", "read", "--tenant", "a", "--tokens", tokens]) == 3
    )
    assert main(["token", "list", "--tokens", tokens, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert main(["token", "revoke", "nobody", "--tokens", tokens]) == 4
    assert main(["token", "revoke", "ci", "--tokens", tokens]) == 0
    assert capsys.readouterr().out == "revoked token 'ci'\n"
    assert main(["token", "list", "--tokens", tokens, "--json"]) == 0
    after = json.loads(capsys.readouterr().out)
    assert (
        main(["token", "create", "x", "--role", "boss", "--tenant", "a", "--tokens", tokens]) == 2
    )
    assert created["token"].startswith("cst_")
    assert [(t["name"], t["role"], t["tenants"]) for t in listed] == [("ci", "read", ["a", "b"])]
    assert "sha256" not in listed[0]
    assert after == []


def test_serve_without_a_tokens_file_says_how_to_make_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "--url",
            f"sqlite:///{tmp_path / 'db'}",
            "serve",
            "--tokens",
            str(tmp_path / "none.json"),
            "--bind",
            "127.0.0.1:0",
        ]
    )
    assert code == 1
    assert "confstore token create" in capsys.readouterr().err


def test_sealed_cursors_round_trip_and_hide_the_store_cursor() -> None:
    seal = CursorSeal(b"k" * 32)
    for cursor in ("", "1", "seq:12345", "x" * 1000):
        sealed = seal.seal(cursor)
        assert seal.open(sealed) == cursor
        assert len(cursor) < 4 or cursor not in sealed
        assert seal.seal(cursor) == sealed  # deterministic
    assert len(seal.seal("1")) == len(seal.seal("12345678901234567890"))  # padded


def test_a_tampered_or_foreign_cursor_is_refused() -> None:
    seal = CursorSeal(b"k" * 32)
    sealed = seal.seal("seq:1")
    tampered = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    with pytest.raises(CursorExpiredError):
        seal.open(tampered)
    with pytest.raises(CursorExpiredError):
        CursorSeal(b"j" * 32).open(sealed)
    for foreign in ("not a cursor!", "cs1.", "cs1.!!!", "-1", "cs1." + "A" * 10):
        with pytest.raises(InvalidConfigError):
            seal.open(foreign)


@pytest.mark.parametrize(
    ("arguments", "exit_code"),
    [
        (["--client-timeout", "0"], 2),
        (["--max-body-bytes", "-5"], 2),
        (["--max-import-bytes", "lots"], 2),
        (["--idempotency-ttl", "-1"], 2),
        (["--bind", "nonsense"], 6),
        (["--bind", "127.0.0.1:99999"], 6),
        (["--tls-key", "key.pem"], 6),
    ],
)
def test_serve_refuses_bad_options(tmp_path: Path, arguments: list[str], exit_code: int) -> None:
    tokens = TokenFile(tmp_path / "tokens.json")
    tokens.create("ops", "admin", ["*"])
    argv = ["--url", f"sqlite:///{tmp_path / 'db'}", "serve", "--tokens", str(tokens.path)]
    assert main([*argv, "--bind", "127.0.0.1:0", *arguments]) == exit_code
    assert not (tmp_path / "db").exists()  # nothing was opened
