#!/bin/bash
# Bytes per stored check before and after compaction (docs/storage.md), for the bench's realistic
# checks (bench/writer/sample_checks.hpp's make_check, generated here in SQL the same way: 1,000
# targets every 15 s; 97 % answered over TLS with every timing, 2 % 5xx, 1 % timeouts and DNS
# errors) in a fresh database of the local stack:
#
#   bench/writer/compaction_bytes.sh [TARGETS] [CHECKS_PER_TARGET]   (default 1000 x 1000 = 1,000,000)
#
# Needs: psql, a built `webmon` (WEBMON_CLI, default build/src/cli/webmon), the stack's PostgreSQL
# (PG_PORT, default 5432). Prints the sizes (pg_total_relation_size: heap, TOAST and indexes).
# PREPARE_ONLY=1: stop after generating the day (not compacted), keep the database and print
# "database <name> day <YYYY-MM-DD>" (bench/writer/compaction_lag.py compacts it under load).
set -euo pipefail
targets=${1:-1000}
per_target=${2:-1000}
here=$(cd "$(dirname "$0")/../.." && pwd)
cli=${WEBMON_CLI:-$here/build/src/cli/webmon}
port=${PG_PORT:-5432}
db=webmon_compaction_bytes_$$
admin="postgresql://webmon:webmon@127.0.0.1:$port/webmon"
uri="postgresql://webmon:webmon@127.0.0.1:$port/$db"
psql -qX "$admin" -c "CREATE DATABASE $db"
trap 'psql -qX "$admin" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"' EXIT
cfg=$(mktemp)
printf 'postgres:\n  uri: "%s"\n  statement_timeout_ms: 0\n' "$uri" > "$cfg"
"$cli" migrate --config "$cfg" > /dev/null
day=$(psql -qXAt "$uri" -c "SELECT ((now() AT TIME ZONE 'UTC')::date - 5)::text")
psql -qX "$uri" -v ON_ERROR_STOP=1 <<SQL
SELECT webmon_ensure_checks_partition('$day');
INSERT INTO targets (name, url, first_seen, last_seen)
  SELECT format('site-%s', lpad(t::text, 5, '0')), format('https://www.site-%s.example.com/health?probe=webmon', lpad(t::text, 5, '0')), now(), now()
  FROM generate_series(0, $targets - 1) t ORDER BY t;
INSERT INTO checkers (name) VALUES ('checker-a');
-- make_check(i, targets): t = i % targets, slot = i / targets, kind = i % 100.
INSERT INTO checks (scheduled_at, started_at, tls_cert_not_after, target_id, checker_id, total_time,
  http_response_time, dns_time, connect_time, tls_time, ttfb_time, transfer_time, body_bytes, peer_port,
  http_status, redirects, error, ok, regexp_match, peer, error_detail)
SELECT s, s + (1 + i % 5) * interval '1 ms',
       CASE WHEN kind >= 2 THEN date_trunc('second', now()) + interval '60 days' + (i / 200000) * interval '1 s' END,
       t + 1, 1,
       CASE kind WHEN 0 THEN 10 WHEN 1 THEN 0.021 ELSE 0.05 + 0.0001 * (i % 3000) + 0.002 END,
       CASE WHEN kind >= 2 THEN 0.05 + 0.0001 * (i % 3000) END,
       CASE kind WHEN 0 THEN 0.0012 WHEN 1 THEN NULL ELSE 0.0011 END,
       CASE kind WHEN 0 THEN 0.034 WHEN 1 THEN NULL ELSE 0.012 END,
       CASE WHEN kind >= 2 THEN 0.025 END,
       CASE WHEN kind >= 2 THEN 0.03 + 0.0001 * (i % 3000) END,
       CASE WHEN kind >= 2 THEN 0.002 END,
       CASE WHEN kind >= 2 THEN 2000 + i % 30000 ELSE 0 END,
       CASE WHEN kind >= 2 THEN 443 END,
       CASE WHEN kind >= 2 THEN CASE WHEN kind < 4 THEN 503 ELSE 200 END END,
       0,
       CASE kind WHEN 0 THEN 4 WHEN 1 THEN 1 END,
       kind >= 4,
       CASE WHEN kind >= 2 THEN kind % 2 = 0 END,
       CASE WHEN kind >= 2 THEN ('203.0.113.' || (1 + t % 250))::inet END,
       CASE kind WHEN 0 THEN 'no complete response within 10 s' WHEN 1 THEN 'Host not found (authoritative)' END
FROM (SELECT i, i % $targets AS t, i % 100 AS kind,
             ('$day'::timestamp AT TIME ZONE 'UTC') + ((i / $targets) * 15000 % 86400000 + i % $targets) * interval '1 ms' AS s
      FROM generate_series(0::bigint, $targets::bigint * $per_target - 1) i) g;
VACUUM ANALYZE checks;
SQL
if [ -n "${PREPARE_ONLY:-}" ]; then
  trap - EXIT
  rm -f "$cfg"
  echo "database $db day $day"
  exit 0
fi
part="checks_${day//-/}"
rows=$(psql -qXAt "$uri" -c "SELECT count(*) FROM $part")
before=$(psql -qXAt "$uri" -c "SELECT pg_table_size('$part') || ' ' || pg_indexes_size('$part') || ' ' || pg_total_relation_size('$part')")
start=$(date +%s.%N)
"$cli" compact --day "$day" --config "$cfg"
end=$(date +%s.%N)
psql -qX "$uri" -c "VACUUM ANALYZE checks_compact" > /dev/null
after=$(psql -qXAt "$uri" -c "SELECT pg_relation_size('checks_compact') || ' ' || pg_table_size('checks_compact') - pg_relation_size('checks_compact') || ' ' || pg_indexes_size('checks_compact') || ' ' || pg_total_relation_size('checks_compact')")
read -r b_table b_index b_total <<< "$before"
read -r a_heap a_toast a_index a_total <<< "$after"
awk -v n="$rows" -v bt="$b_table" -v bi="$b_index" -v btot="$b_total" -v ah="$a_heap" -v at="$a_toast" \
    -v ai="$a_index" -v atot="$a_total" -v secs="$(echo "$end - $start" | bc)" 'BEGIN {
  printf "checks: %d (%s targets x %s)\n", n, "'"$targets"'", "'"$per_target"'";
  printf "rows:    heap+TOAST %.1f, indexes %.1f, total %.1f bytes per check\n", bt / n, bi / n, btot / n;
  printf "compact: heap %.1f, TOAST %.1f, indexes %.1f, total %.1f bytes per check\n", ah / n, at / n, ai / n, atot / n;
  printf "compaction took %.1f s (%.0f checks/s)\n", secs, n / secs;
}'
rm -f "$cfg"
