-- Incidents (issue 13 item 4): runs of failed checks (ok = false) per target and location, from
-- check_results, so compacted days count as any other. An incident opens at the first check of a
-- run of at least `open_after` consecutive failures and closes at the first check of a run of at
-- least `close_after` consecutive successes; shorter runs change nothing (a failure or two below
-- the threshold opens nothing; a short recovery inside an incident does not end it).
--   started_at          scheduled_at of the incident's first failed check
--   ended_at            scheduled_at of the first check of the run of successes that closed it;
--                       NULL while it is open
--   duration            ended_at - started_at; while open: up to the last check seen
--   checks_failed       failed checks from started_at to ended_at
--   first_error ...     error, error_detail and http_status of the first failed check
-- Only checks scheduled at or after `since` are read: an incident under way at `since` starts
-- there.
CREATE FUNCTION webmon_incidents(open_after integer DEFAULT 2, close_after integer DEFAULT 1,
                                 since timestamptz DEFAULT '-infinity', only_target text DEFAULT NULL)
RETURNS TABLE (target text, location text, started_at timestamptz, ended_at timestamptz, duration interval,
               checks_failed bigint, first_error text, first_error_detail text, first_http_status smallint)
LANGUAGE sql STABLE AS $$
  WITH c AS (
    SELECT r.target, r.location, r.scheduled_at, r.ok, r.error, r.error_detail, r.http_status,
           CASE WHEN r.ok IS DISTINCT FROM lag(r.ok) OVER w THEN 1 ELSE 0 END AS change
    FROM check_results r
    WHERE r.scheduled_at >= since AND (only_target IS NULL OR r.target = only_target)
    WINDOW w AS (PARTITION BY r.target, r.location ORDER BY r.scheduled_at)
  ), numbered AS (
    SELECT c.*, sum(c.change) OVER (PARTITION BY c.target, c.location ORDER BY c.scheduled_at
                                    ROWS UNBOUNDED PRECEDING) AS run
    FROM c
  ), runs AS (  -- maximal runs of equal ok
    SELECT n.target, n.location, n.run, bool_and(n.ok) AS ok, count(*) AS checks,
           min(n.scheduled_at) AS first_at, max(n.scheduled_at) AS last_at,
           (array_agg(n.error ORDER BY n.scheduled_at))[1] AS error,
           (array_agg(n.error_detail ORDER BY n.scheduled_at))[1] AS error_detail,
           (array_agg(n.http_status ORDER BY n.scheduled_at))[1] AS http_status
    FROM numbered n
    GROUP BY n.target, n.location, n.run
  ), significant AS (  -- the runs long enough to open or to close
    SELECT s.*, lag(s.ok) OVER (PARTITION BY s.target, s.location ORDER BY s.run) AS previous_ok
    FROM runs s
    WHERE (NOT s.ok AND s.checks >= open_after) OR (s.ok AND s.checks >= close_after)
  ), edges AS (  -- an opening failure run, then the closing success run, alternately
    SELECT e.*, lead(e.run) OVER v AS end_run, lead(e.first_at) OVER v AS end_at
    FROM significant e
    WHERE (NOT e.ok AND e.previous_ok IS DISTINCT FROM false) OR (e.ok AND e.previous_ok = false)
    WINDOW v AS (PARTITION BY e.target, e.location ORDER BY e.run)
  )
  SELECT e.target, e.location, e.first_at, e.end_at,
         coalesce(e.end_at, (SELECT max(x.last_at) FROM runs x
                             WHERE x.target = e.target AND x.location IS NOT DISTINCT FROM e.location)) - e.first_at,
         (SELECT sum(x.checks)::bigint FROM runs x
          WHERE x.target = e.target AND x.location IS NOT DISTINCT FROM e.location AND NOT x.ok
            AND x.run >= e.run AND (e.end_run IS NULL OR x.run < e.end_run)),
         e.error, e.error_detail, e.http_status
  FROM edges e
  WHERE NOT e.ok
  ORDER BY e.first_at, e.target, e.location
$$;

-- With the default thresholds (incidents.open_after 2, incidents.close_after 1), over everything.
CREATE VIEW incidents AS SELECT * FROM webmon_incidents();
