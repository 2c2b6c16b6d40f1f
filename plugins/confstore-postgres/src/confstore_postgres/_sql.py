"""Every SQL statement of the store, for one schema. Values only ever travel as parameters.

The schema name is the one identifier placed in the text; it is checked to be a plain lower-case
name (``PostgresSettings``) and quoted. Parameters $1-$4 are always the key's four identifiers.

A write is one statement, so one round trip: it takes a transaction-scoped advisory lock on the
key, then allocates the next version in ``config_heads`` (an upsert, or a conditional insert or
update for compare-and-set), inserts the version row and the change-feed row, and returns the
version. The advisory lock comes first, before the transaction has an id (xid), so writes to one
key get xids in version order: the change feed, ordered by xid, then reports a key's versions in
order. Without it a writer could take its xid while waiting for the head row, before the writer
ahead of it.

Concurrent writes of one process go together as one batch statement (``write_batch``), one
transaction, so they share one commit and its WAL flush: the same steps over arrays, one write
per key. It takes every key's lock first, in one fixed order (so batches of different processes
never deadlock, and the transaction still gets its xid only once it holds them all), and each
write keeps its own compare-and-set: one that does not match gets no version, the others do.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Final

SCHEMA_VERSION: Final = 1
MINIMUM_SERVER_VERSION: Final = 14

# Advisory locks taken by confstore use the two-key form: this class id (an arbitrary constant)
# and a 32-bit hash, so they never meet an application's single-key locks.
LOCK_CLASS: Final = 0x636F6E66  # "conf"
_SETUP_LOCK_KEY: Final = 0  # serialises creating the tables of a schema

ENTRY_COLUMNS: Final = (
    "tenant_id, scope, service, config_key, value, version, "
    "created_at, updated_at, updated_by, comment, deleted"
)
# An entry's columns when its key is known (reads of one key): the key is not sent back.
KEY_ENTRY_COLUMNS: Final = "value, version, created_at, updated_at, updated_by, comment, deleted"
_KEY_MATCH: Final = "tenant_id = $1 AND scope = $2 AND service = $3 AND config_key = $4"
_KEY_LOCK: Final = (
    f"pg_advisory_xact_lock({LOCK_CLASS}, hashtext($1 || '/' || $2 || '/' || $3 || '/' || $4))"
)

# The head step of a write, by kind. Each returns (latest_version, created_at) of the allocated
# version, or no row when the write must not happen (compare-and-set mismatch, deleting a key that
# is absent or deleted). $5 value, $6 updated_by, $7 comment, $8 deleted, $9 request id,
# $10 expected version.
_HEAD_STEPS: Final = {
    "upsert": """
        INSERT INTO {s}.config_heads AS h
            (tenant_id, scope, service, config_key, latest_version, deleted, created_at,
             version_count)
        SELECT $1, $2, $3, $4, 1, $8, lock.at, 1 FROM lock WHERE $10::bigint IS NULL
        ON CONFLICT (tenant_id, scope, service, config_key) DO UPDATE
            SET latest_version = h.latest_version + 1, deleted = excluded.deleted,
                created_at = CASE WHEN h.version_count = 0 THEN excluded.created_at
                                  ELSE h.created_at END,
                version_count = h.version_count + 1
        RETURNING h.latest_version, h.created_at""",
    "create": """
        INSERT INTO {s}.config_heads AS h
            (tenant_id, scope, service, config_key, latest_version, deleted, created_at,
             version_count)
        SELECT $1, $2, $3, $4, 1, $8, lock.at, 1 FROM lock WHERE $10::bigint = 0
        ON CONFLICT (tenant_id, scope, service, config_key) DO UPDATE
            SET latest_version = h.latest_version + 1, deleted = excluded.deleted,
                created_at = excluded.created_at, version_count = 1
            WHERE h.version_count = 0
        RETURNING h.latest_version, h.created_at""",
    "compare": """
        UPDATE {s}.config_heads AS h
            SET latest_version = h.latest_version + 1, deleted = $8,
                version_count = h.version_count + 1
        FROM lock
        WHERE h.tenant_id = $1 AND h.scope = $2 AND h.service = $3 AND h.config_key = $4
          AND h.latest_version = $10::bigint AND h.version_count > 0
        RETURNING h.latest_version, h.created_at""",
    "tombstone": """
        UPDATE {s}.config_heads AS h
            SET latest_version = h.latest_version + 1, deleted = true,
                version_count = h.version_count + 1
        FROM lock
        WHERE h.tenant_id = $1 AND h.scope = $2 AND h.service = $3 AND h.config_key = $4
          AND NOT h.deleted AND $10::bigint IS NULL
        RETURNING h.latest_version, h.created_at""",
}

_WRITE: Final = """
    WITH lock AS MATERIALIZED (SELECT {lock}, clock_timestamp() AS at),
    head AS ({head}),
    written AS (
        INSERT INTO {s}.config_versions
            (tenant_id, scope, service, config_key, version, value, created_at, updated_at,
             updated_by, comment, deleted, request_id)
        SELECT $1, $2, $3, $4, head.latest_version, $5, head.created_at, lock.at, $6, $7, $8, $9
        FROM head CROSS JOIN lock
        RETURNING version, created_at, updated_at),
    feed AS (
        INSERT INTO {s}.config_changes (tenant_id, scope, service, config_key, kind, version)
        SELECT $1, $2, $3, $4, CASE WHEN $8 THEN 'delete' ELSE 'set' END, version FROM written)
    SELECT version, created_at, updated_at FROM written
