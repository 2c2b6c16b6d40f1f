"""The console's files as the server sends them: a strict Content-Security-Policy, no inline
script or handler, and nothing outside the console's directory."""

from __future__ import annotations

import urllib.error
import urllib.request
from html.parser import HTMLParser

import pytest
from console_harness import Server

from confstore.server._app import CONSOLE_DIRECTORY


class _Scripts(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.inside_script = False
        self.scripts: list[dict[str, str | None]] = []
        self.inline: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.inline += [name for name, _ in attrs if name.startswith("on") or name == "style"]
        if tag == "script":
            self.scripts.append(dict(attrs))
            self.inside_script = True

    def handle_endtag(self, tag: str) -> None:
        self.inside_script = self.inside_script and tag != "script"

    def handle_data(self, data: str) -> None:
        if self.inside_script and data.strip():
            self.inline.append(data)


def test_the_console_is_served_with_a_strict_policy_and_no_inline_script(server: Server) -> None:
    with urllib.request.urlopen(server.url, timeout=30) as response:
        policy = response.headers["Content-Security-Policy"]
        html = response.read().decode()
        assert response.headers["X-Frame-Options"] == "DENY"
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["default-src"] == "'self'"
    assert directives["object-src"] == "'none'"
    assert "unsafe" not in policy
    parser = _Scripts()
    parser.feed(html)
    assert parser.scripts == [{"type": "module", "src": "app.js"}]
    assert parser.inline == []


@pytest.mark.parametrize("path", ["console.css", "app.js", "api.js", "dom.js", "json.js"])
def test_the_console_files_ship_in_the_package_and_are_served(server: Server, path: str) -> None:
    with urllib.request.urlopen(server.url + path, timeout=30) as response:
        assert response.read() == (CONSOLE_DIRECTORY / path).read_bytes()
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]


@pytest.mark.parametrize("path", ["..%2F_app.py", "%2e%2e/_app.py", "no-such-file.js"])
def test_nothing_outside_the_console_is_served(server: Server, path: str) -> None:
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(server.url + path, timeout=30)
    assert raised.value.code == 404
    raised.value.close()
