-- p50/p95/p99 of each daily and weekly rollup, kept in the row (issue 13: `webmon report --period
-- day --since 30d` in 2 s). A report's day or week that one rollup row covers whole (29 of the 30
-- days of a 30-day report) took its percentiles from webmon_rt_percentiles over that row's
-- histogram at every read: 30,000 PL/pgSQL calls for 1,000 targets. They are now computed once,
-- when the row is written (a trigger, so webmon_rollup_merge is unchanged), from the same
-- histogram by the same function: the same values. The hourly rows keep none: a single hourly
-- rollup is a whole period only for a window that starts in its period's last hour, and its
-- histogram is then read as before.

ALTER TABLE check_rollups_daily ADD COLUMN rt_p double precision[];  -- {p50, p95, p99}; NULL: no responses
ALTER TABLE check_rollups_weekly ADD COLUMN rt_p double precision[];

CREATE FUNCTION webmon_rollup_set_percentiles() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  NEW.rt_p := webmon_rt_percentiles(NEW.rt_buckets, NEW.rt_counts::bigint[], NEW.responses, '{0.50,0.95,0.99}',
                                    NEW.rt_min, NEW.rt_max);
  RETURN NEW;
END
$$;
CREATE TRIGGER check_rollups_daily_percentiles
  BEFORE INSERT OR UPDATE OF rt_buckets, rt_counts, responses, rt_min, rt_max ON check_rollups_daily
  FOR EACH ROW EXECUTE FUNCTION webmon_rollup_set_percentiles();
CREATE TRIGGER check_rollups_weekly_percentiles
  BEFORE INSERT OR UPDATE OF rt_buckets, rt_counts, responses, rt_min, rt_max ON check_rollups_weekly
  FOR EACH ROW EXECUTE FUNCTION webmon_rollup_set_percentiles();

-- The rows written before this migration.
UPDATE check_rollups_daily
SET rt_p = webmon_rt_percentiles(rt_buckets, rt_counts::bigint[], responses, '{0.50,0.95,0.99}', rt_min, rt_max);
UPDATE check_rollups_weekly
SET rt_p = webmon_rt_percentiles(rt_buckets, rt_counts::bigint[], responses, '{0.50,0.95,0.99}', rt_min, rt_max);

-- As in 007, but the rolled-up hours are found by skipping through check_rollups_hour, one index
-- probe per hour, instead of reading every rollup row from `since` on: 720 probes instead of
-- 720,000 rows for 30 days of 1,000 targets. The same ranges.
CREATE OR REPLACE FUNCTION webmon_rollup_gaps(since timestamptz) RETURNS TABLE (lo timestamptz, hi timestamptz)
LANGUAGE sql STABLE AS $$
  WITH RECURSIVE hours AS (
    SELECT (SELECT min(r.hour) FROM check_rollups r WHERE r.hour >= since) AS hour
    UNION ALL
    SELECT (SELECT min(r.hour) FROM check_rollups r WHERE r.hour > h.hour) FROM hours h WHERE h.hour IS NOT NULL
  )
  SELECT x.lo, x.hi
  FROM (SELECT coalesce(lag(i.last_hour) OVER (ORDER BY i.first_hour) + interval '1 hour', since) AS lo,
               i.first_hour AS hi
        FROM (SELECT min(h.hour) AS first_hour, max(h.hour) AS last_hour
              FROM (SELECT d.hour, d.hour - row_number() OVER (ORDER BY d.hour) * interval '1 hour' AS island
                    FROM hours d WHERE d.hour IS NOT NULL) h
              GROUP BY h.island) i
        UNION ALL
        SELECT coalesce((SELECT max(d.hour) + interval '1 hour' FROM hours d), since), 'infinity') x
  WHERE x.lo < x.hi
$$;

