"""The aiohttp application of ``confstore serve``: routes, the error and auth middleware, the
console's place at ``/``, and the lifecycle of the store, the tokens and the change hub."""

from __future__ import annotations

import logging
from pathlib import Path

from aiohttp import web

from .._errors import ConfigStoreError
from .._layering import Layering
from .._store import ConfigStore
from ._auth import AUTHENTICATOR, IDENTITY, Authenticator
from ._handlers import HEALTH, HealthCache
from ._http import (
    STREAMING,
    ApiError,
    Handler,
    api_error_for,
    api_error_for_http,
    json_response,
    problem,
    security_headers,
)
from ._idempotency import IDEMPOTENCY, IdempotencyKeys
from ._openapi import openapi_document
from ._routes import ROUTES
from ._settings import LAYERING, SETTINGS, STORE, ServerSettings
from ._watch import HUB, ChangeHub

logger = logging.getLogger("confstore.server")

# The web console (#16) ships its static files here; without an index.html, / answers 404.
CONSOLE_DIRECTORY = Path(__file__).parent / "console"
_PUBLIC_PATHS = frozenset({"/v1/health", "/openapi.json"})


def _is_api(path: str) -> bool:
    return path.startswith("/v1/") or path == "/v1" or path == "/openapi.json"


@web.middleware
async def api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authenticates /v1 requests and turns every failure into a JSON problem."""
    api = _is_api(request.path)
    try:
        if api and request.path not in _PUBLIC_PATHS:
            request[IDENTITY] = request.app[AUTHENTICATOR].authenticate(request)
        response = await handler(request)
    except ApiError as error:
        response = problem(error)
    except ConfigStoreError as error:
        if request.get(STREAMING):
            raise  # the answer has begun: drop the connection, the client sees it cut short
        response = problem(api_error_for(error))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = problem(api_error_for_http(exc))
    except Exception:
        if request.get(STREAMING):
            raise
        logger.exception(
            "confstore: unexpected error answering %s %s", request.method, request.path
        )
        response = problem(ApiError(500, "internal_error", "internal error (see the server log)"))
    if not response.prepared:
        security_headers(response, console=not api)
    return response


async def openapi(request: web.Request) -> web.Response:
    return json_response(openapi_document())


async def console_file(request: web.Request) -> web.StreamResponse:
    """A file of the console: ``/`` is its index.html; paths never leave its directory."""
    name = request.match_info.get("path") or "index.html"
    root = request.app[CONSOLE].resolve()
    path = (root / name).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise ApiError(404, "not_found", "no such resource")
    return web.FileResponse(path)


CONSOLE = web.AppKey("confstore_console", Path)


def create_app(
    store: ConfigStore,
    authenticator: Authenticator,
    settings: ServerSettings | None = None,
    *,
    close_store: bool = True,
    console_directory: Path = CONSOLE_DIRECTORY,
) -> web.Application:
    """The server's application. The store is initialised on startup and (with ``close_store``)
    closed on cleanup; watchers' streams end on shutdown, before in-flight requests are awaited."""
    settings = settings or ServerSettings()
    app = web.Application(middlewares=[api_middleware], client_max_size=settings.max_import_bytes)
    app[STORE] = store
    app[SETTINGS] = settings
    app[LAYERING] = Layering(inherit=True, base_tenant=settings.base_tenant, environ={})
    app[AUTHENTICATOR] = authenticator
    app[HEALTH] = HealthCache()
    app[IDEMPOTENCY] = IdempotencyKeys.from_settings(settings)
    app[CONSOLE] = console_directory
    app[HUB] = ChangeHub(
        store,
        lambda: authenticator.cursor_seal,
        poll_interval=settings.feed_poll_interval,
        queue_limit=settings.sse_queue_limit,
        keepalive=settings.sse_keepalive,
    )
    for route in ROUTES:
        app.router.add_route(route.method, route.path, route.handler)
    app.router.add_get("/openapi.json", openapi)
    app.router.add_get("/", console_file)
    app.router.add_get("/{path:[A-Za-z0-9_.\\-/]+}", console_file)

    async def start(app: web.Application) -> None:
        await store.initialize()
        authenticator.start()

    async def end_streams(app: web.Application) -> None:
        await app[HUB].close()

    async def stop(app: web.Application) -> None:
        await authenticator.stop()
        if close_store:
            await store.close()

    app.on_startup.append(start)
    app.on_shutdown.append(end_streams)
    app.on_cleanup.append(stop)
    return app