"""

# The batch: $1-$4 the keys (distinct), $5 values, $6 updated_by, $7 comments, $8 request ids,
# $9 expected versions (NULL: no condition), all arrays of one length. One row per write, in
# order: its version, created_at and updated_at, or NULLs when its condition did not hold.
_BATCH_HEAD_COLUMNS: Final = (
    "h.tenant_id, h.scope, h.service, h.config_key, h.latest_version, h.created_at"
)
_WRITE_BATCH: Final = """
    WITH batch AS MATERIALIZED (
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                             $6::text[], $7::text[], $8::uuid[], $9::bigint[])
            WITH ORDINALITY AS b(tenant_id, scope, service, config_key, value, updated_by,
                                 comment, request_id, expected, n)),
    lock AS MATERIALIZED (
        SELECT count(pg_advisory_xact_lock({lock_class}, lock_hash)) AS locks,
               clock_timestamp() AS at
        FROM (SELECT DISTINCT hashtext(tenant_id || '/' || scope || '/' || service || '/' ||
                                       config_key) AS lock_hash
              FROM batch ORDER BY lock_hash OFFSET 0) AS ordered),
    upserted AS (
        INSERT INTO {s}.config_heads AS h
            (tenant_id, scope, service, config_key, latest_version, deleted, created_at,
             version_count)
        SELECT b.tenant_id, b.scope, b.service, b.config_key, 1, false, lock.at, 1
        FROM batch AS b CROSS JOIN lock WHERE b.expected IS NULL
        ON CONFLICT (tenant_id, scope, service, config_key) DO UPDATE
            SET latest_version = h.latest_version + 1, deleted = false,
                created_at = CASE WHEN h.version_count = 0 THEN excluded.created_at
                                  ELSE h.created_at END,
                version_count = h.version_count + 1
        RETURNING {head_columns}),
    created AS (
        INSERT INTO {s}.config_heads AS h
            (tenant_id, scope, service, config_key, latest_version, deleted, created_at,
             version_count)
        SELECT b.tenant_id, b.scope, b.service, b.config_key, 1, false, lock.at, 1
        FROM batch AS b CROSS JOIN lock WHERE b.expected = 0
        ON CONFLICT (tenant_id, scope, service, config_key) DO UPDATE
            SET latest_version = h.latest_version + 1, deleted = false,
                created_at = excluded.created_at, version_count = 1
            WHERE h.version_count = 0
        RETURNING {head_columns}),
    compared AS (
        UPDATE {s}.config_heads AS h
            SET latest_version = h.latest_version + 1, deleted = false,
                version_count = h.version_count + 1
        FROM batch AS b CROSS JOIN lock
        WHERE h.tenant_id = b.tenant_id AND h.scope = b.scope AND h.service = b.service
          AND h.config_key = b.config_key AND b.expected > 0
          AND h.latest_version = b.expected AND h.version_count > 0
        RETURNING {head_columns}),
    head AS (SELECT * FROM upserted UNION ALL SELECT * FROM created
             UNION ALL SELECT * FROM compared),
    written AS (
        INSERT INTO {s}.config_versions
            (tenant_id, scope, service, config_key, version, value, created_at, updated_at,
             updated_by, comment, deleted, request_id)
        SELECT b.tenant_id, b.scope, b.service, b.config_key, head.latest_version,
               b.value::json, head.created_at, lock.at, b.updated_by, b.comment, false,
               b.request_id
        FROM batch AS b CROSS JOIN lock
        JOIN head ON head.tenant_id = b.tenant_id AND head.scope = b.scope
                 AND head.service = b.service AND head.config_key = b.config_key
        RETURNING tenant_id, scope, service, config_key, version, created_at, updated_at,
                  request_id),
    feed AS (
        INSERT INTO {s}.config_changes (tenant_id, scope, service, config_key, kind, version)
        SELECT tenant_id, scope, service, config_key, 'set', version FROM written)
    SELECT written.version, written.created_at, written.updated_at
    FROM batch LEFT JOIN written ON written.request_id = batch.request_id
    ORDER BY batch.n
