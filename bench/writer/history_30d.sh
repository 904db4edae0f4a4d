#!/bin/bash
# `webmon stats`, `webmon report` and `webmon incidents` over 30 days of history (docs/benchmarks.md,
# "Stats and reports over 30 days"): TARGETS targets (default 1,000) checked every 15 s, their
# closed hours generated as hourly rollups directly in SQL (240 checks an hour, 30 histogram
# buckets 2 % apart; in 2 % of the hours a spell of 5 failed checks, a timeout, and in 0.5 % ten
# single failures spread over the hour), the daily and weekly rows merged from them by
# webmon_rollup_merge_day as the writer does, and the open hour as rows, in a fresh database of
# the local stack. Not through the writer, and without compact rows (which these commands do not
# read). Each command runs 3 times; prints its wall time and how many rows it printed.
#
#   bench/writer/history_30d.sh [TARGETS]
#
# Needs: psql, a built `webmon` (WEBMON_CLI, default build/src/cli/webmon), the stack's PostgreSQL
# (PG_PORT, default 5432). KEEP_DB=1 leaves the database there afterwards.
# UNROLLED_HOURS=N: the last N closed hours are rows of `checks` too, not rollups (N=1 at the end
# of an hour is the most rows a reader meets: the writer rolls an hour up once it has closed).
# BASELINE=sql/NNN_x.sql: side by side with the readers of that migration (its
# webmon_check_summary and webmon_incidents, put into a copy of the database): each command runs
# on the copy ("before") and on the database ("after") in turns.
set -euo pipefail
targets=${1:-1000}
unrolled=${UNROLLED_HOURS:-0}
baseline=${BASELINE:-}
here=$(cd "$(dirname "$0")/../.." && pwd)
cli=${WEBMON_CLI:-$here/build/src/cli/webmon}
port=${PG_PORT:-5432}
db=webmon_history_30d_$$
admin="postgresql://webmon:webmon@127.0.0.1:$port/webmon"
uri="postgresql://webmon:webmon@127.0.0.1:$port/$db"
psql -qX "$admin" -c "CREATE DATABASE $db"
cfg=$(mktemp)
if [ -n "${KEEP_DB:-}" ]; then  # KEEP_DB=1: leave the database for a closer look (its name is printed)
  trap 'rm -f "$cfg" "$cfg.before"; echo "kept database $db${baseline:+ and ${db}_before}"' EXIT
else
  trap 'rm -f "$cfg" "$cfg.before"; psql -qX "$admin" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" \
          -c "DROP DATABASE IF EXISTS ${db}_before WITH (FORCE)"' EXIT
fi
printf 'postgres:\n  uri: "%s"\n  statement_timeout_ms: 0\n' "$uri" > "$cfg"
"$cli" migrate --config "$cfg" > /dev/null
start=$(date +%s)
psql -qX "$uri" -v ON_ERROR_STOP=1 <<SQL
INSERT INTO targets (name, url, first_seen, last_seen)
  SELECT format('site-%s', lpad(t::text, 5, '0')), format('https://www.site-%s.example.com/', lpad(t::text, 5, '0')),
         now(), now()
  FROM generate_series(1, $targets) t ORDER BY t;
INSERT INTO checkers (name) VALUES ('checker-a');
-- kind 0: a healthy hour (one run of 240 ok checks); 1: a spell of 5 timeouts from :25;
-- 2: ten single failures, the last check of every 6 minutes.
INSERT INTO check_rollups (hour, target_id, location_id, checks, ok_checks, errors, responses, rt_min, rt_max,
                           rt_sum, rt_buckets, rt_counts, last_at, last_started_at, last_status, last_error_at,
                           last_error_started_at, last_error, run_at, run_checks, fail_error, fail_detail, fail_status)
SELECT h, t.id, 0, 240, 240 - f.failed, ARRAY[0, 0, 0, f.failed, 0, 0], 240 - f.failed, 0.05, 2.0, 23.8,
       ARRAY(SELECT (540 + t.id % 50 + i)::smallint FROM generate_series(0, 29) i),
       ARRAY(SELECT CASE WHEN i < 30 - f.failed % 30 THEN 8 ELSE 7 END FROM generate_series(0, 29) i),
       h + interval '59 min 45 s', h + interval '59 min 45.01 s', 200,
       CASE WHEN f.failed > 0 THEN h + interval '30 min' END, CASE WHEN f.failed > 0 THEN h + interval '30 min' END,
       CASE WHEN f.failed > 0 THEN 'timeout: no complete response within 10 s' END,
       f.run_at, f.run_checks, f.fail_error, f.fail_detail, NULL
FROM targets t
CROSS JOIN generate_series(date_trunc('hour', now()) - interval '30 days',
                           date_trunc('hour', now()) - interval '1 hour' * (1 + $unrolled), interval '1 hour') h
