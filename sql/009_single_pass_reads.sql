-- Faster reads of the open hours and of the runs (issue 13: `webmon stats --since 30d` and
-- `webmon report --period day --since 30d` within 2 s on a month of 1,000 targets at 15 s). The
-- same answers as 008's; nothing is emptied, and older binaries keep working on it.
--
-- webmon_check_summary reads the rows of `checks` (the hours not rolled up yet: up to 240,000 for
-- those 1,000 targets) in one hashed pass per group and histogram bucket, instead of copying them
-- into a CTE read five times (counts, histograms, last check, last error, and an anti-join for
-- the groups without a rollup, now skipped when there are none), and numbers their day or week
-- with date_bin instead of date_trunc with a time zone. 0.45-0.52 s instead of 0.78-1.22 s for the
-- report's periods on the bench's database (192,000 rows), 0.52-0.69 s instead of 0.76-1.05 s for
-- stats'.
--
-- webmon_incidents unnested every run of the window into a row and joined and numbered them with
-- seven window functions: 153,000 runs for that month, about 1.4 of its 1.5 s. Now
-- webmon_incident_spans walks the same rollup rows and checks once, in (target, location, time)
-- order, joining runs and opening and closing incidents as it goes (0.75-0.85 s), and
-- webmon_incidents names its targets, locations and error classes and orders them as before.

-- As in 008, but the rows of `checks` are grouped by (target, location, period, histogram bucket)
-- in the one pass that reads them; their groups and histograms come from those; their last check
-- and last error are found through the (target_id, scheduled_at) index; percentile_cont reads the
-- rows again only when some group has no rollup.
CREATE OR REPLACE FUNCTION webmon_check_summary(since timestamptz, period text DEFAULT NULL, only_target text DEFAULT NULL,
                                     only_location text DEFAULT NULL)
RETURNS TABLE (target_id integer, location_id smallint, period_start timestamptz, checks bigint, ok_checks bigint,
               responses bigint, rt_min real, rt_max real, p50 double precision, p95 double precision,
               p99 double precision, last_status smallint, last_error text, from_rollups bigint)
LANGUAGE plpgsql STABLE
SET work_mem = '64MB'  -- the groups of a month of 1,000 targets sort and hash in memory, not on disk
SET jit = off          -- compiling the plan took longer than it saved (0.1-0.3 s of 1-2 s)
SET enable_mergejoin = off  -- else the rows of `checks` are sorted to merge with their 1,000 groups
AS $f$
DECLARE
  ranges text;                -- the time ranges no rolled-up hour covers, as a condition on c.scheduled_at
  touched timestamptz[] := '{}';  -- with `period` day or week: the periods such a range is in