"""


@dataclass(frozen=True)
class Statements:
    """The SQL text of every statement, with the schema filled in (each made once: reads are
    hot paths)."""

    schema: str

    def _format(self, text: str, **parts: str) -> str:
        return text.format(s=f'"{self.schema}"', **parts)

    def write(self, kind: str) -> str:
        """A one-statement write of the given head step (see ``_HEAD_STEPS``)."""
        head = self._format(_HEAD_STEPS[kind])
        return self._format(_WRITE, lock=_KEY_LOCK, head=head)

    @cached_property
    def write_batch(self) -> str:
        """Many writes of distinct keys in one statement (see ``_WRITE_BATCH``)."""
        return self._format(
            _WRITE_BATCH, lock_class=str(LOCK_CLASS), head_columns=_BATCH_HEAD_COLUMNS
        )

    @cached_property
    def head(self) -> str:
        return self._format(
            f"SELECT latest_version, deleted FROM {{s}}.config_heads WHERE {_KEY_MATCH} "
            "AND version_count > 0"
        )

    @cached_property
    def latest(self) -> str:
        return self._format(
            f"SELECT {KEY_ENTRY_COLUMNS} FROM {{s}}.config_versions WHERE {_KEY_MATCH} "
            "ORDER BY version DESC LIMIT 1"
        )

    @cached_property
    def version(self) -> str:
        return self._format(
            f"SELECT {KEY_ENTRY_COLUMNS} FROM {{s}}.config_versions "
            f"WHERE {_KEY_MATCH} AND version = $5"
        )

    @cached_property
    def history(self) -> str:
        return self._format(
            f"SELECT {KEY_ENTRY_COLUMNS} FROM {{s}}.config_versions WHERE {_KEY_MATCH} "
            "ORDER BY version DESC LIMIT $5"
        )

    @cached_property
    def written_by_request(self) -> str:
        """The newest version of a key a given request wrote ($5): how an unknown outcome is read back."""
        return self._format(
            f"SELECT version, created_at, updated_at FROM {{s}}.config_versions "
            f"WHERE {_KEY_MATCH} AND request_id = $5 ORDER BY version DESC LIMIT 1"
        )

    @cached_property
    def written_by_requests(self) -> str:
        """What a batch wrote, read back by its request ids: per write ($1-$4 keys, $5 request
        ids), in order, its version, created_at and updated_at, or NULLs when it wrote nothing."""
        return self._format(
            "SELECT v.version, v.created_at, v.updated_at FROM unnest($1::text[], $2::text[], "
            "$3::text[], $4::text[], $5::uuid[]) WITH ORDINALITY AS r(t, sc, sv, k, request_id, n) "
            "LEFT JOIN {s}.config_versions AS v ON v.tenant_id = r.t AND v.scope = r.sc "
            "AND v.service = r.sv AND v.config_key = r.k AND v.request_id = r.request_id "
            "ORDER BY r.n"
        )

    @cached_property
    def live_configs(self) -> str:
        """Latest live version of each key of a tenant ($1), optionally of one scope ($2) and
        service ($3), in (scope, service, config_key) order."""
        columns = ", ".join("v." + column.strip() for column in ENTRY_COLUMNS.split(","))
        return self._format(
            f"SELECT {columns} FROM {{s}}.config_heads AS h JOIN {{s}}.config_versions AS v "
            "ON v.tenant_id = h.tenant_id AND v.scope = h.scope AND v.service = h.service "
            "AND v.config_key = h.config_key AND v.version = h.latest_version "
            "WHERE h.tenant_id = $1 AND NOT h.deleted "
            "AND ($2::text IS NULL OR h.scope = $2) AND ($3::text IS NULL OR h.service = $3) "
            "ORDER BY h.scope, h.service, h.config_key"
        )

    @cached_property
    def tenant_history(self) -> str:
        return self._format(
            f"SELECT {ENTRY_COLUMNS} FROM {{s}}.config_versions WHERE tenant_id = $1 "
            "ORDER BY scope, service, config_key, version"
        )

    @cached_property
    def tenants(self) -> str:
        return self._format(
            "SELECT DISTINCT tenant_id FROM {s}.config_heads "
            "WHERE ($1::boolean OR NOT deleted) AND version_count > 0 ORDER BY tenant_id"
        )

    @cached_property
    def stats(self) -> str:
        """One statement, so one snapshot: live keys, versions, tenants, live keys per scope."""
        return self._format(
            "SELECT count(*) FILTER (WHERE NOT deleted), coalesce(sum(version_count), 0)::bigint, "
            "count(DISTINCT tenant_id) FILTER (WHERE NOT deleted), "
            "coalesce((SELECT json_object_agg(scope, live) FROM (SELECT scope, count(*) AS live "
            "FROM {s}.config_heads WHERE NOT deleted GROUP BY scope) AS per_scope)::text, '{{}}') "
            "FROM {s}.config_heads"
        )

    @cached_property
    def purge_head(self) -> str:
        """First step of a purge (after the key's lock): the head goes, and with it the key."""
        return self._format(
            f"DELETE FROM {{s}}.config_heads WHERE {_KEY_MATCH} AND version_count > 0 "
            "RETURNING latest_version"
        )

    @cached_property
    def prune_versions(self) -> str:
        """Retention (after the key's lock): remove versions $5 below the latest; the count."""
        return self._format(
            f"WITH gone AS (DELETE FROM {{s}}.config_versions WHERE {_KEY_MATCH} "
            "AND version = ANY($5::bigint[]) AND version < (SELECT latest_version "
            f"FROM {{s}}.config_heads WHERE {_KEY_MATCH}) RETURNING 1), "
            "counted AS (SELECT count(*) AS n FROM gone) "
            f"UPDATE {{s}}.config_heads SET version_count = version_count - counted.n "
            f"FROM counted WHERE {_KEY_MATCH} RETURNING counted.n"
        )

    @cached_property
    def trim_feed(self) -> str:
        """Keep the newest $1 changes: rows of transactions below the new floor go and the
        recorded floor rises, so older cursors are expired. The floor never passes the
        snapshot's xmin, below which no running transaction can still add rows."""
        return self._format(
            "WITH bound AS (SELECT CASE WHEN newest.xid IS NULL THEN NULL "
            "ELSE least(newest.xid, pg_snapshot_xmin(pg_current_snapshot())) END AS x "
            "FROM (SELECT (SELECT xid FROM {s}.config_changes ORDER BY xid DESC, seq DESC "
            "OFFSET $1 - 1 LIMIT 1) AS xid) AS newest), "
            "raised AS (UPDATE {s}.schema_info SET feed_floor_xid = "
            "greatest(feed_floor_xid, bound.x) FROM bound WHERE bound.x IS NOT NULL), "
            "gone AS (DELETE FROM {s}.config_changes USING bound WHERE xid < bound.x "
            "RETURNING 1) SELECT count(*) FROM gone"
        )

    @cached_property
    def retire_head(self) -> str:
        """Retention of a deleted key (after its lock), if its latest version is still the
        tombstone $5: the head stays with no versions, so the numbering goes on after it."""
        return self._format(
            f"UPDATE {{s}}.config_heads SET version_count = 0 WHERE {_KEY_MATCH} "
            "AND latest_version = $5 AND deleted AND version_count > 0 RETURNING latest_version"
        )

    @cached_property
    def purge_versions(self) -> str:
        """Second step, in a later statement so its snapshot sees every committed version."""
        return self._format(
            f"WITH gone AS (DELETE FROM {{s}}.config_versions WHERE {_KEY_MATCH}) "
            "INSERT INTO {s}.config_changes (tenant_id, scope, service, config_key, kind, version) "
            "VALUES ($1, $2, $3, $4, 'purge', $5)"
        )

    @cached_property
    def lock_key(self) -> str:
        return f"SELECT {_KEY_LOCK}"

    @cached_property
    def lock_keys(self) -> str:
        """Locks of many keys ($1-$4 arrays), taken in one fixed order so importers never deadlock."""
        return (
            f"SELECT count(pg_advisory_xact_lock({LOCK_CLASS}, lock_hash)) FROM ("
            "SELECT DISTINCT hashtext(t || '/' || sc || '/' || sv || '/' || k) AS lock_hash "
            "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS keys(t, sc, sv, k) "
            "ORDER BY lock_hash OFFSET 0) AS ordered"
        )

    @cached_property
    def stored_versions(self) -> str:
        """Versions already stored in each key's range ($1-$4 keys, $5 first, $6 last version)."""
        columns = ", ".join("v." + column.strip() for column in ENTRY_COLUMNS.split(","))
        return self._format(
            f"SELECT {columns} FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], "
            "$5::bigint[], $6::bigint[]) AS r(t, sc, sv, k, first_version, last_version) "
            "JOIN {s}.config_versions AS v ON v.tenant_id = r.t AND v.scope = r.sc "
            "AND v.service = r.sv AND v.config_key = r.k "
            "AND v.version BETWEEN r.first_version AND r.last_version"
        )

    @cached_property
    def heads_of(self) -> str:
        """Heads of many keys ($1-$4 arrays): key, latest version, created_at."""
        return self._format(
            "SELECT h.tenant_id, h.scope, h.service, h.config_key, h.latest_version, h.created_at "
            "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS r(t, sc, sv, k) "
            "JOIN {s}.config_heads AS h ON h.tenant_id = r.t AND h.scope = r.sc "
            "AND h.service = r.sv AND h.config_key = r.k"
        )

    @cached_property
    def merge_heads(self) -> str:
        """Fold imported versions into the heads: per key ($1-$4) the highest imported version
        ($5), whether it is a tombstone ($6), the key's created_at ($7) and the count ($8).
        Restored versions may lie below the latest one: a head only moves forward."""
        return self._format(
            "INSERT INTO {s}.config_heads AS h (tenant_id, scope, service, config_key, "
            "latest_version, deleted, created_at, version_count) "
            "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], "
            "$6::boolean[], $7::timestamptz[], $8::bigint[]) "
            "ON CONFLICT (tenant_id, scope, service, config_key) DO UPDATE SET "
            "deleted = CASE WHEN excluded.latest_version > h.latest_version "
            "THEN excluded.deleted ELSE h.deleted END, "
            "latest_version = greatest(h.latest_version, excluded.latest_version), "
            "version_count = h.version_count + excluded.version_count"
        )

    @cached_property
    def changes(self) -> str:
        """A page of the feed after a cursor, with the reading snapshot's bounds, in one
        statement (one snapshot). $1 floor xid, $2 xids done at or above it, $3/$4 the last
        (xid, seq) delivered of a transaction read in part, $5 page size. Always one row at least:
        the snapshot and feed identity, with NULL change columns when nothing is new."""
        return self._format(
            "WITH snap AS MATERIALIZED (SELECT pg_current_snapshot() AS s), "
            "page AS (SELECT xid, seq, tenant_id, scope, service, config_key, kind, version "
            "FROM {s}.config_changes WHERE xid >= $1::xid8 AND xid <> ALL($2::text[]::xid8[]) "
            "AND NOT (xid = $3::xid8 AND seq <= $4::bigint) ORDER BY xid, seq LIMIT $5) "
            "SELECT pg_snapshot_xmin(snap.s), pg_snapshot_xmax(snap.s), "
            "info.feed_id::text, info.feed_floor_xid, page.* "
            "FROM snap CROSS JOIN {s}.schema_info AS info LEFT JOIN page ON true "
            "ORDER BY page.xid, page.seq"
        )

    @cached_property
    def present_cursor(self) -> str:
        """The feed's present end: the snapshot's xmin and the finished xids at or above it."""
        return self._format(
            "WITH snap AS MATERIALIZED (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin) "
            "SELECT snap.xmin, info.feed_id::text, info.feed_floor_xid, "
            "array(SELECT DISTINCT xid FROM {s}.config_changes WHERE xid >= snap.xmin "
            "ORDER BY xid LIMIT $1) "
            "FROM snap CROSS JOIN {s}.schema_info AS info"
        )

    @cached_property
    def schema_info(self) -> str:
        return self._format("SELECT schema_version, feed_id::text FROM {s}.schema_info")

    @cached_property
    def setup_lock(self) -> str:
        return f"SELECT pg_advisory_xact_lock({LOCK_CLASS}, hashtext($1) # {_SETUP_LOCK_KEY})"

    @cached_property
    def create_schema(self) -> str:
        return self._format("CREATE SCHEMA {s}")

    @cached_property
    def enter_schema(self) -> str:
        return self._format("SET LOCAL search_path TO {s}")

    @cached_property
    def drop_schema(self) -> str:
        return self._format("DROP SCHEMA IF EXISTS {s} CASCADE")


NOTIFY: Final = "SELECT set_config('synchronous_commit', 'off', true), pg_notify($1, '')"
"""Wake a schema's feed followers. Not part of the write: a transaction that notifies takes a
database-wide lock through its commit, which would serialise every concurrent write's fsync; sent
apart, with no commit flush (a wake-up carries no data), writers keep committing in groups."""

TABLE_EXISTS: Final = (
    "SELECT EXISTS (SELECT 1 FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace "
    "WHERE n.nspname = $1 AND c.relname = $2)"
)
SCHEMA_EXISTS: Final = "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)"
SERVER_VERSION: Final = "SELECT current_setting('server_version_num')::int"
SERVER_VERSION_TEXT: Final = "SELECT current_setting('server_version')"
CONNECTION_IDENTITY: Final = (
    "SELECT backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()"
)
TERMINATE_CONNECTION: Final = (
    "SELECT pg_terminate_backend(pid, $3::bigint) FROM pg_stat_activity "
    "WHERE pid = $1 AND backend_start = $2"
)
