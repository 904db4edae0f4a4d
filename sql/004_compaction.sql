-- Compaction of closed days (issue 13): a day's rows rewritten as one row per (target, day) whose
-- columns are arrays in scheduled_at order, compressed by TOAST with lz4; the row partition is
-- dropped in the same transaction. check_results reads both forms (checks_all), so readers see
-- every check unchanged. The steps run in one transaction driven by webmon-writer's compactor and
-- `webmon compact` (src/writer/compactor.cpp):
--   BEGIN; pg_try_advisory_xact_lock(compaction); webmon_compact_chunks(day);
--   webmon_compact_chunk(day, lo, hi) for each chunk of targets; webmon_compact_finish(day, read); COMMIT
-- so a compaction killed anywhere leaves the day as rows (rolled back) or compacted (committed).
--
-- Encoding (per check, arrays in the order of (scheduled_at, started_at, checker_id, location_id)):
--   scheduled_us  microseconds after the previous check's scheduled_at (the first: after the day's
--                 start): a fixed interval is one repeated value, which lz4 reduces to nothing;
--   started_us    started_at - scheduled_at in microseconds (small);
--   *_us          durations (real seconds) as integer microseconds, NULL kept as NULL (a float4 that
--                 came from microseconds reads back as the same float4; digits below the microsecond
--                 are rounded away); total_time and ttfb_time as their difference from
--                 http_response_time when there is one (they move with it, so the difference repeats);
--   *_hi, *_lo    those integers and body_bytes each as two arrays (webmon_split_*): the low
--                 16 bits, and the rest, which repeats;
--   the rest      the column's own values (smallint, boolean, inet, text): values that repeat run
--                 after run (status, error, peer, detail, checker, certificate) are what lz4's
--                 dictionary window removes, so no second dictionary is kept in the row.
-- NULL elements cost a bit of the array's null bitmap.

CREATE TABLE checks_compact (
  target_id          integer NOT NULL,
  day                date NOT NULL,                -- the UTC day
  n                  integer NOT NULL,             -- checks in the row
  first_at           timestamptz NOT NULL,         -- min and max scheduled_at, for people and tools
  last_at            timestamptz NOT NULL,
  scheduled_us_hi    integer[] COMPRESSION lz4 NOT NULL,
  scheduled_us_lo    smallint[] COMPRESSION lz4 NOT NULL,
  started_us_hi      integer[] COMPRESSION lz4 NOT NULL,
  started_us_lo      smallint[] COMPRESSION lz4 NOT NULL,
  tls_cert_not_after timestamptz[] COMPRESSION lz4 NOT NULL,
  checker_id         integer[] COMPRESSION lz4 NOT NULL,
  total_us_hi        smallint[] COMPRESSION lz4 NOT NULL,  -- minus http_response where that is not NULL
  total_us_lo        smallint[] COMPRESSION lz4 NOT NULL,
  http_response_us_hi smallint[] COMPRESSION lz4 NOT NULL,
  http_response_us_lo smallint[] COMPRESSION lz4 NOT NULL,
  dns_us_hi          smallint[] COMPRESSION lz4 NOT NULL,
  dns_us_lo          smallint[] COMPRESSION lz4 NOT NULL,
  connect_us_hi      smallint[] COMPRESSION lz4 NOT NULL,
  connect_us_lo      smallint[] COMPRESSION lz4 NOT NULL,
  tls_us_hi          smallint[] COMPRESSION lz4 NOT NULL,
  tls_us_lo          smallint[] COMPRESSION lz4 NOT NULL,
  ttfb_us_hi         smallint[] COMPRESSION lz4 NOT NULL,  -- the same
  ttfb_us_lo         smallint[] COMPRESSION lz4 NOT NULL,
  transfer_us_hi     smallint[] COMPRESSION lz4 NOT NULL,
  transfer_us_lo     smallint[] COMPRESSION lz4 NOT NULL,
  body_bytes_hi      smallint[] COMPRESSION lz4 NOT NULL,
  body_bytes_lo      smallint[] COMPRESSION lz4 NOT NULL,
  peer_port          integer[] COMPRESSION lz4 NOT NULL,
  http_status        smallint[] COMPRESSION lz4 NOT NULL,
  redirects          smallint[] COMPRESSION lz4 NOT NULL,
  error              smallint[] COMPRESSION lz4 NOT NULL,
  ok                 boolean[] COMPRESSION lz4 NOT NULL,
  regexp_match       boolean[] COMPRESSION lz4 NOT NULL,
  peer               inet[] COMPRESSION lz4 NOT NULL,
  error_detail       text[] COMPRESSION lz4 NOT NULL,
  dns_cached         boolean[] COMPRESSION lz4 NOT NULL,
  location_id        smallint[] COMPRESSION lz4 NOT NULL,
  PRIMARY KEY (target_id, day)
) WITH (toast_tuple_target = 128);  -- compress every array worth it, not only rows over 2 kB
-- "All targets over some days" (retention, reports); the primary key serves "one target".
CREATE INDEX checks_compact_day ON checks_compact (day);