BEGIN
  -- A day's (week's) rollup row is the whole of its period, alone, unless rows of `checks` are read
  -- for that period too: a range of rows begins or ends in it (one cannot pass over it, since the
  -- row means an hour of it is rolled up; the range to 'infinity' begins after the last rolled-up
  -- hour). Hours from check_rollups are read only for the first day, whose daily row is not.
  -- (`touched` is read only with `period` day or week.)
  SELECT string_agg(format('(c.scheduled_at >= %L AND c.scheduled_at < %L)', g.lo, g.hi), ' OR '),
         coalesce(array_remove(array_agg(CASE WHEN isfinite(g.lo) THEN date_trunc(period, g.lo, 'UTC') END)
                               || array_agg(CASE WHEN isfinite(g.hi)
                                                 THEN date_trunc(period, g.hi - interval '1 microsecond', 'UTC') END),
                               NULL), '{}')
  INTO ranges, touched
  FROM webmon_rollup_gaps(since) g;
  RETURN QUERY EXECUTE format($q$
  WITH sel AS (
    SELECT t.id FROM targets t WHERE $3 IS NULL OR t.name = $3
  ), loc AS (
    SELECT CASE WHEN $4 IS NULL THEN NULL WHEN $4 = '' THEN 0
                ELSE coalesce((SELECT l.id FROM locations l WHERE l.name = $4), -1) END AS id
  ), rolled AS (
    -- Whole weeks in the window from the weekly rows (when the periods are weeks or the whole
    -- window), whole days from the daily rows, the hours of a day begun before the window's start.
    SELECT r.target_id, r.location_id, r.checks, r.ok_checks, r.responses, r.rt_min, r.rt_max, r.rt_buckets,
           r.rt_counts, r.last_at, r.last_started_at, r.last_status, r.last_error_at, r.last_error_started_at,
           r.last_error, CASE WHEN $2 IS NULL THEN '-infinity'::timestamptz ELSE date_trunc($2, r.week, 'UTC') END AS ps,
           r.rt_p
    FROM check_rollups_weekly r
    WHERE ($2 IS NULL OR ($2 = 'week' AND r.week = ANY ($5))) AND r.week >= $1 AND r.target_id IN (SELECT id FROM sel)
      AND ((SELECT id FROM loc) IS NULL OR r.location_id = (SELECT id FROM loc))
    UNION ALL
    SELECT r.target_id, r.location_id, r.checks, r.ok_checks, r.responses, r.rt_min, r.rt_max, r.rt_buckets,
           r.rt_counts, r.last_at, r.last_started_at, r.last_status, r.last_error_at, r.last_error_started_at,
           r.last_error, CASE WHEN $2 IS NULL THEN '-infinity'::timestamptz ELSE date_trunc($2, r.day, 'UTC') END,
           r.rt_p
    FROM check_rollups_daily r
    WHERE r.day >= $1 AND (NOT ($2 IS NULL OR $2 = 'week') OR date_trunc('week', r.day, 'UTC') < $1)
      AND ($2 IS DISTINCT FROM 'day' OR r.day = ANY ($5)) AND r.target_id IN (SELECT id FROM sel)
      AND ((SELECT id FROM loc) IS NULL OR r.location_id = (SELECT id FROM loc))
    UNION ALL
    SELECT r.target_id, r.location_id, r.checks, r.ok_checks, r.responses, r.rt_min, r.rt_max, r.rt_buckets,
           r.rt_counts, r.last_at, r.last_started_at, r.last_status, r.last_error_at, r.last_error_started_at,
           r.last_error, CASE WHEN $2 IS NULL THEN '-infinity'::timestamptz ELSE date_trunc($2, r.hour, 'UTC') END,
           NULL::float8[]
    FROM check_rollups r
    WHERE r.hour >= $1 AND r.hour < date_trunc('day', $1, 'UTC') + interval '1 day'
      AND date_trunc('day', $1, 'UTC') < $1 AND r.target_id IN (SELECT id FROM sel)
      AND ((SELECT id FROM loc) IS NULL OR r.location_id = (SELECT id FROM loc))
  ), alone AS (  -- the daily (weekly) rows that are their period alone: as they are, no grouping
    SELECT r.target_id, r.location_id, r.day AS ps, r.checks::bigint, r.ok_checks::bigint, r.responses::bigint,
           r.rt_min, r.rt_max, r.rt_p, r.last_status, r.last_error
    FROM check_rollups_daily r
    WHERE $2 = 'day' AND r.day >= $1 AND r.day <> ALL ($5) AND r.target_id IN (SELECT id FROM sel)
      AND ((SELECT id FROM loc) IS NULL OR r.location_id = (SELECT id FROM loc))
    UNION ALL
    SELECT r.target_id, r.location_id, r.week, r.checks::bigint, r.ok_checks::bigint, r.responses::bigint,
           r.rt_min, r.rt_max, r.rt_p, r.last_status, r.last_error
    FROM check_rollups_weekly r
    WHERE $2 = 'week' AND r.week >= $1 AND r.week <> ALL ($5) AND r.target_id IN (SELECT id FROM sel)
      AND ((SELECT id FROM loc) IS NULL OR r.location_id = (SELECT id FROM loc))
  ), raw_b AS (  -- the rows in the ranges, in one hashed pass: per group and histogram bucket, the
                 -- counts, their least and greatest response time, when their last check and error were
    SELECT c.target_id, coalesce(c.location_id, 0)::smallint AS location_id, %4$s AS ps,
           webmon_rt_bucket(c.http_response_time) AS b, count(*) AS checks, count(*) FILTER (WHERE c.ok) AS ok_checks,
           count(c.http_response_time) AS responses, min(c.http_response_time) AS rt_min,
           max(c.http_response_time) AS rt_max, max(c.scheduled_at) AS last_at,
           max(c.scheduled_at) FILTER (WHERE c.error IS NOT NULL) AS last_error_at
    FROM checks c
    WHERE (%1$s) %2$s %3$s
    GROUP BY 1, 2, 3, 4
  ), raw_n AS (  -- the same per group
    SELECT w.target_id, w.location_id, w.ps, sum(w.checks)::bigint AS checks, sum(w.ok_checks)::bigint AS ok_checks,
           sum(w.responses)::bigint AS responses, min(w.rt_min) AS rt_min, max(w.rt_max) AS rt_max,
           max(w.last_at) AS last_at, max(w.last_error_at) AS last_error_at
    FROM raw_b w GROUP BY 1, 2, 3
  ), raw_last AS (  -- the check at last_at (of several, the last started): found by its time
    SELECT DISTINCT ON (n.target_id, n.location_id, n.ps) n.target_id, n.location_id, n.ps, c.started_at,
           c.http_status
    FROM raw_n n
    JOIN checks c ON c.target_id = n.target_id AND coalesce(c.location_id, 0) = n.location_id
                 AND c.scheduled_at = n.last_at AND (%1$s)
    ORDER BY n.target_id, n.location_id, n.ps, c.started_at DESC
  ), raw_last_error AS (  -- the check with an error at last_error_at
    SELECT DISTINCT ON (n.target_id, n.location_id, n.ps) n.target_id, n.location_id, n.ps, c.started_at,
           e.name || coalesce(': ' || nullif(c.error_detail, ''), '') AS error_text
    FROM raw_n n
    JOIN checks c ON c.target_id = n.target_id AND coalesce(c.location_id, 0) = n.location_id
                 AND c.scheduled_at = n.last_error_at AND c.error IS NOT NULL AND (%1$s)
    JOIN error_classes e ON e.id = c.error
    ORDER BY n.target_id, n.location_id, n.ps, c.started_at DESC
  ), alone_raw AS (  -- the groups of rows without a rollup
    SELECT n.target_id, n.location_id, n.ps FROM raw_n n
    WHERE NOT EXISTS (SELECT 1 FROM rolled r WHERE r.target_id = n.target_id AND r.location_id = n.location_id
                      AND r.ps = n.ps)
  ), raw_exact AS (  -- their percentile_cont (the others' come from histograms): the rows read again, if any
    SELECT c.target_id, coalesce(c.location_id, 0)::smallint AS location_id, %4$s AS ps,
           percentile_cont(ARRAY[0.50, 0.95, 0.99]::float8[]) WITHIN GROUP (ORDER BY c.http_response_time) AS exact
    FROM checks c
    WHERE EXISTS (SELECT 1 FROM alone_raw) AND (%1$s) %2$s %3$s
      AND (c.target_id, coalesce(c.location_id, 0)::smallint, %4$s) IN (SELECT * FROM alone_raw)
    GROUP BY 1, 2, 3
  ), raw_buckets AS (  -- the rows' histograms
    SELECT w.target_id, w.location_id, w.ps, w.b, w.responses AS n FROM raw_b w WHERE w.b IS NOT NULL
  ), raw_g AS (
    SELECT n.target_id, n.location_id, n.ps, n.checks, n.ok_checks, n.responses, n.rt_min, n.rt_max, n.last_at,
           l.started_at AS last_started_at, l.http_status AS last_status,
           CASE WHEN le.target_id IS NOT NULL THEN n.last_error_at END AS last_error_at,  -- one with a text
           le.started_at AS last_error_started_at, le.error_text AS last_error, x.exact
    FROM raw_n n
    JOIN raw_last l ON l.target_id = n.target_id AND l.location_id = n.location_id AND l.ps = n.ps
    LEFT JOIN raw_last_error le ON le.target_id = n.target_id AND le.location_id = n.location_id AND le.ps = n.ps
    LEFT JOIN raw_exact x ON x.target_id = n.target_id AND x.location_id = n.location_id AND x.ps = n.ps
  ), parts AS (  -- one row per rolled-up hour, and one per group of rows
    SELECT r.target_id, r.location_id, r.ps, r.checks::bigint, r.ok_checks::bigint, r.responses::bigint, r.rt_min,
           r.rt_max, r.last_at, r.last_started_at, r.last_status, r.last_error_at, r.last_error_started_at,
           r.last_error, NULL::float8 AS e50, NULL::float8 AS e95, NULL::float8 AS e99, 1 AS rollups, r.rt_p
    FROM rolled r
    UNION ALL
    SELECT g.target_id, g.location_id, g.ps, g.checks, g.ok_checks, g.responses, g.rt_min, g.rt_max, g.last_at,
           g.last_started_at, g.last_status, g.last_error_at, g.last_error_started_at, g.last_error,
           g.exact[1], g.exact[2], g.exact[3], 0, NULL::float8[]
    FROM raw_g g
  ), g AS (
    SELECT p.target_id, p.location_id, p.ps, sum(p.checks)::bigint AS checks, sum(p.ok_checks)::bigint AS ok_checks,
           sum(p.responses)::bigint AS responses, min(p.rt_min) AS rt_min, max(p.rt_max) AS rt_max,
           sum(p.rollups)::bigint AS rollups, max(p.e50) AS e50, max(p.e95) AS e95, max(p.e99) AS e99,
           count(*) = 1 AND sum(p.rollups) = 1 AND min(p.rt_p) IS NOT NULL AS single, min(p.rt_p) AS single_p,
           (array_agg(p.last_status ORDER BY p.last_at DESC, p.last_started_at DESC))[1] AS last_status,
           (array_agg(p.last_error ORDER BY p.last_error_at DESC, p.last_error_started_at DESC)
              FILTER (WHERE p.last_error IS NOT NULL))[1] AS last_error
    FROM parts p GROUP BY 1, 2, 3
  ), hist AS (  -- the groups of several parts, one a rollup: their histograms merged with their rows'
    SELECT y.target_id, y.location_id, y.ps, array_agg(y.b ORDER BY y.b) AS b, array_agg(y.n ORDER BY y.b) AS n
    FROM (SELECT x.target_id, x.location_id, x.ps, x.b, sum(x.n)::bigint AS n
          FROM (SELECT r.target_id, r.location_id, r.ps, u.b, u.n
                FROM rolled r CROSS JOIN LATERAL unnest(r.rt_buckets, r.rt_counts) AS u(b, n)
                WHERE (r.target_id, r.location_id, r.ps) IN (SELECT m.target_id, m.location_id, m.ps FROM g m
                                                             WHERE m.rollups > 0 AND NOT m.single)
                UNION ALL
                SELECT k.target_id, k.location_id, k.ps, k.b, k.n
                FROM raw_buckets k
                WHERE (k.target_id, k.location_id, k.ps) IN (SELECT m.target_id, m.location_id, m.ps FROM g m
                                                             WHERE m.rollups > 0)) x
          GROUP BY 1, 2, 3, 4) y
    GROUP BY 1, 2, 3
  )
  SELECT f.target_id, f.location_id, f.ps, f.checks, f.ok_checks, f.responses, f.rt_min, f.rt_max,
         CASE WHEN f.rollups = 0 THEN f.e50 ELSE f.p[1] END, CASE WHEN f.rollups = 0 THEN f.e95 ELSE f.p[2] END,
         CASE WHEN f.rollups = 0 THEN f.e99 ELSE f.p[3] END, f.last_status, f.last_error, f.rollups
  FROM (SELECT g.*, CASE WHEN g.single THEN g.single_p WHEN g.rollups > 0 THEN
                      webmon_rt_percentiles(h.b, h.n, g.responses, '{0.50,0.95,0.99}', g.rt_min, g.rt_max) END AS p
        FROM g
        LEFT JOIN hist h ON h.target_id = g.target_id AND h.location_id = g.location_id AND h.ps = g.ps
        OFFSET 0) f  -- not pulled up: p would be computed once for each of its three uses
  UNION ALL
  SELECT a.target_id, a.location_id, a.ps, a.checks, a.ok_checks, a.responses, a.rt_min, a.rt_max, a.rt_p[1],
         a.rt_p[2], a.rt_p[3], a.last_status, a.last_error, 1::bigint
  FROM alone a
  $q$, coalesce(ranges, 'false'),
     -- Only when asked: without them the planner reads the open hours' partitions in one pass
     -- instead of one index scan per target that it expected to find almost empty.
     CASE WHEN only_target IS NOT NULL THEN 'AND c.target_id IN (SELECT id FROM sel)' ELSE '' END,
     CASE WHEN only_location IS NOT NULL THEN 'AND coalesce(c.location_id, 0) = (SELECT id FROM loc)' ELSE '' END,
     -- A check's period: date_bin for days and weeks (UTC days; weeks from a Monday), a tenth of
     -- date_trunc's cost with a time zone, which was 0.14 s of 240,000 rows.
     CASE WHEN period IS NULL THEN '''-infinity''::timestamptz'
          WHEN period = 'day' THEN 'date_bin(''1 day'', c.scheduled_at, ''2000-01-03 00:00:00+00'')'
          WHEN period = 'week' THEN 'date_bin(''7 days'', c.scheduled_at, ''2000-01-03 00:00:00+00'')'
          ELSE 'date_trunc($2, c.scheduled_at, ''UTC'')' END)
  USING since, period, only_target, only_location, touched;
END
$f$;

-- The incidents of every target (or only_target) and location since `since`, by ids: as
-- webmon_incidents, but unordered and with the error class's id.
CREATE FUNCTION webmon_incident_spans(open_after integer, close_after integer, since timestamptz,
                                      only_target text)
RETURNS TABLE (target_id integer, location_id smallint, started_at timestamptz, ended_at timestamptz,
               duration interval, checks_failed bigint, error smallint, detail text, status smallint)
LANGUAGE plpgsql STABLE
SET work_mem = '64MB'  -- the rollup rows of a month of 1,000 targets (about 15 MB) sort in memory
SET jit = off
SET enable_mergejoin = off  -- else the rows of `checks` are sorted to merge with their groups
AS $f$
DECLARE
  ranges text;       -- the gaps as a condition on c.scheduled_at, with the bounds as constants
  gap_days date[];   -- the UTC days a gap begins or ends in: read by the hour, not from the daily row
  hours text;        -- the hours read from the hourly rows, as a condition on r.hour
  gap_starts timestamptz[];  -- each gap's lo, ascending: width_bucket() numbers a row's gap
  r record;          -- a rollup row, an all-ok group of rows, or a row: its runs as in the rollups
  ra timestamptz[];  -- r's arrays, expanded once (subscripting a record's field unpacks it each time)
  rc integer[];
  fe smallint[];
  fd text[];
  fs smallint[];
  len integer;
  i integer;
  n integer;
  cur_t integer;     -- the series (target, location) being walked
  cur_l smallint;
  last_seen timestamptz;  -- its last check so far: an open incident's duration runs to it
  failed bigint;     -- its failed checks so far, up to the run being joined
  run_ok boolean;    -- the run being joined (of several pieces when they have the same ok)
  run_len bigint;
  run_at timestamptz;
  run_error smallint;
  run_detail text;
  run_status smallint;
  is_open boolean;   -- the incident opened by a run of at least open_after failed checks
  o_at timestamptz;
  o_error smallint;
  o_detail text;
  o_status smallint;
  o_failed bigint;   -- `failed` when it opened
BEGIN
  SELECT coalesce(string_agg(format('(c.scheduled_at >= %L AND c.scheduled_at < %L)', g.lo, g.hi), ' OR '), 'false'),
         coalesce(array_agg(g.lo ORDER BY g.lo), '{}'),
         coalesce(array_remove(array_agg(CASE WHEN isfinite(g.lo) THEN (g.lo AT TIME ZONE 'UTC')::date END)
                               || array_agg(CASE WHEN isfinite(g.hi)
                                                 THEN ((g.hi - interval '1 microsecond') AT TIME ZONE 'UTC')::date END),
                               NULL), '{}')
  INTO ranges, gap_starts, gap_days
  FROM webmon_rollup_gaps(since) g;
  -- Those days and the rest of since's day, with the bounds as constants: an index range scan each.
  SELECT string_agg(format('(r.hour >= %L AND r.hour < %L)', greatest(d.lo, since), d.lo + interval '1 day'), ' OR ')
  INTO hours
  FROM (SELECT g::timestamp AT TIME ZONE 'UTC' AS lo FROM unnest(gap_days) g
        UNION
        SELECT date_trunc('day', since, 'UTC') WHERE isfinite(since) AND date_trunc('day', since, 'UTC') < since) d;
  -- A day's row joins its hours' runs end to end: across a gap (an hour not rolled up yet between
  -- two that are) that would join runs the gap's checks come between, so such days are read by
  -- the hour, their gaps from the rows. The periods and gaps do not overlap, so ordering the rows
  -- by their start orders their runs. A last row of NULLs ends the last series.
  FOR r IN EXECUTE format($q$
  WITH sel AS (
    SELECT t.id FROM targets t WHERE $1 IS NULL OR t.name = $1
  ), raw AS MATERIALIZED (
    SELECT c.target_id, coalesce(c.location_id, 0)::smallint AS location_id, c.scheduled_at, c.started_at, c.ok,
           c.error, c.error_detail, c.http_status, width_bucket(c.scheduled_at, $4) AS gap
    FROM checks c WHERE (%1$s) %3$s
  ), raw_g AS (  -- the rows of each target, location and gap: where all are ok, they are one run
    SELECT w.target_id, w.location_id, w.gap, min(w.scheduled_at) AS first_at, max(w.scheduled_at) AS last_at,
           count(*)::integer AS checks, bool_and(w.ok) AS all_ok
    FROM raw w GROUP BY 1, 2, 3
  )
  SELECT r.target_id, r.location_id, r.day AS at, 0::float8 AS ord, r.last_at, r.run_at, r.run_checks,
         r.fail_error, r.fail_detail, r.fail_status
  FROM check_rollups_daily r
  WHERE r.day >= $2 AND (r.day AT TIME ZONE 'UTC')::date <> ALL ($3) AND r.target_id IN (SELECT id FROM sel)
  UNION ALL
  SELECT r.target_id, r.location_id, r.hour, 0, r.last_at, r.run_at, r.run_checks, r.fail_error, r.fail_detail,
         r.fail_status
  FROM check_rollups r
  WHERE (%2$s) AND r.target_id IN (SELECT id FROM sel)
  UNION ALL
  SELECT g.target_id, g.location_id, g.first_at, 0, g.last_at, ARRAY[g.first_at], ARRAY[g.checks], NULL, NULL, NULL
  FROM raw_g g WHERE g.all_ok
  UNION ALL
  SELECT w.target_id, w.location_id, w.scheduled_at, extract(epoch FROM w.started_at)::float8, w.scheduled_at,
         ARRAY[w.scheduled_at], ARRAY[CASE WHEN w.ok THEN 1 ELSE -1 END], ARRAY[w.error], ARRAY[w.error_detail],
         ARRAY[w.http_status]
  FROM raw w JOIN raw_g g ON g.target_id = w.target_id AND g.location_id = w.location_id AND g.gap = w.gap
  WHERE NOT g.all_ok
  UNION ALL
  SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
  ORDER BY 1, 2, 3, 4
  $q$, ranges, coalesce(hours, 'false'),
     -- Only when asked: without it the planner reads the open hours' partitions in one pass
     CASE WHEN only_target IS NOT NULL THEN 'AND c.target_id IN (SELECT id FROM sel)' ELSE '' END)
  USING only_target, since, gap_days, gap_starts
  LOOP
    ra := r.run_at; rc := r.run_checks; fe := r.fail_error; fd := r.fail_detail; fs := r.fail_status;
    len := coalesce(array_length(rc, 1), 0);
    -- Piece 0, before the row's own, when the row begins another series: the last one ends there.
    i := CASE WHEN r.target_id IS DISTINCT FROM cur_t OR r.location_id IS DISTINCT FROM cur_l THEN 0 ELSE 1 END;
    WHILE i <= len LOOP
      n := CASE WHEN i > 0 THEN rc[i] END;
      IF i > 0 AND (n > 0) = run_ok THEN
        run_len := run_len + abs(n);  -- the same ok as the run before: one run
      ELSE
        -- The run before is whole: a failed one opens an incident if long enough, an ok one
        -- closes it if long enough; and where the series ends, what is still open is reported.
        IF run_len > 0 AND NOT run_ok THEN
          IF NOT is_open AND run_len >= open_after THEN
            is_open := true; o_at := run_at; o_error := run_error; o_detail := run_detail; o_status := run_status;
            o_failed := failed;
          END IF;
          failed := failed + run_len;
        END IF;
        IF is_open AND ((run_len > 0 AND run_ok AND run_len >= close_after) OR i = 0) THEN
          target_id := cur_t; location_id := cur_l; started_at := o_at;
          ended_at := CASE WHEN run_len > 0 AND run_ok AND run_len >= close_after THEN run_at END;
          duration := coalesce(ended_at, last_seen) - o_at; checks_failed := failed - o_failed;
          error := o_error; detail := o_detail; status := o_status;
          RETURN NEXT;
          is_open := false;
        END IF;
        IF i = 0 THEN  -- the new series
          cur_t := r.target_id; cur_l := r.location_id; last_seen := NULL; failed := 0; is_open := false;
          run_ok := NULL; run_len := 0;
        ELSE
          run_ok := n > 0; run_len := abs(n); run_at := ra[i];
          IF NOT run_ok THEN
            run_error := fe[i]; run_detail := fd[i]; run_status := fs[i];
          END IF;
        END IF;
      END IF;
      i := i + 1;
    END LOOP;
    last_seen := greatest(last_seen, r.last_at);
  END LOOP;
END
$f$;

-- As in 008: every incident since `since` with names, in the order they started.
CREATE OR REPLACE FUNCTION webmon_incidents(open_after integer DEFAULT 2, close_after integer DEFAULT 1,
                                 since timestamptz DEFAULT '-infinity', only_target text DEFAULT NULL)
RETURNS TABLE (target text, location text, started_at timestamptz, ended_at timestamptz, duration interval,
               checks_failed bigint, first_error text, first_error_detail text, first_http_status smallint)
LANGUAGE sql STABLE AS $$
  SELECT t.name, l.name, s.started_at, s.ended_at, s.duration, s.checks_failed, ec.name, s.detail, s.status
  FROM webmon_incident_spans(open_after, close_after, since, only_target) s
  JOIN targets t ON t.id = s.target_id
  LEFT JOIN locations l ON l.id = nullif(s.location_id, 0)
  LEFT JOIN error_classes ec ON ec.id = s.error
  ORDER BY s.started_at, t.name, l.name
$$;
