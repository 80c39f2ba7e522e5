-- pgtide's objects in a source database. Installed by `pgtide setup` (and
-- by capture when it has the privileges); every statement is idempotent.

CREATE SCHEMA IF NOT EXISTS pgtide;

-- ddl_log receives one row per DDL statement. It is part of each source's
-- publication (when DDL capture is on), so DDL reaches the change log in
-- commit order with the data changes around it.
CREATE TABLE IF NOT EXISTS pgtide.ddl_log (
    id          bigserial PRIMARY KEY,
    tag         text NOT NULL,
    statement   text NOT NULL,
    search_path text,
    username    text NOT NULL DEFAULT current_user,
    objects     text[] NOT NULL DEFAULT '{}',
    at          timestamptz NOT NULL DEFAULT now()
);

-- sources holds each source's table selection, so the event trigger can
-- keep publications right when tables are created or altered.
CREATE TABLE IF NOT EXISTS pgtide.sources (
    name                text PRIMARY KEY,
    publication         text NOT NULL,
    keyless_publication text NOT NULL,
    schemas             text[] NOT NULL,
    include_tables      text[] NOT NULL,
    exclude_tables      text[] NOT NULL,
    keyless             text NOT NULL CHECK (keyless IN ('skip', 'full')),
    ddl                 boolean NOT NULL
);

-- table_has_identity reports whether UPDATE and DELETE on a table can be
-- published without failing: it has a primary key, a replica identity
-- index, or REPLICA IDENTITY FULL.
CREATE OR REPLACE FUNCTION pgtide.table_has_identity(rel oid) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog AS $$
    SELECT c.relreplident = 'f'
        OR (c.relreplident = 'd' AND EXISTS (
                SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary))
        OR (c.relreplident = 'i' AND EXISTS (
                SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisreplident))
    FROM pg_class c WHERE c.oid = rel
$$;