-- As in 006, but: with `period` day or week, a daily (weekly) row that is its period alone is
-- returned as it is, with its stored rt_p, without going through the grouping (29 of the 30 days
-- of a 30-day report); another group that one rollup row makes alone takes its rt_p too; the
-- histograms are no longer carried through the grouping (only the groups of several parts read
-- them, from `rolled`); the ranges come from webmon_rollup_gaps; the rows of `checks` are
-- filtered by target and location only when one is asked for; and their groups are counted in one
-- hashed pass, their last check and last error found by joining back on those times, and
-- percentile_cont computed only for the groups that have no rollup (instead of six sorts per group,
-- percentile_cont for every group, and an error text for every row).
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
  ), raw AS (
    SELECT c.target_id, coalesce(c.location_id, 0)::smallint AS location_id, c.scheduled_at, c.started_at, c.ok,
           c.http_response_time AS rt, c.http_status, c.error, c.error_detail,
           CASE WHEN $2 IS NULL THEN '-infinity'::timestamptz ELSE date_trunc($2, c.scheduled_at, 'UTC') END AS ps
    FROM checks c
    WHERE (%s) %s %s
  ), raw_n AS (  -- per group of rows, in one hashed pass: the counts, when its last check and last error were
    SELECT w.target_id, w.location_id, w.ps, count(*) AS checks, count(*) FILTER (WHERE w.ok) AS ok_checks,
           count(w.rt) AS responses, min(w.rt) AS rt_min, max(w.rt) AS rt_max, max(w.scheduled_at) AS last_at,
           max(w.scheduled_at) FILTER (WHERE w.error IS NOT NULL) AS last_error_at
    FROM raw w GROUP BY 1, 2, 3
  ), raw_last AS (  -- the check at last_at (of several, the last started)
    SELECT DISTINCT ON (n.target_id, n.location_id, n.ps) n.target_id, n.location_id, n.ps, w.started_at,
           w.http_status
    FROM raw_n n
    JOIN raw w ON w.target_id = n.target_id AND w.location_id = n.location_id AND w.ps = n.ps
              AND w.scheduled_at = n.last_at
    ORDER BY n.target_id, n.location_id, n.ps, w.started_at DESC
  ), raw_last_error AS (  -- the check with an error at last_error_at
    SELECT DISTINCT ON (n.target_id, n.location_id, n.ps) n.target_id, n.location_id, n.ps, w.started_at,
           e.name || coalesce(': ' || nullif(w.error_detail, ''), '') AS error_text
    FROM raw_n n
    JOIN raw w ON w.target_id = n.target_id AND w.location_id = n.location_id AND w.ps = n.ps
              AND w.scheduled_at = n.last_error_at AND w.error IS NOT NULL
    JOIN error_classes e ON e.id = w.error
    ORDER BY n.target_id, n.location_id, n.ps, w.started_at DESC
  ), raw_exact AS (  -- percentile_cont, for the groups without a rollup (the others' come from histograms)
    SELECT w.target_id, w.location_id, w.ps,
           percentile_cont(ARRAY[0.50, 0.95, 0.99]::float8[]) WITHIN GROUP (ORDER BY w.rt) AS exact
    FROM raw w
    WHERE NOT EXISTS (SELECT 1 FROM rolled r WHERE r.target_id = w.target_id AND r.location_id = w.location_id
                      AND r.ps = w.ps)
    GROUP BY 1, 2, 3
  ), raw_buckets AS (  -- the rows' histograms, counted once per group and bucket, for groups with rollups
    SELECT w.target_id, w.location_id, w.ps, webmon_rt_bucket(w.rt) AS b, count(*) AS n
    FROM raw w WHERE w.rt IS NOT NULL GROUP BY 1, 2, 3, 4
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
     CASE WHEN only_location IS NOT NULL THEN 'AND coalesce(c.location_id, 0) = (SELECT id FROM loc)' ELSE '' END)
  USING since, period, only_target, only_location, touched;
END
$f$;

-- As in 007, but: the rows of `checks` of a target, location and gap that are all ok are one
-- piece of a run (the open hour of a healthy target: one piece instead of one per check, which
-- halves what the runs are sorted and joined over); its last check comes from that grouping too;
-- the rows are filtered by target only when one is asked for, as in webmon_check_summary above;
-- and no JIT compilation.
CREATE OR REPLACE FUNCTION webmon_incidents(open_after integer DEFAULT 2, close_after integer DEFAULT 1,
                                 since timestamptz DEFAULT '-infinity', only_target text DEFAULT NULL)
RETURNS TABLE (target text, location text, started_at timestamptz, ended_at timestamptz, duration interval,
               checks_failed bigint, first_error text, first_error_detail text, first_http_status smallint)
LANGUAGE plpgsql STABLE
SET work_mem = '64MB'  -- the runs of a month of 1,000 targets sort in memory (about 20 MB); not on disk
SET jit = off          -- compiling the plan took longer than it saved (0.1-0.3 s of 1.5 s)
SET enable_mergejoin = off  -- else the rows of `checks` are sorted to merge with their 1,000 groups
AS $f$
DECLARE
  ranges text;       -- the gaps as a condition on c.scheduled_at, with the bounds as constants
  gap_days date[];   -- the UTC days a gap begins or ends in: read by the hour, not from the daily row
  hours text;        -- the hours read from the hourly rows, as a condition on r.hour
  gap_starts timestamptz[];  -- each gap's lo, ascending: width_bucket() numbers a row's gap
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
  -- the hour, their gaps from the rows.
  RETURN QUERY EXECUTE format($q$
  WITH sel AS (
    SELECT t.id FROM targets t WHERE $4 IS NULL OR t.name = $4
  ), rolled AS (
    SELECT r.target_id, r.location_id, r.day AS p, r.last_at, r.run_at, r.run_checks, r.fail_error, r.fail_detail,
           r.fail_status
    FROM check_rollups_daily r
    WHERE r.day >= $3 AND (r.day AT TIME ZONE 'UTC')::date <> ALL ($5) AND r.target_id IN (SELECT id FROM sel)
    UNION ALL
    SELECT r.target_id, r.location_id, r.hour, r.last_at, r.run_at, r.run_checks, r.fail_error, r.fail_detail,
           r.fail_status
    FROM check_rollups r
    WHERE (%2$s) AND r.target_id IN (SELECT id FROM sel)
  ), raw AS MATERIALIZED (
    SELECT c.target_id, coalesce(c.location_id, 0)::smallint AS location_id, c.scheduled_at, c.started_at, c.ok,
           c.error, c.error_detail, c.http_status, width_bucket(c.scheduled_at, $6) AS gap
    FROM checks c WHERE (%1$s) %4$s
  ), raw_g AS (  -- the rows of each target, location and gap: where all are ok, they are one run
    SELECT w.target_id, w.location_id, w.gap, min(w.scheduled_at) AS first_at, max(w.scheduled_at) AS last_at,
           count(*)::integer AS checks, bool_and(w.ok) AS all_ok
    FROM raw w GROUP BY 1, 2, 3
  ), runs AS (
    %3$s
  ), counted AS (  -- failed checks in the runs before each run, and in all
    SELECT r.*, coalesce(sum(CASE WHEN NOT r.ok THEN r.checks END)
                           OVER (PARTITION BY r.target_id, r.location_id ORDER BY r.run
                                 ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS failed_before,
           sum(CASE WHEN NOT r.ok THEN r.checks ELSE 0 END) OVER (PARTITION BY r.target_id, r.location_id) AS failed_all
    FROM runs r
  ), significant AS (  -- the runs long enough to open or to close
    SELECT s.*, lag(s.ok) OVER (PARTITION BY s.target_id, s.location_id ORDER BY s.run) AS previous_ok
    FROM counted s
    WHERE (NOT s.ok AND s.checks >= $1) OR (s.ok AND s.checks >= $2)
  ), edges AS (  -- an opening failure run, then the closing success run, alternately
    SELECT e.*, lead(e.first_at) OVER v AS end_at, lead(e.failed_before) OVER v AS failed_at_end
    FROM significant e
    WHERE (NOT e.ok AND e.previous_ok IS DISTINCT FROM false) OR (e.ok AND e.previous_ok = false)
    WINDOW v AS (PARTITION BY e.target_id, e.location_id ORDER BY e.run)
  ), last_seen AS (
    SELECT x.target_id, x.location_id, max(x.last_at) AS last_at
    FROM (SELECT b.target_id, b.location_id, b.last_at FROM rolled b
          UNION ALL
          SELECT g.target_id, g.location_id, g.last_at FROM raw_g g) x
    GROUP BY 1, 2
  )
  SELECT t.name, l.name, e.first_at, e.end_at, coalesce(e.end_at, s.last_at) - e.first_at,
         (coalesce(e.failed_at_end, e.failed_all) - e.failed_before)::bigint, ec.name, e.detail, e.status
  FROM edges e
  JOIN targets t ON t.id = e.target_id
  LEFT JOIN locations l ON l.id = nullif(e.location_id, 0)
  LEFT JOIN error_classes ec ON ec.id = e.error
  JOIN last_seen s ON s.target_id = e.target_id AND s.location_id = e.location_id
  WHERE NOT e.ok
  ORDER BY e.first_at, t.name, l.name
  $q$, ranges, coalesce(hours, 'false'), webmon_runs_joined(
    'SELECT b.target_id, b.location_id, u.at, u.n, u.error, u.detail, u.status, u.o::float8 AS ord '
    'FROM rolled b CROSS JOIN LATERAL unnest(b.run_at, b.run_checks, b.fail_error, b.fail_detail, b.fail_status) '
    'WITH ORDINALITY AS u(at, n, error, detail, status, o) '
    'UNION ALL '
    'SELECT g.target_id, g.location_id, g.first_at, g.checks, NULL::smallint, NULL::text, NULL::smallint, 0::float8 '
    'FROM raw_g g WHERE g.all_ok '
    'UNION ALL '
    'SELECT w.target_id, w.location_id, w.scheduled_at, CASE WHEN w.ok THEN 1 ELSE -1 END, w.error, w.error_detail, '
    'w.http_status, extract(epoch FROM w.started_at)::float8 FROM raw w '
    'JOIN raw_g g ON g.target_id = w.target_id AND g.location_id = w.location_id AND g.gap = w.gap '
    'WHERE NOT g.all_ok', 'target_id, location_id'),
    CASE WHEN only_target IS NOT NULL THEN 'AND c.target_id IN (SELECT id FROM sel)' ELSE '' END)
  USING open_after, close_after, since, only_target, gap_days, gap_starts;
END
$f$;