-- An integer as two arrays' worth: its low 16 bits (a smallint, offset by 32768) and the rest. lz4
-- finds nothing to match in a column of varying 4- or 8-byte integers, whose upper bytes are
-- nearly always the same small number; split, the upper parts are runs it removes and only the
-- low 16 bits cost their 2 bytes.
CREATE FUNCTION webmon_split_lo(v bigint) RETURNS smallint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT ((v & 65535) - 32768)::smallint $$;
CREATE FUNCTION webmon_split_hi(v bigint) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT (v >> 16)::integer $$;
CREATE FUNCTION webmon_split_join(hi integer, lo smallint) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT (hi::bigint << 16) | (lo + 32768) $$;

-- The checks of one compact row, in the columns of `checks` (target_id aside). Inlined by the
-- planner into the view below (one SQL SELECT), so a query reads the arrays it uses.
CREATE FUNCTION webmon_compact_unnest(c checks_compact)
RETURNS TABLE (scheduled_at timestamptz, started_at timestamptz, tls_cert_not_after timestamptz,
               checker_id integer, total_time real, http_response_time real, dns_time real,
               connect_time real, tls_time real, ttfb_time real, transfer_time real, body_bytes integer,
               peer_port integer, http_status smallint, redirects smallint, error smallint, ok boolean,
               regexp_match boolean, peer inet, error_detail text, dns_cached boolean,
               location_id smallint)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT y.s, y.s + y.st * interval '1 microsecond', y.cert, y.chk,
         ((y.tot + coalesce(y.hrt, 0)) / 1000000.0::float8)::real, (y.hrt / 1000000.0::float8)::real,
         (y.dns / 1000000.0::float8)::real, (y.con / 1000000.0::float8)::real,
         (y.tls / 1000000.0::float8)::real, ((y.ttfb + coalesce(y.hrt, 0)) / 1000000.0::float8)::real,
         (y.xfer / 1000000.0::float8)::real,
         y.body::integer, y.port, y.status, y.redir, y.err, y.ok, y.rx, y.peer, y.detail, y.cached, y.loc
  FROM (SELECT (c.day::timestamp AT TIME ZONE 'UTC')
                 + sum(webmon_split_join(x.sd_hi, x.sd_lo)::float8) OVER (ORDER BY x.o ROWS UNBOUNDED PRECEDING)
                   * interval '1 microsecond' AS s,
               webmon_split_join(x.st_hi, x.st_lo) AS st, x.cert, x.chk,
               webmon_split_join(x.tot_hi, x.tot_lo) AS tot,
               webmon_split_join(x.hrt_hi, x.hrt_lo) AS hrt,
               webmon_split_join(x.dns_hi, x.dns_lo) AS dns,
               webmon_split_join(x.con_hi, x.con_lo) AS con,
               webmon_split_join(x.tls_hi, x.tls_lo) AS tls,
               webmon_split_join(x.ttfb_hi, x.ttfb_lo) AS ttfb,
               webmon_split_join(x.xfer_hi, x.xfer_lo) AS xfer,
               webmon_split_join(x.body_hi, x.body_lo) AS body, x.port, x.status, x.redir, x.err,
               x.ok, x.rx, x.peer, x.detail, x.cached, x.loc
        FROM unnest(c.scheduled_us_hi, c.scheduled_us_lo, c.started_us_hi, c.started_us_lo,
                    c.tls_cert_not_after, c.checker_id, c.total_us_hi, c.total_us_lo,
                    c.http_response_us_hi, c.http_response_us_lo, c.dns_us_hi, c.dns_us_lo,
                    c.connect_us_hi, c.connect_us_lo, c.tls_us_hi, c.tls_us_lo, c.ttfb_us_hi,
                    c.ttfb_us_lo, c.transfer_us_hi, c.transfer_us_lo, c.body_bytes_hi,
                    c.body_bytes_lo, c.peer_port, c.http_status, c.redirects, c.error, c.ok,
                    c.regexp_match, c.peer, c.error_detail, c.dns_cached, c.location_id)
             WITH ORDINALITY AS x(sd_hi, sd_lo, st_hi, st_lo, cert, chk, tot_hi, tot_lo, hrt_hi,
                                  hrt_lo, dns_hi, dns_lo, con_hi, con_lo, tls_hi, tls_lo, ttfb_hi,
                                  ttfb_lo, xfer_hi, xfer_lo, body_hi, body_lo, port, status, redir,
                                  err, ok, rx, peer, detail, cached, loc, o)) y