-- sync_publications puts every selected table of every source into the
-- right publication: tables with an identity into the full one, tables
-- without into the insert-and-truncate one (or, with keyless = 'full', it
-- sets REPLICA IDENTITY FULL and uses the full one). A table in the wrong
-- publication is moved; unselected tables are removed. It returns one row
-- per change it made, for logging.
CREATE OR REPLACE FUNCTION pgtide.sync_publications()
RETURNS TABLE (source text, action text, table_name text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    s   record;
    t   record;
    want text;
BEGIN
    PERFORM set_config('pgtide.in_sync', 'on', true);
    FOR s IN SELECT * FROM pgtide.sources ORDER BY name LOOP
        FOR t IN
            SELECT c.oid, format('%I.%I', n.nspname, c.relname) AS qname,
                   n.nspname || '.' || c.relname AS plain
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind = 'r' AND NOT c.relispartition
              AND n.nspname = ANY (s.schemas) AND n.nspname <> 'pgtide'
              AND (cardinality(s.include_tables) = 0
                   OR n.nspname || '.' || c.relname LIKE ANY (s.include_tables))
              AND NOT (n.nspname || '.' || c.relname LIKE ANY (s.exclude_tables))
            UNION ALL
            SELECT 'pgtide.ddl_log'::regclass::oid, 'pgtide.ddl_log', 'pgtide.ddl_log'
            WHERE s.ddl
        LOOP
            IF NOT pgtide.table_has_identity(t.oid) AND s.keyless = 'full' THEN
                EXECUTE format('ALTER TABLE %s REPLICA IDENTITY FULL', t.qname);
                source := s.name; action := 'replica_identity_full'; table_name := t.plain;
                RETURN NEXT;
            END IF;
            want := CASE WHEN pgtide.table_has_identity(t.oid)
                         THEN s.publication ELSE s.keyless_publication END;
            IF NOT EXISTS (SELECT 1 FROM pg_publication_rel pr JOIN pg_publication p ON p.oid = pr.prpubid
                           WHERE pr.prrelid = t.oid AND p.pubname = want) THEN
                EXECUTE format('ALTER PUBLICATION %I ADD TABLE %s', want, t.qname);
                source := s.name; action := 'add to ' || want; table_name := t.plain;
                RETURN NEXT;
            END IF;
        END LOOP;
        -- Remove tables that are no longer selected or sit in the wrong one.
        FOR t IN
            SELECT p.pubname, format('%I.%I', n.nspname, c.relname) AS qname,
                   n.nspname || '.' || c.relname AS plain
            FROM pg_publication p
            JOIN pg_publication_rel pr ON pr.prpubid = p.oid
            JOIN pg_class c ON c.oid = pr.prrelid
            JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE p.pubname IN (s.publication, s.keyless_publication)
              AND NOT (
                  (n.nspname = 'pgtide' AND c.relname = 'ddl_log' AND s.ddl
                   AND p.pubname = s.publication)
                  OR (n.nspname = ANY (s.schemas) AND n.nspname <> 'pgtide'
                      AND (cardinality(s.include_tables) = 0
                           OR n.nspname || '.' || c.relname LIKE ANY (s.include_tables))
                      AND NOT (n.nspname || '.' || c.relname LIKE ANY (s.exclude_tables))
                      AND p.pubname = CASE WHEN pgtide.table_has_identity(c.oid)
                                           THEN s.publication ELSE s.keyless_publication END))
        LOOP
            EXECUTE format('ALTER PUBLICATION %I DROP TABLE %s', t.pubname, t.qname);
            source := s.name; action := 'drop from ' || t.pubname; table_name := t.plain;
            RETURN NEXT;
        END LOOP;
    END LOOP;
    PERFORM set_config('pgtide.in_sync', 'off', true);
END
$$;

-- record_ddl stores one DDL statement in the log table. It runs with its
-- owner's rights, so the roles that run DDL need none on the table.
CREATE OR REPLACE FUNCTION pgtide.record_ddl(p_tag text, p_statement text, p_search_path text, p_objects text[])
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
BEGIN
    INSERT INTO pgtide.ddl_log (tag, statement, search_path, username, objects)
    VALUES (p_tag, p_statement, p_search_path, session_user, p_objects);
END
$$;

-- on_ddl records each DDL statement once per transaction and query text,
-- then re-syncs the publications so a new or altered table never makes the
-- source's UPDATE or DELETE fail. It runs as the role that ran the DDL and
-- keeps that role's search_path (which is what the log must record), so
-- every name in it is qualified.
CREATE OR REPLACE FUNCTION pgtide.on_ddl() RETURNS event_trigger
LANGUAGE plpgsql AS $$
DECLARE
    q    text := pg_catalog.current_query();
    seen text := pg_catalog.current_setting('pgtide.ddl_seen', true);
    me   text := pg_catalog.txid_current()::text || ':' || pg_catalog.md5(coalesce(pg_catalog.current_query(), ''));
    objs text[];
BEGIN
    IF pg_catalog.current_setting('pgtide.in_sync', true) = 'on' THEN
        RETURN;
    END IF;
    IF seen IS DISTINCT FROM me THEN
        PERFORM pg_catalog.set_config('pgtide.ddl_seen', me, true);
        SELECT coalesce(pg_catalog.array_agg(DISTINCT c.object_identity)
                        FILTER (WHERE c.object_identity IS NOT NULL), '{}')
          INTO objs FROM pg_catalog.pg_event_trigger_ddl_commands() c;
        PERFORM pgtide.record_ddl(tg_tag, coalesce(q, ''), pg_catalog.current_setting('search_path'), objs);
    END IF;
    IF tg_tag IN ('CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO', 'ALTER TABLE',
                  'CREATE INDEX', 'ALTER INDEX', 'DROP INDEX', 'ALTER SCHEMA') THEN
        PERFORM pgtide.sync_publications();
    END IF;
END
$$;

-- Every role that runs DDL calls into this schema through the trigger.
GRANT USAGE ON SCHEMA pgtide TO PUBLIC;
