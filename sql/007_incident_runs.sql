-- Incidents from the rollups (issue 13 items 4 and 5). webmon_incidents (sql/005) read every check
-- of its window through check_results, about 12 µs a compacted check: `webmon report --since 30d`
-- over 1,000 targets at 15 s (172.8 million checks) would have taken half an hour. The rollups now
-- also keep each period's checks as runs of equal `ok` in scheduled order, so incidents are found
-- from one short array per target and day instead:
--   run_at       scheduled_at of the first check of each run
--   run_checks   how many checks each run holds: positive for a run of ok checks, negative for a
--                run of failed ones (a healthy hour is one element)
--   fail_error, fail_detail, fail_status
--                per run (the same positions), for a failed run the error class, error_detail and
--                http_status of its first check; NULL for ok runs, and the whole array NULL when
--                the period has no failed check
-- The hourly rows get them from the checks (webmon_rollup_write), the daily and weekly rows by
-- joining their sources' runs end to end (webmon_rollup_merge): a run across an hour's or a day's
-- end becomes one run.
--
-- Upgrading: the rollups are a cache of `checks` and `checks_compact`, so this migration empties
-- them and webmon-writer's background pass writes them again (the compacted days, every one,
-- oldest first; the hours of the last 24 hours that are still rows). Until it has, `webmon stats`,
-- `webmon report` and `webmon incidents` read the rows of `checks` for what has no rollups, and
-- miss the compacted days not rolled up again yet (docs/operations.md, "Schema upgrades").

ALTER TABLE check_rollups ADD COLUMN run_at timestamptz[], ADD COLUMN run_checks integer[],
  ADD COLUMN fail_error smallint[], ADD COLUMN fail_detail text[], ADD COLUMN fail_status smallint[];
ALTER TABLE check_rollups_daily ADD COLUMN run_at timestamptz[], ADD COLUMN run_checks integer[],
  ADD COLUMN fail_error smallint[], ADD COLUMN fail_detail text[], ADD COLUMN fail_status smallint[];
ALTER TABLE check_rollups_weekly ADD COLUMN run_at timestamptz[], ADD COLUMN run_checks integer[],
  ADD COLUMN fail_error smallint[], ADD COLUMN fail_detail text[], ADD COLUMN fail_status smallint[];
TRUNCATE check_rollups, check_rollups_daily, check_rollups_weekly;
ALTER TABLE check_rollups ALTER COLUMN run_at SET NOT NULL, ALTER COLUMN run_checks SET NOT NULL;
ALTER TABLE check_rollups_daily ALTER COLUMN run_at SET NOT NULL, ALTER COLUMN run_checks SET NOT NULL;
ALTER TABLE check_rollups_weekly ALTER COLUMN run_at SET NOT NULL, ALTER COLUMN run_checks SET NOT NULL;

