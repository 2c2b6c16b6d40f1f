-- confstore's tables in PostgreSQL: schema version 1.
--
-- confstore-postgres runs this file once per schema (the URL's ?schema=, default "confstore"),
-- inside one transaction, with search_path set to that schema, so every name below lands there.
-- The package ships an identical copy (a test checks); to create the tables by hand, run
--   BEGIN; SET LOCAL search_path TO confstore; \i schemas/postgres/schema.sql COMMIT;
-- as the role that will own them. PostgreSQL 14 or later.

-- The recorded schema version (a store refuses a schema newer than it reads), the identity of
-- this change feed (a cursor from another database or a re-created schema is expired) and the
-- oldest feed position still kept (retention may raise it; older cursors are expired).
CREATE TABLE schema_info (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    schema_version integer NOT NULL,
    feed_id uuid NOT NULL DEFAULT gen_random_uuid(),
    feed_floor_xid xid8 NOT NULL DEFAULT '0',
    created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO schema_info (schema_version) VALUES (1);

-- One row per key: its latest version, whether that version is a tombstone, when the key was
-- created and how many versions it has. A write allocates latest + 1 here (an upsert that locks
-- the row), so versions are unique and contiguous; listings and stats read only this table.
-- Identifiers are byte-ordered (COLLATE "C") so listings sort the way confstore promises.
CREATE TABLE config_heads (
    tenant_id text COLLATE "C" NOT NULL,
    scope text COLLATE "C" NOT NULL,
    service text COLLATE "C" NOT NULL,
    config_key text COLLATE "C" NOT NULL,
    latest_version bigint NOT NULL CHECK (latest_version >= 1),
    deleted boolean NOT NULL,
    created_at timestamptz NOT NULL,
    version_count bigint NOT NULL CHECK (version_count >= 0),
    PRIMARY KEY (tenant_id, scope, service, config_key)
);

-- Every stored version. The primary key is the guarantee that no two writes share a version and
-- the index every read of a key seeks. request_id is the writer's id for the write, read back
-- when a connection drops after a write was sent (so the write is neither lost nor repeated).
CREATE TABLE config_versions (
    tenant_id text COLLATE "C" NOT NULL,
    scope text COLLATE "C" NOT NULL,
    service text COLLATE "C" NOT NULL,
    config_key text COLLATE "C" NOT NULL,
    version bigint NOT NULL CHECK (version >= 1),
    value json NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    updated_by text,
    comment text,
    deleted boolean NOT NULL DEFAULT false,
    request_id uuid,
    PRIMARY KEY (tenant_id, scope, service, config_key, version)
);

-- The change feed: one row per committed version or purge, in the writing transaction. Readers
-- order it by (xid, seq) and take a transaction's rows only once it has finished, so a row that
-- commits late is never skipped (sequence order is not commit order).
CREATE TABLE config_changes (
    xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
    seq bigint GENERATED ALWAYS AS IDENTITY,
    tenant_id text COLLATE "C" NOT NULL,
    scope text COLLATE "C" NOT NULL,
    service text COLLATE "C" NOT NULL,
    config_key text COLLATE "C" NOT NULL,
    kind text NOT NULL CHECK (kind IN ('set', 'delete', 'purge')),
    version bigint NOT NULL,
    PRIMARY KEY (xid, seq)
);