$$;

-- Every check, stored as a row or compacted, in the columns of `checks`.
CREATE VIEW checks_all AS
SELECT c.scheduled_at, c.started_at, c.tls_cert_not_after, c.target_id, c.checker_id, c.total_time,
       c.http_response_time, c.dns_time, c.connect_time, c.tls_time, c.ttfb_time, c.transfer_time,
       c.body_bytes, c.peer_port, c.http_status, c.redirects, c.error, c.ok, c.regexp_match, c.peer,
       c.error_detail, c.dns_cached, c.location_id
FROM checks c
UNION ALL
SELECT u.scheduled_at, u.started_at, u.tls_cert_not_after, cc.target_id, u.checker_id, u.total_time,
       u.http_response_time, u.dns_time, u.connect_time, u.tls_time, u.ttfb_time, u.transfer_time,
       u.body_bytes, u.peer_port, u.http_status, u.redirects, u.error, u.ok, u.regexp_match, u.peer,
       u.error_detail, u.dns_cached, u.location_id
FROM checks_compact cc
CROSS JOIN LATERAL webmon_compact_unnest(cc) u;

-- The view for people keeps its columns, in their order; it now reads compacted days too. Each
-- branch joins targets itself, so that a condition on `target` reaches the compact rows as their
-- key (target_id, day): one target's compact rows are read, not every target's.
CREATE OR REPLACE VIEW check_results AS
SELECT t.name              AS target,
       t.url               AS url,
       c.scheduled_at,
       c.started_at,
       c.http_response_time,
       c.http_status,
       c.regexp_match,
       c.ok,
       e.name              AS error,
       c.error_detail,
       c.dns_cached,
       l.name              AS location
FROM checks c
JOIN targets t ON t.id = c.target_id
LEFT JOIN error_classes e ON e.id = c.error
LEFT JOIN locations l ON l.id = c.location_id
UNION ALL
SELECT t.name, t.url, u.scheduled_at, u.started_at, u.http_response_time, u.http_status, u.regexp_match, u.ok,
       e.name, u.error_detail, u.dns_cached, l.name
FROM checks_compact cc
JOIN targets t ON t.id = cc.target_id
CROSS JOIN LATERAL webmon_compact_unnest(cc) u
LEFT JOIN error_classes e ON e.id = u.error
LEFT JOIN locations l ON l.id = u.location_id;