-- Joins runs end to end: `pieces` (a query with the columns `keys`, then at, n, error, detail,
-- status and ord: runs, in the order of (at, ord) within each value of `keys`) becomes the maximal
-- runs, one row each: `keys`, run (1, 2, ... in order), ok, checks, first_at, and error, detail and
-- status of the run's first check. A text to put into a query, so that the planner sees through
-- it; used by webmon_rollup_write, webmon_rollup_merge and webmon_incidents.
CREATE FUNCTION webmon_runs_joined(pieces text, keys text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
  -- A run starts at each piece whose ok differs from the one before; its length is the checks from
  -- there to the next start (running sums), so only the starts go on past the first window.
  SELECT format($q$
    SELECT %2$s, row_number() OVER v AS run, n > 0 AS ok, (coalesce(lead(before) OVER v, total) - before)::bigint AS checks,
           at AS first_at, error, detail, status
    FROM (SELECT *, CASE WHEN (n > 0) IS DISTINCT FROM lag(n > 0) OVER w THEN 1 ELSE 0 END AS change,
                 sum(abs(n)) OVER w - abs(n) AS before, sum(abs(n)) OVER (PARTITION BY %2$s) AS total
          FROM (%1$s) p
          WINDOW w AS (PARTITION BY %2$s ORDER BY at, ord ROWS UNBOUNDED PRECEDING)) q
    WHERE change = 1
    WINDOW v AS (PARTITION BY %2$s ORDER BY at, ord)
  $q$, pieces, keys)
$$;

-- A maximal run's arrays (run_at, run_checks, fail_error, fail_detail, fail_status) from the rows of
-- webmon_runs_joined, grouped by the caller: the SELECT list's part.
CREATE FUNCTION webmon_runs_arrays(alias text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
  SELECT format($q$
    array_agg(%1$s.first_at ORDER BY %1$s.run) AS run_at,
    array_agg((CASE WHEN %1$s.ok THEN %1$s.checks ELSE -%1$s.checks END)::integer ORDER BY %1$s.run) AS run_checks,
    CASE WHEN NOT bool_and(%1$s.ok) THEN array_agg(CASE WHEN NOT %1$s.ok THEN %1$s.error END ORDER BY %1$s.run) END AS fail_error,
    CASE WHEN NOT bool_and(%1$s.ok) THEN array_agg(CASE WHEN NOT %1$s.ok THEN %1$s.detail END ORDER BY %1$s.run) END AS fail_detail,
    CASE WHEN NOT bool_and(%1$s.ok) THEN array_agg(CASE WHEN NOT %1$s.ok THEN %1$s.status END ORDER BY %1$s.run) END AS fail_status
  $q$, alias)
$$;

-- As in 006, and the runs of each hour.
CREATE OR REPLACE FUNCTION webmon_rollup_write(replace_where text, source text) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  written bigint;
BEGIN
  EXECUTE 'DELETE FROM check_rollups WHERE ' || replace_where;
  EXECUTE format($q$
    WITH s AS MATERIALIZED (
      SELECT date_trunc('hour', x.scheduled_at, 'UTC') AS hour, x.target_id,
             coalesce(x.location_id, 0)::smallint AS location_id, x.scheduled_at, x.started_at, x.ok,
             x.http_response_time, x.http_status, x.error, x.error_detail,
             CASE WHEN x.error IS NOT NULL THEN e.name || coalesce(': ' || nullif(x.error_detail, ''), '') END AS error_text
      FROM (%s) x LEFT JOIN error_classes e ON e.id = x.error
    ), h AS (
      SELECT hour, target_id, location_id, array_agg(b ORDER BY b) AS b, array_agg(n ORDER BY b) AS n
      FROM (SELECT hour, target_id, location_id, webmon_rt_bucket(http_response_time) AS b, count(*)::integer AS n
            FROM s WHERE http_response_time IS NOT NULL GROUP BY 1, 2, 3, 4) y
      GROUP BY 1, 2, 3
    ), g AS (
      SELECT hour, target_id, location_id, count(*)::integer AS checks,
             (count(*) FILTER (WHERE ok))::integer AS ok_checks,
             ARRAY[(count(*) FILTER (WHERE error = 1))::integer, (count(*) FILTER (WHERE error = 2))::integer,
                   (count(*) FILTER (WHERE error = 3))::integer, (count(*) FILTER (WHERE error = 4))::integer,
                   (count(*) FILTER (WHERE error = 5))::integer, (count(*) FILTER (WHERE error = 6))::integer] AS errors,
             count(http_response_time)::integer AS responses, min(http_response_time) AS rt_min,
             max(http_response_time) AS rt_max, sum(http_response_time::float8) AS rt_sum,
             (array_agg(scheduled_at ORDER BY scheduled_at DESC, started_at DESC))[1] AS last_at,
             (array_agg(started_at ORDER BY scheduled_at DESC, started_at DESC))[1] AS last_started_at,
             (array_agg(http_status ORDER BY scheduled_at DESC, started_at DESC))[1] AS last_status,
             (array_agg(scheduled_at ORDER BY scheduled_at DESC, started_at DESC) FILTER (WHERE error IS NOT NULL))[1] AS last_error_at,
             (array_agg(started_at ORDER BY scheduled_at DESC, started_at DESC) FILTER (WHERE error IS NOT NULL))[1] AS last_error_started_at,
             (array_agg(error_text ORDER BY scheduled_at DESC, started_at DESC) FILTER (WHERE error IS NOT NULL))[1] AS last_error
      FROM s GROUP BY 1, 2, 3
    ), r AS (  -- the runs of each hour
      SELECT j.hour, j.target_id, j.location_id, %s
      FROM (%s) j
      GROUP BY 1, 2, 3
    )
    INSERT INTO check_rollups (hour, target_id, location_id, checks, ok_checks, errors, responses, rt_min, rt_max,
                               rt_sum, rt_buckets, rt_counts, last_at, last_started_at, last_status, last_error_at,
                               last_error_started_at, last_error, run_at, run_checks, fail_error, fail_detail,
                               fail_status)
    SELECT g.hour, g.target_id, g.location_id, g.checks, g.ok_checks, g.errors, g.responses, g.rt_min, g.rt_max,
           g.rt_sum, coalesce(h.b, '{}'), coalesce(h.n, '{}'), g.last_at, g.last_started_at, g.last_status,
           g.last_error_at, g.last_error_started_at, g.last_error, r.run_at, r.run_checks, r.fail_error,
           r.fail_detail, r.fail_status
    FROM g LEFT JOIN h ON h.hour = g.hour AND h.target_id = g.target_id AND h.location_id = g.location_id
    JOIN r ON r.hour = g.hour AND r.target_id = g.target_id AND r.location_id = g.location_id
  $q$, source, webmon_runs_arrays('j'), webmon_runs_joined(
    'SELECT hour, target_id, location_id, scheduled_at AS at, CASE WHEN ok THEN 1 ELSE -1 END AS n, error, '
    'error_detail AS detail, http_status AS status, started_at AS ord FROM s', 'hour, target_id, location_id'));
  GET DIAGNOSTICS written = ROW_COUNT;
  RETURN written;
END
$$;

-- As in 006, and the runs of the period: its sources' runs joined end to end.
CREATE OR REPLACE FUNCTION webmon_rollup_merge(into_table text, into_col text, from_table text, from_col text,
                                               lo timestamptz, hi timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('DELETE FROM %I WHERE %I = %L', into_table, into_col, lo);
  EXECUTE format($q$
  INSERT INTO %1$I (%2$I, target_id, location_id, checks, ok_checks, errors, responses, rt_min, rt_max,
                    rt_sum, rt_buckets, rt_counts, last_at, last_started_at, last_status, last_error_at,
                    last_error_started_at, last_error, run_at, run_checks, fail_error, fail_detail, fail_status)
  SELECT %5$L::timestamptz, g.target_id, g.location_id, g.checks, g.ok_checks, g.errors, g.responses, g.rt_min, g.rt_max,
         g.rt_sum, coalesce(h.b, '{}'), coalesce(h.n, '{}'), g.last_at, g.last_started_at, g.last_status,
         g.last_error_at, g.last_error_started_at, g.last_error, r.run_at, r.run_checks, r.fail_error,
         r.fail_detail, r.fail_status
  FROM (SELECT r.target_id, r.location_id, sum(r.checks)::integer AS checks, sum(r.ok_checks)::integer AS ok_checks,
               ARRAY[sum(r.errors[1]), sum(r.errors[2]), sum(r.errors[3]), sum(r.errors[4]), sum(r.errors[5]),
                     sum(r.errors[6])]::integer[] AS errors,
               sum(r.responses)::integer AS responses, min(r.rt_min) AS rt_min, max(r.rt_max) AS rt_max,
               sum(r.rt_sum) AS rt_sum,
               (array_agg(r.last_at ORDER BY r.last_at DESC, r.last_started_at DESC))[1] AS last_at,
               (array_agg(r.last_started_at ORDER BY r.last_at DESC, r.last_started_at DESC))[1] AS last_started_at,
               (array_agg(r.last_status ORDER BY r.last_at DESC, r.last_started_at DESC))[1] AS last_status,
               (array_agg(r.last_error_at ORDER BY r.last_error_at DESC, r.last_error_started_at DESC)
                  FILTER (WHERE r.last_error IS NOT NULL))[1] AS last_error_at,
               (array_agg(r.last_error_started_at ORDER BY r.last_error_at DESC, r.last_error_started_at DESC)
                  FILTER (WHERE r.last_error IS NOT NULL))[1] AS last_error_started_at,
               (array_agg(r.last_error ORDER BY r.last_error_at DESC, r.last_error_started_at DESC)
                  FILTER (WHERE r.last_error IS NOT NULL))[1] AS last_error
        FROM %3$I r WHERE r.%4$I >= %5$L AND r.%4$I < %6$L GROUP BY 1, 2) g
  LEFT JOIN (SELECT y.target_id, y.location_id, array_agg(y.b ORDER BY y.b) AS b, array_agg(y.n ORDER BY y.b) AS n
             FROM (SELECT r.target_id, r.location_id, u.b, sum(u.n)::integer AS n
                   FROM %3$I r CROSS JOIN LATERAL unnest(r.rt_buckets, r.rt_counts) AS u(b, n)
                   WHERE r.%4$I >= %5$L AND r.%4$I < %6$L GROUP BY 1, 2, 3) y
             GROUP BY 1, 2) h ON h.target_id = g.target_id AND h.location_id = g.location_id
  JOIN (SELECT j.target_id, j.location_id, %7$s FROM (%8$s) j GROUP BY 1, 2) r
    ON r.target_id = g.target_id AND r.location_id = g.location_id
  $q$, into_table, into_col, from_table, from_col, lo, hi, webmon_runs_arrays('j'), webmon_runs_joined(format(
    'SELECT r.target_id, r.location_id, u.at, u.n, u.error, u.detail, u.status, (r.%1$I, u.o) AS ord '
    'FROM %2$I r CROSS JOIN LATERAL unnest(r.run_at, r.run_checks, r.fail_error, r.fail_detail, r.fail_status) '
    'WITH ORDINALITY AS u(at, n, error, detail, status, o) WHERE r.%1$I >= %3$L AND r.%1$I < %4$L',
    from_col, from_table, lo, hi), 'target_id, location_id'));
END
$$;

-- The time ranges [lo, hi) from `since` on that no rolled-up hour covers: before the first, between
-- islands of consecutive rolled-up hours, after the last (webmon_check_summary in 006 computes
-- the same inline).
CREATE FUNCTION webmon_rollup_gaps(since timestamptz) RETURNS TABLE (lo timestamptz, hi timestamptz)
LANGUAGE sql STABLE AS $$
  SELECT x.lo, x.hi
  FROM (SELECT coalesce(lag(i.last_hour) OVER (ORDER BY i.first_hour) + interval '1 hour', since) AS lo,
               i.first_hour AS hi
        FROM (SELECT min(h.hour) AS first_hour, max(h.hour) AS last_hour
              FROM (SELECT d.hour, d.hour - row_number() OVER (ORDER BY d.hour) * interval '1 hour' AS island
                    FROM (SELECT DISTINCT r.hour FROM check_rollups r WHERE r.hour >= since) d) h
              GROUP BY h.island) i
        UNION ALL
        SELECT coalesce((SELECT max(r.hour) + interval '1 hour' FROM check_rollups r WHERE r.hour >= since), since),
               'infinity') x
  WHERE x.lo < x.hi
$$;

-- sql/005's webmon_incidents, which reads every check through check_results, stays as the
-- reference (the tests compare the two): exact, and slow over compacted days.
ALTER FUNCTION webmon_incidents(integer, integer, timestamptz, text) RENAME TO webmon_incidents_from_checks;

-- The same incidents (sql/005 says what they are) from the runs of the rollups: the daily rows of
-- the days from `since` on, the hourly rows of the rest of since's day, and runs made from the rows
-- of `checks` where no rolled-up hour covers the window (the open hours, hours not rolled up yet,
-- the part of the first hour before `since`'s next whole hour), joined end to end. Where that part
-- of the first hour is of a compacted day its checks are not read (as in webmon_check_summary).
CREATE FUNCTION webmon_incidents(open_after integer DEFAULT 2, close_after integer DEFAULT 1,
                                 since timestamptz DEFAULT '-infinity', only_target text DEFAULT NULL)
RETURNS TABLE (target text, location text, started_at timestamptz, ended_at timestamptz, duration interval,
               checks_failed bigint, first_error text, first_error_detail text, first_http_status smallint)
LANGUAGE plpgsql STABLE
SET work_mem = '64MB'  -- the runs of a month of 1,000 targets sort in memory (about 20 MB); not on disk
AS $f$
DECLARE
  ranges text;       -- the gaps as a condition on c.scheduled_at, with the bounds as constants
  gap_days date[];   -- the UTC days a gap begins or ends in: read by the hour, not from the daily row
  hours text;        -- the hours read from the hourly rows, as a condition on r.hour
BEGIN
  SELECT coalesce(string_agg(format('(c.scheduled_at >= %L AND c.scheduled_at < %L)', g.lo, g.hi), ' OR '), 'false'),
         coalesce(array_remove(array_agg(CASE WHEN isfinite(g.lo) THEN (g.lo AT TIME ZONE 'UTC')::date END)
                               || array_agg(CASE WHEN isfinite(g.hi)
                                                 THEN ((g.hi - interval '1 microsecond') AT TIME ZONE 'UTC')::date END),
                               NULL), '{}')
  INTO ranges, gap_days
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
           c.error, c.error_detail, c.http_status
    FROM checks c WHERE (%1$s) AND c.target_id IN (SELECT id FROM sel)
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
          SELECT w.target_id, w.location_id, w.scheduled_at FROM raw w) x
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
    'SELECT w.target_id, w.location_id, w.scheduled_at, CASE WHEN w.ok THEN 1 ELSE -1 END, w.error, w.error_detail, '
    'w.http_status, extract(epoch FROM w.started_at)::float8 FROM raw w', 'target_id, location_id'))
  USING open_after, close_after, since, only_target, gap_days;
END
$f$;

-- With the default thresholds (incidents.open_after 2, incidents.close_after 1), over everything.
CREATE OR REPLACE VIEW incidents AS SELECT * FROM webmon_incidents();
