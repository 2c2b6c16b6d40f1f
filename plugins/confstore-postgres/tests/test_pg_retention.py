"""PostgreSQL retention: the change feed is trimmed to its newest changes and older cursors expire."""

from __future__ import annotations

import pytest
from pg_support import with_options

from confstore import CursorExpiredError, open_store
from confstore.testing._base import read_feed

KEY = ("acme", "system", "svc", "settings")


async def test_prune_trims_the_feed_and_expires_older_cursors(store_url: str) -> None:
    async with open_store(with_options(store_url, feed_max_changes="5")) as store:
        start = await store.current_cursor()
        for n in range(12):
            await store.set_config(*KEY, {"n": n})
        result = await store.prune(keep_last=3)
        assert result.versions_removed == 9
        assert result.changes_removed == 7
        with pytest.raises(CursorExpiredError):
            await store.changes_since(start)
        changes, cursor = await read_feed(store)
        assert [change.version for change in changes] == [8, 9, 10, 11, 12]
        await store.set_config(*KEY, {"n": "after"})
        later, _ = await read_feed(store, cursor)
        assert [change.version for change in later] == [13]


async def test_a_feed_within_its_bound_is_not_trimmed(store_url: str) -> None:
    async with open_store(store_url) as store:
        start = await store.current_cursor()
        for n in range(3):
            await store.set_config(*KEY, {"n": n})
        result = await store.prune(keep_last=1, dry_run=False)
        assert result.changes_removed == 0
        changes, _ = await read_feed(store, start)
        assert [change.version for change in changes] == [1, 2, 3]


def test_feed_max_changes_must_be_positive(store_url: str) -> None:
    from confstore import InvalidConfigError

    with pytest.raises(InvalidConfigError):
        open_store(with_options(store_url, feed_max_changes="0"))