-- A test-only stop: when the session's webmon.compact_test_pause names this point, wait until the
-- test releases its advisory lock (tests kill the compaction here). Costs one setting read.
CREATE FUNCTION webmon_compact_test_pause(point text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  saved text;
BEGIN
  IF current_setting('webmon.compact_test_pause', true) IS DISTINCT FROM point THEN
    RETURN;
  END IF;
  saved := current_setting('lock_timeout');
  PERFORM set_config('lock_timeout', '0', true);
  PERFORM pg_advisory_xact_lock_shared(hashtext('webmon.compact_test_pause'));
  PERFORM set_config('lock_timeout', saved, true);
END
$$;

-- Encodes the checks that `source` (a SELECT of checks_all's columns, or a data-modifying WITH
-- named by `with_clause` feeding it) gives for `day` into checks_compact: one row per target,
-- replacing the target's row of that day (the source includes that row's checks when it merges).
CREATE FUNCTION webmon_compact_encode(day date, with_clause text, source text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE coalesce(with_clause, '') || format($q$
    INSERT INTO checks_compact AS cc (target_id, day, n, first_at, last_at, scheduled_us_hi, scheduled_us_lo, started_us_hi,
        started_us_lo, tls_cert_not_after, checker_id, total_us_hi, total_us_lo, http_response_us_hi,
        http_response_us_lo, dns_us_hi, dns_us_lo, connect_us_hi, connect_us_lo, tls_us_hi,
        tls_us_lo, ttfb_us_hi, ttfb_us_lo, transfer_us_hi, transfer_us_lo, body_bytes_hi,
        body_bytes_lo, peer_port, http_status, redirects, error, ok, regexp_match, peer,
        error_detail, dns_cached, location_id)
    SELECT target_id, %1$L::date, count(*), min(scheduled_at), max(scheduled_at),
           array_agg(webmon_split_hi(sd) ORDER BY o), array_agg(webmon_split_lo(sd) ORDER BY o),
           array_agg(webmon_split_hi(st) ORDER BY o), array_agg(webmon_split_lo(st) ORDER BY o),
           array_agg(tls_cert_not_after ORDER BY o), array_agg(checker_id ORDER BY o),
           array_agg(webmon_split_hi(tot - coalesce(hrt, 0)) ORDER BY o),
           array_agg(webmon_split_lo(tot - coalesce(hrt, 0)) ORDER BY o),
           array_agg(webmon_split_hi(hrt) ORDER BY o), array_agg(webmon_split_lo(hrt) ORDER BY o),
           array_agg(webmon_split_hi(dns) ORDER BY o), array_agg(webmon_split_lo(dns) ORDER BY o),
           array_agg(webmon_split_hi(con) ORDER BY o), array_agg(webmon_split_lo(con) ORDER BY o),
           array_agg(webmon_split_hi(tls) ORDER BY o), array_agg(webmon_split_lo(tls) ORDER BY o),
           array_agg(webmon_split_hi(ttfb - coalesce(hrt, 0)) ORDER BY o),
           array_agg(webmon_split_lo(ttfb - coalesce(hrt, 0)) ORDER BY o),
           array_agg(webmon_split_hi(xfer) ORDER BY o), array_agg(webmon_split_lo(xfer) ORDER BY o),
           array_agg(webmon_split_hi(body_bytes) ORDER BY o),
           array_agg(webmon_split_lo(body_bytes) ORDER BY o), array_agg(peer_port ORDER BY o),
           array_agg(http_status ORDER BY o), array_agg(redirects ORDER BY o),
           array_agg(error ORDER BY o), array_agg(ok ORDER BY o), array_agg(regexp_match ORDER BY o),
           array_agg(peer ORDER BY o), array_agg(error_detail ORDER BY o),
           array_agg(dns_cached ORDER BY o), array_agg(location_id ORDER BY o)
    FROM (SELECT s.*,
                 row_number() OVER w AS o,
                 (extract(epoch FROM s.scheduled_at - coalesce(lag(s.scheduled_at) OVER w,
                                                               %1$L::timestamp AT TIME ZONE 'UTC')) * 1000000)::bigint AS sd,
                 (extract(epoch FROM s.started_at - s.scheduled_at) * 1000000)::bigint AS st,
                 (s.total_time::float8 * 1000000)::integer AS tot,
                 (s.http_response_time::float8 * 1000000)::integer AS hrt,
                 (s.dns_time::float8 * 1000000)::integer AS dns,
                 (s.connect_time::float8 * 1000000)::integer AS con,
                 (s.tls_time::float8 * 1000000)::integer AS tls,
                 (s.ttfb_time::float8 * 1000000)::integer AS ttfb,
                 (s.transfer_time::float8 * 1000000)::integer AS xfer
          FROM (%2$s) s
          WINDOW w AS (PARTITION BY s.target_id
                       ORDER BY s.scheduled_at, s.started_at, s.checker_id, s.location_id)) x
    GROUP BY target_id
    ON CONFLICT (target_id, day) DO UPDATE SET
      n = EXCLUDED.n, first_at = EXCLUDED.first_at, last_at = EXCLUDED.last_at,
      scheduled_us_hi = EXCLUDED.scheduled_us_hi, scheduled_us_lo = EXCLUDED.scheduled_us_lo,
      started_us_hi = EXCLUDED.started_us_hi, started_us_lo = EXCLUDED.started_us_lo,
      tls_cert_not_after = EXCLUDED.tls_cert_not_after, checker_id = EXCLUDED.checker_id,
      total_us_hi = EXCLUDED.total_us_hi, total_us_lo = EXCLUDED.total_us_lo,
      http_response_us_hi = EXCLUDED.http_response_us_hi,
      http_response_us_lo = EXCLUDED.http_response_us_lo, dns_us_hi = EXCLUDED.dns_us_hi,
      dns_us_lo = EXCLUDED.dns_us_lo, connect_us_hi = EXCLUDED.connect_us_hi,
      connect_us_lo = EXCLUDED.connect_us_lo, tls_us_hi = EXCLUDED.tls_us_hi,
      tls_us_lo = EXCLUDED.tls_us_lo, ttfb_us_hi = EXCLUDED.ttfb_us_hi,
      ttfb_us_lo = EXCLUDED.ttfb_us_lo, transfer_us_hi = EXCLUDED.transfer_us_hi,
      transfer_us_lo = EXCLUDED.transfer_us_lo, body_bytes_hi = EXCLUDED.body_bytes_hi,
      body_bytes_lo = EXCLUDED.body_bytes_lo, peer_port = EXCLUDED.peer_port,
      http_status = EXCLUDED.http_status, redirects = EXCLUDED.redirects, error = EXCLUDED.error,
      ok = EXCLUDED.ok, regexp_match = EXCLUDED.regexp_match, peer = EXCLUDED.peer,
      error_detail = EXCLUDED.error_detail, dns_cached = EXCLUDED.dns_cached,
      location_id = EXCLUDED.location_id
  $q$, day, source);
END
$$;

-- The columns of checks_all, as the encoder's sources select them.
-- `target_alias` names the relation that gives target_id when it is not `alias` (a compact row's).
CREATE FUNCTION webmon_compact_columns(alias text, target_alias text DEFAULT NULL) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
  SELECT string_agg(format('%I.%I', CASE WHEN col = 'target_id' THEN coalesce(target_alias, alias) ELSE alias END, col),
                    ', ' ORDER BY i)
  FROM unnest(ARRAY['scheduled_at', 'started_at', 'tls_cert_not_after', 'target_id', 'checker_id', 'total_time',
                    'http_response_time', 'dns_time', 'connect_time', 'tls_time', 'ttfb_time', 'transfer_time',
                    'body_bytes', 'peer_port', 'http_status', 'redirects', 'error', 'ok', 'regexp_match', 'peer',
                    'error_detail', 'dns_cached', 'location_id']) WITH ORDINALITY AS c(col, i)
$$;

-- Step 1: the chunks of targets (ranges of target ids, `per_chunk` targets each) that the day's
-- partition holds; none when it has no partition or the partition is empty.
CREATE FUNCTION webmon_compact_chunks(day date, per_chunk integer) RETURNS TABLE (lo integer, hi integer)
LANGUAGE plpgsql AS $$
DECLARE
  part text := 'checks_' || to_char(day, 'YYYYMMDD');
BEGIN
  PERFORM webmon_compact_test_pause('chunks');
  IF to_regclass(part) IS NULL THEN
    RETURN;
  END IF;
  RETURN QUERY EXECUTE format(
    'SELECT min(t)::integer, max(t)::integer FROM (SELECT t, (row_number() OVER (ORDER BY t) - 1) / %s AS g '
    'FROM (SELECT DISTINCT target_id AS t FROM ONLY %I) d) x GROUP BY g ORDER BY 1',
    greatest(per_chunk, 1), part);
END
$$;

-- Step 2, per chunk: the chunk's targets' rows of the day's partition merged with their compact
-- row of that day (if a late row made one earlier) into new compact rows. Returns the number of
-- partition rows read, which step 3 holds against the partition once it is locked.
CREATE FUNCTION webmon_compact_chunk(day date, lo integer, hi integer) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  part text := 'checks_' || to_char(day, 'YYYYMMDD');
  n_before bigint;
  n_after bigint;
BEGIN
  IF to_regclass(part) IS NULL THEN
    RETURN 0;
  END IF;
  SELECT coalesce(sum(n), 0) INTO n_before FROM checks_compact cc
  WHERE cc.day = webmon_compact_chunk.day AND cc.target_id BETWEEN lo AND hi;
  PERFORM webmon_compact_encode(day, NULL, format(
    'SELECT %s FROM ONLY %I r WHERE r.target_id BETWEEN %s AND %s '
    'UNION ALL SELECT %s FROM checks_compact cc CROSS JOIN LATERAL webmon_compact_unnest(cc) u '
    'WHERE cc.day = %L AND cc.target_id BETWEEN %s AND %s',
    webmon_compact_columns('r'), part, lo, hi,
    webmon_compact_columns('u', 'cc'), day, lo, hi));
  SELECT coalesce(sum(n), 0) INTO n_after FROM checks_compact cc
  WHERE cc.day = webmon_compact_chunk.day AND cc.target_id BETWEEN lo AND hi;
  PERFORM webmon_compact_test_pause('chunk');
  RETURN n_after - n_before;
END
$$;

-- Step 3: makes the day's compact rows the only copy. The partition is locked against writes (a
-- late row waits at most this transaction's end) and counted: if rows came in since step 2 read
-- it, nothing is dropped and -1 is returned (the caller rolls back and tries again later). The
-- day's rows in checks_default move into the compact rows in the statement that deletes them.
-- Then the partition is dropped: that needs a moment's exclusive lock on `checks`, asked for with
-- a short lock_timeout and again after a pause, so ingest never waits long behind it. Returns
-- the number of checks the day now has in compact rows.
CREATE FUNCTION webmon_compact_finish(day date, read_from_partition bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  part text := 'checks_' || to_char(day, 'YYYYMMDD');
  lo timestamptz := day::timestamp AT TIME ZONE 'UTC';
  hi timestamptz := (day + 1)::timestamp AT TIME ZONE 'UTC';
  saved text := current_setting('lock_timeout');
  counted bigint;
  total bigint;
BEGIN
  PERFORM webmon_compact_test_pause('finish');
  IF to_regclass(part) IS NOT NULL THEN
    PERFORM set_config('lock_timeout', '2s', true);
    EXECUTE format('LOCK TABLE ONLY %I IN EXCLUSIVE MODE', part);
    PERFORM set_config('lock_timeout', saved, true);
    EXECUTE format('SELECT count(*) FROM ONLY %I', part) INTO counted;
    IF counted <> read_from_partition THEN
      RETURN -1;
    END IF;
  END IF;
  PERFORM webmon_compact_encode(day,
    format('WITH moved AS (DELETE FROM ONLY checks_default WHERE scheduled_at >= %L AND scheduled_at < %L RETURNING *) ',
           lo, hi),
    format('SELECT %s FROM moved m UNION ALL SELECT %s FROM checks_compact cc CROSS JOIN LATERAL webmon_compact_unnest(cc) u '
           'WHERE cc.day = %L AND cc.target_id IN (SELECT target_id FROM moved)',
           webmon_compact_columns('m'), webmon_compact_columns('u', 'cc'), day));
  PERFORM webmon_compact_test_pause('drop');
  IF to_regclass(part) IS NOT NULL THEN
    FOR attempt IN 1..100 LOOP
      BEGIN
        PERFORM set_config('lock_timeout', '100ms', true);
        EXECUTE format('DROP TABLE %I', part);
        PERFORM set_config('lock_timeout', saved, true);
        EXIT;
      EXCEPTION WHEN lock_not_available THEN
        PERFORM set_config('lock_timeout', saved, true);
        IF attempt = 100 THEN
          RAISE;
        END IF;
        PERFORM pg_sleep(0.05 * least(attempt, 20));
      END;
    END LOOP;
  END IF;
  SELECT coalesce(sum(n), 0) INTO total FROM checks_compact cc WHERE cc.day = webmon_compact_finish.day;
  PERFORM webmon_compact_test_pause('commit');
  RETURN total;
END
$$;

-- The days before `until_day` that have something to compact: a partition with rows, or rows in
-- checks_default. Oldest first.
CREATE FUNCTION webmon_compaction_candidates(until_day date) RETURNS SETOF date
LANGUAGE plpgsql AS $$
DECLARE
  part record;
  has_rows boolean;
  d date;
BEGIN
  FOR part IN
    SELECT c.relname, to_date(substr(c.relname, 8), 'YYYYMMDD') AS day
    FROM pg_inherits i
    JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = 'checks'::regclass AND c.relname ~ '^checks_[0-9]{8}$'
    ORDER BY 2
  LOOP
    IF part.day < until_day THEN
      EXECUTE format('SELECT EXISTS (SELECT 1 FROM ONLY %I)', part.relname) INTO has_rows;
      IF has_rows THEN
        RETURN NEXT part.day;
      END IF;
    END IF;
  END LOOP;
  FOR d IN
    SELECT DISTINCT (scheduled_at AT TIME ZONE 'UTC')::date FROM ONLY checks_default
    WHERE scheduled_at < (until_day::timestamp AT TIME ZONE 'UTC') ORDER BY 1
  LOOP
    RETURN NEXT d;
  END LOOP;
END
$$;

-- Retention drops compact rows too (the rest as in 001).
CREATE OR REPLACE FUNCTION webmon_drop_checks_before(cutoff date) RETURNS integer
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
  DELETE FROM checks_compact WHERE day < cutoff;
  DELETE FROM dead_letters WHERE received_at < (cutoff::timestamp AT TIME ZONE 'UTC');
  RETURN dropped;
END
$$;
