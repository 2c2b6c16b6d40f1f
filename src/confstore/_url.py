"""``StoreURL``: a store URL parsed once into the parts backends need."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from ._errors import InvalidConfigError

DEFAULT_STORE_URL = "sqlite:///data/config/config.db"
STORE_URL_ENVIRONMENT_VARIABLE = "CONFSTORE_URL"


def default_store_url() -> str:
    """``$CONFSTORE_URL``, else the SQLite file ``data/config/config.db`` under the working directory.

    A variable that is set but empty is an InvalidConfigError, never a silent fall back to the
    default store.
    """
    url = os.environ.get(STORE_URL_ENVIRONMENT_VARIABLE)
    if url is None:
        return DEFAULT_STORE_URL
    if not url.strip():
        raise InvalidConfigError(
            f"${STORE_URL_ENVIRONMENT_VARIABLE} is set but empty: give a store URL, or unset it "
            f"for the default ({DEFAULT_STORE_URL})",
            field="url",
        )
    return url


@dataclass(frozen=True, slots=True)
class StoreURL:
    """A parsed store URL: ``scheme://[user[:password]@]host[:port][,host[:port]...][/path][?options]``.

    ``scheme`` is the whole scheme (``vespa+https``); ``backend`` the part before ``+`` and
    ``transport`` the part after it (``http`` or ``https``), or None. A URL naming several servers
    (``etcd+http://h1:2379,h2:2379``) lists every ``(host, port)`` in ``hosts``, in order, and
    ``host``/``port`` are the first; ``hosts`` is empty for one server. The password never
    appears in ``repr`` or ``str``.
    """

    scheme: str
    host: str | None = None
    port: int | None = None
    path: str = ""
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    options: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    hosts: tuple[tuple[str, int | None], ...] = ()

    @classmethod
    def parse(cls, url: str) -> StoreURL:
        """Parse ``url``; raises InvalidConfigError when it is not a store URL."""
        if isinstance(url, str) and not url.strip():
            raise InvalidConfigError("the store URL is empty", field="url")
        if not isinstance(url, str) or "://" not in url:
            raise InvalidConfigError(
                f"not a store URL (expected scheme://...): {url!r}", field="url"
            )
        scheme, rest = url.split("://", 1)
        scheme = scheme.lower()
        if not scheme or not all(c.isalnum() or c in "+-." for c in scheme):
            raise InvalidConfigError(f"invalid scheme in store URL: {scheme!r}", field="url")
        rest, _, query = rest.partition("?")
        options = MappingProxyType(dict(parse_qsl(query, keep_blank_values=True)))
        if rest == ":memory:" or rest.startswith(":memory:/"):
            return cls(scheme=scheme, host=":memory:", options=options)
        netloc, slash, path_part = rest.partition("/")
        userinfo, at, host_list = netloc.rpartition("@")
        hosts = tuple(_host_and_port(scheme, part) for part in host_list.split(","))
        if len(hosts) > 1:
            if not all(host for host, _ in hosts):
                raise InvalidConfigError(f"empty host in store URL: {host_list!r}", field="url")
            # The first host stands for all of them in the single-host fields below.
            rest = f"{userinfo}{at}{host_list.split(',')[0]}{slash}{path_part}"
        parts = urlsplit(f"{scheme}://{rest}")
        port = hosts[0][1]
        path = unquote(parts.path)
        # sqlite:///relative.db and sqlite:////absolute.db, as in SQLAlchemy: drop one slash.
        path = path[1:] if path.startswith("/") else path
        return cls(
            scheme=scheme,
            host=parts.hostname or None,
            port=port,
            path=path,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password is not None else None,
            options=options,
            hosts=hosts if len(hosts) > 1 else (),
        )

    def with_options(self, **options: str) -> StoreURL:
        """This URL with ``options`` added to its query options (replacing those of the same name)."""
        return replace(self, options=MappingProxyType({**self.options, **options}))

    @property
    def backend(self) -> str:
        return self.scheme.split("+", 1)[0]

    @property
    def transport(self) -> str | None:
        _, plus, transport = self.scheme.partition("+")
        return transport if plus else None

    @property
    def base_url(self) -> str:
        """``transport://host:port`` for HTTP backends (credentials and path left out)."""
        host = f"[{self.host}]" if self.host and ":" in self.host else (self.host or "localhost")
        port = f":{self.port}" if self.port is not None else ""
        return f"{self.transport or 'http'}://{host}{port}"

    def render(self, *, hide_password: bool = True) -> str:
        """The URL as text; the password is shown as ``***`` unless ``hide_password=False``."""
        auth = ""
        if self.username is not None:
            auth = quote(self.username, safe="")
            if self.password is not None:
                auth += ":" + ("***" if hide_password else quote(self.password, safe=""))
            auth += "@"
        hosts = self.hosts or ((self.host or "", self.port),)
        location = ",".join(_render_host(host, port) for host, port in hosts)
        path = f"/{quote(self.path, safe='/:')}" if self.path else ""
        query = "&".join(
            f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in self.options.items()
        )
        return f"{self.scheme}://{auth}{location}{path}{'?' + query if query else ''}"

    def __str__(self) -> str:
        return self.render()


def _host_and_port(scheme: str, location: str) -> tuple[str, int | None]:
    """``(host, port)`` of one ``host[:port]`` (``[v6]:port`` too) of a store URL."""
    parts = urlsplit(f"{scheme}://{location}")
    try:
        port = parts.port
    except ValueError as exc:
        raise InvalidConfigError(f"invalid port in store URL: {exc}", field="url") from exc
    return parts.hostname or "", port


def _render_host(host: str, port: int | None) -> str:
    if ":" in host and host != ":memory:":
        host = f"[{host}]"
    return host + (f":{port}" if port is not None else "")