CROSS JOIN LATERAL (SELECT CASE WHEN (t.id * 7919 + extract(epoch FROM h)::bigint / 3600) % 200 < 4 THEN 1
                                WHEN (t.id * 7919 + extract(epoch FROM h)::bigint / 3600) % 200 = 4 THEN 2
                                ELSE 0 END AS kind) k
CROSS JOIN LATERAL (
  SELECT 0 AS failed, ARRAY[h] AS run_at, ARRAY[240] AS run_checks, NULL::smallint[] AS fail_error,
         NULL::text[] AS fail_detail WHERE k.kind = 0
  UNION ALL
  SELECT 5, ARRAY[h, h + interval '25 min', h + interval '26 min 15 s'], ARRAY[100, -5, 135], ARRAY[NULL, 4, NULL]::smallint[],
         ARRAY[NULL, 'no complete response within 10 s', NULL] WHERE k.kind = 1
  UNION ALL
  SELECT 10, array_agg(h + (j / 2 * 24 + CASE WHEN j % 2 = 1 THEN 23 ELSE 0 END) * interval '15 s' ORDER BY j),
         array_agg(CASE WHEN j % 2 = 0 THEN 23 ELSE -1 END ORDER BY j),
         array_agg(CASE WHEN j % 2 = 1 THEN 4 END::smallint ORDER BY j),
         array_agg(CASE WHEN j % 2 = 1 THEN 'no complete response within 10 s' END ORDER BY j)
  FROM generate_series(0, 19) j HAVING k.kind = 2) f;
SQL
# The daily and weekly rows, as the writer merges them after each hour.
psql -qXAt "$uri" -v ON_ERROR_STOP=1 -c "SELECT webmon_rollup_merge_day(d::date)
  FROM generate_series((date_trunc('hour', now()) - interval '30 days') AT TIME ZONE 'UTC', (now() AT TIME ZONE 'UTC'),
                       interval '1 day') d" > /dev/null
psql -qX "$uri" -v ON_ERROR_STOP=1 <<SQL
SELECT webmon_ensure_checks_partition(((now() - interval '1 hour' * $unrolled) AT TIME ZONE 'UTC')::date);
SELECT webmon_ensure_checks_partition((now() AT TIME ZONE 'UTC')::date);
INSERT INTO checks (scheduled_at, started_at, target_id, checker_id, total_time, http_response_time, body_bytes,
                    http_status, redirects, ok)
SELECT s, s + interval '2 ms', t.id, 1, 0.1, 0.1 + 0.001 * (t.id % 50), 2000, 200, 0, true
FROM targets t, generate_series(date_trunc('hour', now()) - interval '1 hour' * $unrolled, now() - interval '1 s',
                                interval '15 s') s;
VACUUM ANALYZE check_rollups, check_rollups_daily, check_rollups_weekly, checks, targets;
SQL
echo "generated in $(( $(date +%s) - start )) s: $(psql -qXAt "$uri" -c "SELECT format('%s hourly rows (%s), %s daily, %s weekly, %s checks as rows',
  (SELECT count(*) FROM check_rollups), pg_size_pretty(pg_total_relation_size('check_rollups')),
  (SELECT count(*) FROM check_rollups_daily), (SELECT count(*) FROM check_rollups_weekly), (SELECT count(*) FROM checks))")"
if [ -n "$baseline" ]; then
  # The copy, with the readers of $baseline: each CREATE OR REPLACE FUNCTION of the two, as written.
  psql -qX "$admin" -c "CREATE DATABASE ${db}_before TEMPLATE $db"
  python3 - "$here/$baseline" <<'PY' | psql -qX "${uri}_before" -v ON_ERROR_STOP=1 > /dev/null
import re, sys
sql = open(sys.argv[1]).read()
for name in ("webmon_check_summary", "webmon_incidents"):
    start = sql.index("CREATE OR REPLACE FUNCTION %s(" % name)
    quote = re.search(r"AS (\$\w*\$)", sql[start:]).group(1)
    body = sql.index(quote, start) + len(quote)
    print(sql[start:sql.index(quote, body) + len(quote)] + ";")
PY
  printf 'postgres:\n  uri: "%s"\n  statement_timeout_ms: 0\n' "${uri}_before" > "$cfg.before"
  runs=("before:$cfg.before" "after:$cfg")
else
  runs=(":$cfg")
fi
for cmd in "stats --since 30d" "report --period day --since 30d" "incidents --since 30d"; do
  for k in 1 2 3; do
    for run in "${runs[@]}"; do
      t0=$(date +%s.%N)
      # shellcheck disable=SC2086
      lines=$("$cli" $cmd --config "${run#*:}" | wc -l)
      t1=$(date +%s.%N)
      printf 'webmon %-34s %6s %6d lines  %6.2f s  (load average %s)\n' "$cmd" "${run%%:*}" "$lines" \
        "$(echo "$t1 - $t0" | bc)" "$(cut -d' ' -f1 /proc/loadavg)"
    done
  done
done
