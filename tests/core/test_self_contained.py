"""Code and docs cite only what the project holds: a user of a clone or a wheel can follow every
reference, so none may point at documents that were never published with it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SEARCHED = ("src", "plugins", "docs", "tests", "benchmarks", "schemas", ".ci")
SUFFIXES = {".py", ".md", ".toml", ".txt", ".json", ".xml", ".sd", ""}
# A document name such as README.md or docs/writing-a-backend.md, wherever it is written.
DOCUMENT = re.compile(r"(?<![\w/.-])((?:[\w-]+/)*[\w-]+\.md)\b")
# Private material, by how it used to be cited: "the backend notes (part B13)", "notes, part A".
PRIVATE = re.compile(r"backend\s+notes|notes\s*,\s*part\s+[A-Z]|\bpart\s+[A-Z]\d*\s+of\s+the", re.I)


def project_files() -> list[Path]:
    files = [ROOT / "README.md", ROOT / "pyproject.toml", ROOT / "requirements-dev.txt"]
    for top in SEARCHED:
        for path in sorted((ROOT / top).rglob("*")):
            skipped = {"__pycache__", ".venv", "build", "dist"} & set(path.parts)
            generated = skipped or ".egg-info" in str(path)
            if path.is_file() and path.suffix in SUFFIXES and not generated:
                files.append(path)
    return files


def test_every_cited_document_is_part_of_the_project() -> None:
    documents = {path.relative_to(ROOT).as_posix() for path in ROOT.rglob("*.md")}
    names = {Path(document).name for document in documents}
    missing = []
    for path in project_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        for cited in DOCUMENT.findall(text):
            if cited not in documents and Path(cited).name not in names:
                missing.append(f"{path.relative_to(ROOT)}: {cited}")
    assert missing == []


def test_nothing_cites_private_notes() -> None:
    cited = [
        f"{path.relative_to(ROOT)}: {found.group(0)}"
        for path in project_files()
        if path != Path(__file__).resolve()
        for found in PRIVATE.finditer(path.read_text(encoding="utf-8", errors="replace"))
    ]
    assert cited == []
