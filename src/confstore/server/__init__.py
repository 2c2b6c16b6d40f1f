"""``confstore serve``: an HTTP API in front of any store, with per-tenant token access control.

Private to confstore: the command is the interface (``confstore serve``, ``confstore token``),
and the API it serves is described by ``/openapi.json``. The modules:

- ``_tokens``: tokens and the tokens file (hashes only, constant-time lookup)
- ``_auth``: bearer authentication, the failed-attempt throttle, role and tenant checks
- ``_handlers``, ``_watch``: the endpoints; ``_routes`` lists them once
- ``_cursors``: change-feed cursors sealed for clients
- ``_app``, ``_run``: the aiohttp application and running it
"""

from ._app import create_app as create_app
from ._run import running_server as running_server
from ._run import serve as serve
from ._settings import ServerSettings as ServerSettings
from ._tokens import Role as Role
from ._tokens import TokenFile as TokenFile
from ._tokens import default_tokens_path as default_tokens_path

__all__ = [
    "Role",
    "ServerSettings",
    "TokenFile",
    "create_app",
    "default_tokens_path",
    "running_server",
    "serve",
]
