-- webmon schema v1: targets, checks (partitioned by day on scheduled_at), dead letters, the
-- writer's Kafka offsets, and the check_results view for people. Applied by webmon-writer at start
-- and by `webmon migrate`; never edit this file once released: add 002_... instead.

CREATE TABLE targets (
  id         integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- the natural distribution key
  name       text NOT NULL UNIQUE,
  url        text NOT NULL,          -- the URL of the most recent check
  first_seen timestamptz NOT NULL,
  last_seen  timestamptz NOT NULL    -- refreshed at most about once a minute per writer
);

-- Checker instances (the message's `checker` field), so that each row carries 4 bytes, not a name.
CREATE TABLE checkers (
  id   integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name text NOT NULL UNIQUE
);

-- The error classes of message schema v1; checks.error holds the id, NULL for none.
CREATE TABLE error_classes (
  id   smallint PRIMARY KEY,
  name text NOT NULL UNIQUE
);
INSERT INTO error_classes (id, name) VALUES
  (1, 'dns'), (2, 'connect'), (3, 'tls'), (4, 'timeout'), (5, 'protocol'), (6, 'too_many_redirects');

-- One row per probe. Columns are ordered widest first so that alignment wastes no padding;
-- durations are seconds as real (float4: sub-microsecond below 10 s).
CREATE TABLE checks (
  scheduled_at       timestamptz NOT NULL,
  started_at         timestamptz NOT NULL,
  tls_cert_not_after timestamptz,
  target_id          integer NOT NULL,
  checker_id         integer NOT NULL,
  total_time         real NOT NULL,
  http_response_time real,
  dns_time           real,
  connect_time       real,
  tls_time           real,
  ttfb_time          real,
  transfer_time      real,
  body_bytes         integer NOT NULL,
  peer_port          integer,
  http_status        smallint,
  redirects          smallint NOT NULL,
  error              smallint,
  ok                 boolean NOT NULL,
  regexp_match       boolean,
  peer               inet,
  error_detail       text
) PARTITION BY RANGE (scheduled_at);

-- Rows whose day has no partition (far past or future) land here: no row is ever refused.
CREATE TABLE checks_default PARTITION OF checks DEFAULT;

-- "One target over a time range".
CREATE INDEX checks_target_time ON checks (target_id, scheduled_at);
-- "All targets in the last hour": partition pruning picks the day, BRIN the block range (rows
-- arrive nearly in scheduled_at order, so a BRIN index is a few pages per day).
CREATE INDEX checks_time_brin ON checks USING brin (scheduled_at) WITH (pages_per_range = 32);

CREATE TABLE dead_letters (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  topic        text NOT NULL,
  "partition"  integer NOT NULL,
  "offset"     bigint NOT NULL,
  received_at  timestamptz NOT NULL DEFAULT now(),
  reason       text NOT NULL,
  key          bytea,
  value        bytea
);
CREATE INDEX dead_letters_received ON dead_letters (received_at);

-- Where each consumer group stands, written in the same transaction as the rows.
CREATE TABLE ingest_offsets (
  group_id     text NOT NULL,
  topic        text NOT NULL,
  "partition"  integer NOT NULL,
  next_offset  bigint NOT NULL,
  updated_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (group_id, topic, "partition")
);

CREATE VIEW check_results AS
SELECT t.name              AS target,
       t.url               AS url,
       c.scheduled_at,
       c.started_at,
       c.http_response_time,
       c.http_status,
       c.regexp_match,
       c.ok,
       e.name              AS error,
       c.error_detail
FROM checks c
JOIN targets t ON t.id = c.target_id
LEFT JOIN error_classes e ON e.id = c.error;

-- Creates the partition of checks for one UTC day unless it exists, moving that day's rows out of
-- the default partition first (attaching would fail otherwise). Returns true when it created one.
CREATE FUNCTION webmon_ensure_checks_partition(day date) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
  part text := 'checks_' || to_char(day, 'YYYYMMDD');
  lo timestamptz := day::timestamp AT TIME ZONE 'UTC';
  hi timestamptz := (day + 1)::timestamp AT TIME ZONE 'UTC';
BEGIN
  IF to_regclass(part) IS NOT NULL THEN
    RETURN false;
  END IF;
  -- Writers race here; the loser finds the table made once it holds the lock.
  PERFORM pg_advisory_xact_lock(hashtext('webmon.checks.partitions'));
  IF to_regclass(part) IS NOT NULL THEN
    RETURN false;
  END IF;
  EXECUTE format('CREATE TABLE %I (LIKE checks INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part);
  EXECUTE format('WITH moved AS (DELETE FROM checks_default WHERE scheduled_at >= %L AND scheduled_at < %L RETURNING *) '
                 'INSERT INTO %I SELECT * FROM moved', lo, hi, part);
  EXECUTE format('ALTER TABLE checks ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', part, lo, hi);
  RETURN true;
END
$$;

-- Drops the daily partitions wholly before `cutoff` (a UTC day), and the default partition's and
-- dead_letters' rows before it. Returns the number of partitions dropped.
CREATE FUNCTION webmon_drop_checks_before(cutoff date) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  part record;
  dropped integer := 0;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('webmon.checks.partitions'));
  FOR part IN
    SELECT c.relname
    FROM pg_inherits i
    JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = 'checks'::regclass AND c.relname ~ '^checks_[0-9]{8}$'
  LOOP
    IF to_date(substr(part.relname, 8), 'YYYYMMDD') < cutoff THEN
      EXECUTE format('DROP TABLE %I', part.relname);
      dropped := dropped + 1;
    END IF;
  END LOOP;
  DELETE FROM checks_default WHERE scheduled_at < (cutoff::timestamp AT TIME ZONE 'UTC');
  DELETE FROM dead_letters WHERE received_at < (cutoff::timestamp AT TIME ZONE 'UTC');
  RETURN dropped;
END
$$;
