"""``python -m confstore.cli``: the same as the ``confstore`` command."""

from . import main

raise SystemExit(main())
