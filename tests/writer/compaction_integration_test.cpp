// Compaction of closed days (issue 13 items 1 and 2) on the stack's real PostgreSQL, through the
// real binaries: `webmon compact` as a process, webmon-writer ingesting from the real Kafka.
// What a user would look at: check_results (compared in full, before and after), the tables,
// EXPLAIN, exit codes and output.
#include <gtest/gtest.h>

#include <signal.h>

#include <chrono>
#include <fstream>
#include <string>
#include <vector>

#include <pqxx/pqxx>

#include "support/database.hpp"
#include "support/process.hpp"
#include "support/stack.hpp"
#include "webmon/common/check_result.hpp"
#include "webmon/writer/migrations.hpp"
#include "writer_fixture.hpp"

namespace {

using namespace std::chrono_literals;
using webmon::test::ChildProcess;
using webmon::test::eventually;
using webmon::test::TempDir;
using webmon::test::TestDatabase;
using webmon::test::unique_name;

// The UTC day `ago` days back, as YYYY-MM-DD.
std::string utc_day(const TestDatabase& db, int ago) {
  return db.scalar("SELECT ((now() AT TIME ZONE 'UTC')::date - " + std::to_string(ago) + ")::text");
}

std::string day_range(const std::string& day) {
  return "scheduled_at >= '" + day + "'::timestamp AT TIME ZONE 'UTC' AND scheduled_at < ('" + day +
         "'::date + 1)::timestamp AT TIME ZONE 'UTC'";
}

// A day of realistic checks for `targets` targets every `interval_s` seconds: TLS and plain HTTP,
// two checkers, two locations and none, answers (200, 503, regexp matches and misses, redirects),
// timeouts, DNS and TLS errors, every nullable column NULL somewhere; durations with microsecond
// resolution as the checker sends them. Through `checks`, as the writer's COPY stores them.
void populate(const TestDatabase& db, const std::string& day, int targets, int interval_s, int first_target = 1) {
  db.exec("INSERT INTO targets (name, url, first_seen, last_seen) SELECT format('site-%s', g), "
          "format('%s://site-%s.example/health', CASE WHEN g % 4 = 0 THEN 'http' ELSE 'https' END, g), now(), now() "
          "FROM generate_series(" + std::to_string(first_target) + ", " + std::to_string(first_target + targets - 1) +
          ") g ON CONFLICT (name) DO NOTHING");
  db.exec("INSERT INTO checkers (name) VALUES ('checker-a'), ('checker-b') ON CONFLICT DO NOTHING");
  db.exec("INSERT INTO locations (name) VALUES ('eu-west'), ('us-east') ON CONFLICT DO NOTHING");
  db.exec("SELECT webmon_ensure_checks_partition('" + day + "')");
  const std::string I = std::to_string(interval_s);
  db.exec(
      "WITH b AS ("
      "  SELECT t.id AS tid, t.url LIKE 'https%' AS tls, k, random() AS kind, random() AS r1, random() AS r2,"
      "         random() AS r3,"
      "         ('" + day + "'::timestamp AT TIME ZONE 'UTC') + make_interval(secs => k * " + I + " + t.id % " + I +
      ")"
      "           + floor(random() * 5) * interval '1 ms' AS s"
      "  FROM targets t, generate_series(0, 86400 / " + I + " - 1) k"
      "  WHERE t.name ~ '^site-' AND substr(t.name, 6)::int BETWEEN " + std::to_string(first_target) + " AND " +
      std::to_string(first_target + targets - 1) +
      "), c AS ("
      "  SELECT b.*, CASE WHEN kind < 0.01 THEN 4 WHEN kind < 0.02 THEN 1 WHEN kind < 0.025 AND tls THEN 3 END AS err,"
      "         round((0.02 + r2 * 0.3)::numeric, 6) AS hrt FROM b"
      ")"
      "INSERT INTO checks (scheduled_at, started_at, tls_cert_not_after, target_id, checker_id, total_time,"
      "  http_response_time, dns_time, connect_time, tls_time, ttfb_time, transfer_time, body_bytes, peer_port,"
      "  http_status, redirects, error, ok, regexp_match, peer, error_detail, dns_cached, location_id) "
      "SELECT s, s + floor(r1 * 40) * interval '1 ms',"
      "  CASE WHEN tls AND err IS NULL THEN ('" + day + "'::date + 60 + tid % 3)::timestamp AT TIME ZONE 'UTC' END,"
      "  tid, 1 + tid % 2,"
      "  CASE err WHEN 4 THEN 10 WHEN 1 THEN round((r2 * 0.03)::numeric, 6) WHEN 3 THEN round((r2 * 0.05)::numeric, 6)"
      "    ELSE hrt + 0.000412 END::real,"
      "  CASE WHEN err IS NULL THEN hrt::real END,"
      "  CASE WHEN err IS DISTINCT FROM 1 THEN round((0.0005 + r3 * 0.01)::numeric, 6)::real END,"
      "  CASE WHEN err IS DISTINCT FROM 1 THEN round((0.001 + r1 * 0.02)::numeric, 6)::real END,"
      "  CASE WHEN tls AND (err IS NULL OR err = 3) THEN round((0.01 + r3 * 0.03)::numeric, 6)::real END,"
      "  CASE WHEN err IS NULL THEN (hrt - 0.002)::real END,"
      "  CASE WHEN err IS NULL THEN 0.002::real END,"
      "  CASE WHEN err IS NULL THEN 2000 + floor(r1 * 30000)::int ELSE 0 END,"
      "  CASE WHEN err IS DISTINCT FROM 1 THEN CASE WHEN tls THEN 443 ELSE 80 END END,"
      "  CASE WHEN err IS NULL THEN CASE WHEN kind < 0.05 THEN 503 ELSE 200 END END,"
      "  CASE WHEN tid % 5 = 0 AND err IS NULL THEN 1 ELSE 0 END,"
      "  err,"
      "  err IS NULL AND kind >= 0.05 AND (tid % 3 = 0 OR r3 > 0.01),"
      "  CASE WHEN err IS NULL AND tid % 3 <> 0 THEN r3 > 0.01 END,"
      "  CASE WHEN err IS DISTINCT FROM 1 THEN CASE WHEN tid % 2 = 0 THEN ('203.0.113.' || (tid % 250 + 1))::inet"
      "    ELSE ('2001:db8::' || to_hex(tid))::inet END END,"
      "  CASE err WHEN 4 THEN 'no complete response within 10 s' WHEN 1 THEN 'Host not found (authoritative)'"
      "    WHEN 3 THEN 'certificate verify failed: ' || (tid % 2) END,"
      "  CASE WHEN tid % 7 = 0 THEN NULL ELSE r3 > 0.2 END,"
      "  CASE WHEN tid % 3 = 0 THEN NULL ELSE 1 + tid % 2 END "
      "FROM c");
}

// Copies of what readers see for the day, to compare with after the compaction.
void snapshot(const TestDatabase& db, const std::string& day, const std::string& suffix = "") {
  db.exec("DROP TABLE IF EXISTS snap_results" + suffix + ", snap_all" + suffix);
  db.exec("CREATE TABLE snap_results" + suffix + " AS SELECT * FROM check_results WHERE " + day_range(day));
  db.exec("CREATE TABLE snap_all" + suffix + " AS SELECT * FROM checks_all WHERE " + day_range(day));
}

// "missing,extra,before,now" for check_results and for checks_all (every column of every check):
// "0,0,N,N 0,0,N,N" when readers see exactly what they saw.
std::string compare(const TestDatabase& db, const std::string& day, const std::string& suffix = "") {
  auto one = [&](const std::string& snap, const std::string& view) {
    const std::string now = "SELECT * FROM " + view + " WHERE " + day_range(day);
    return db.scalar("SELECT (SELECT count(*) FROM (TABLE " + snap + " EXCEPT ALL " + now + ") a) || ',' || "
                     "(SELECT count(*) FROM (" + now + " EXCEPT ALL TABLE " + snap + ") b) || ',' || "
                     "(SELECT count(*) FROM " + snap + ") || ',' || (SELECT count(*) FROM (" + now + ") c)");
  };
  return one("snap_results" + suffix, "check_results") + " " + one("snap_all" + suffix, "checks_all");
}

std::string same(const std::string& n) { return "0,0," + n + "," + n + " 0,0," + n + "," + n; }

// "rows" (the partition holds the day, no compact row) or "compact" (the other way round), or
// what else it found.
std::string form_of(const TestDatabase& db, const std::string& day) {
  const auto part = "'checks_" + day.substr(0, 4) + day.substr(5, 2) + day.substr(8, 2) + "'";
  // One statement, so that a compaction committing meanwhile is seen whole or not at all.
  const auto state = db.scalar("SELECT (to_regclass(" + part + ") IS NOT NULL) || ',' || "
                               "(SELECT count(*) FROM checks WHERE tableoid = to_regclass(" + part + ")) || ',' || "
                               "(SELECT count(*) FROM checks_compact WHERE day = '" + day + "')");
  const auto comma = state.find(',');
  const auto comma2 = state.find(',', comma + 1);
  const bool has_part = state.substr(0, comma) == "true";
  const auto rows = state.substr(comma + 1, comma2 - comma - 1);
  const auto compact = state.substr(comma2 + 1);
  if (has_part && rows != "0" && compact == "0") return "rows";
  if (!has_part && compact != "0") return "compact";
  return "partition " + std::string(has_part ? "present" : "absent") + " with " + rows + " rows, " + compact +
         " compact rows";
}

class Compaction : public ::testing::Test {
 protected:
  void SetUp() override {
    webmon::writer::apply_migrations(db_.uri());
    config_ = dir_.write("config.yml", "postgres:\n  uri: \"" + db_.uri() + "\"\n");
    day_ = utc_day(db_, 5);
  }

  // A config whose sessions carry webmon.compact_test_pause = point (a session setting: only a
  // superuser may attach an unknown setting to the database).
  std::filesystem::path paused_config(const std::string& point) {
    const auto sep = db_.uri().find('?') == std::string::npos ? "?" : "&";
    return dir_.write("paused-" + point + ".yml", "postgres:\n  uri: \"" + db_.uri() + sep +
                                                      "options=-c%20webmon.compact_test_pause%3D" + point + "\"\n");
  }

  std::pair<int, std::string> webmon_cli(std::vector<std::string> args) {
    args.insert(args.begin(), WEBMON_CLI_BIN);
    args.push_back("--config");
    args.push_back(config_.string());
    return webmon::test::run_command(args, std::chrono::minutes(5));
  }

  TestDatabase db_;
  TempDir dir_;
  std::filesystem::path config_;
  std::string day_;
};

TEST_F(Compaction, ADayReadsTheSameBeforeAndAfterAndLateRowsJoinIt) {
  populate(db_, day_, 24, 60);  // 24 targets x 1,440 checks
  const auto n = db_.scalar("SELECT count(*) FROM checks_all WHERE " + day_range(day_));
  ASSERT_EQ(n, "34560");
  // Every kind of value is there to be compared.
  ASSERT_EQ(db_.scalar("SELECT count(DISTINCT error) || ',' || bool_or(http_response_time IS NULL) || ',' || "
                       "bool_or(regexp_match IS NULL) || ',' || bool_or(dns_cached IS NULL) || ',' || "
                       "bool_or(location IS NULL) || ',' || count(DISTINCT location) || ',' || count(DISTINCT http_status) "
                       "FROM check_results WHERE " + day_range(day_)),
            "3,true,true,true,true,2,2");
  snapshot(db_, day_);

  const auto [status, out] = webmon_cli({"compact", "--day", day_});
  ASSERT_EQ(status, 0) << out;
  EXPECT_EQ(out, day_ + ": compacted 34560 rows (34560 checks in compact rows)\n");
  EXPECT_EQ(form_of(db_, day_), "compact");
  EXPECT_EQ(db_.scalar("SELECT count(*) FROM checks_compact WHERE day = '" + day_ + "'"), "24");
  EXPECT_EQ(compare(db_, day_), same(n));

  // Twice is harmless.
  const auto [status2, out2] = webmon_cli({"compact", "--day", day_});
  ASSERT_EQ(status2, 0) << out2;
  EXPECT_EQ(out2, day_ + ": nothing to compact (34560 checks in compact rows)\n");
  EXPECT_EQ(compare(db_, day_), same(n));

  // Late rows after the compaction: into checks_default (the partition is gone) and, once a writer
  // makes the day's partition again, into it. Visible at once, and compacted with the day later.
  db_.exec("INSERT INTO checks (scheduled_at, started_at, target_id, checker_id, total_time, body_bytes, redirects, ok,"
           " error, error_detail) SELECT '" + day_ + " 12:00:00.123+00', '" + day_ + " 23:59:59.999+00', t.id, 1, 0.5,"
           " 0, 0, false, 2, 'late: connection refused' FROM targets t WHERE t.name IN ('site-1', 'site-2', 'site-3')");
  EXPECT_EQ(db_.scalar("SELECT count(*) FROM ONLY checks_default"), "3");
  EXPECT_EQ(db_.scalar("SELECT count(*) FROM check_results WHERE error_detail = 'late: connection refused'"), "3");
  db_.exec("SELECT webmon_ensure_checks_partition('" + day_ + "')");  // moves the 3 rows into it
  db_.exec("INSERT INTO targets (name, url, first_seen, last_seen) VALUES ('site-40', 'https://site-40.example/', "
           "now(), now())");
  db_.exec("INSERT INTO checks (scheduled_at, started_at, target_id, checker_id, total_time, body_bytes, redirects, ok,"
           " location_id) SELECT '" + day_ + " 00:00:00+00', '" + day_ + " 00:00:00.001+00', t.id, 2, 0.25, 10, 0,"
           " true, 2 FROM targets t WHERE t.name IN ('site-1', 'site-40')");  // site-40: a target new that day
  const auto late = db_.scalar("SELECT count(*) FROM checks_all WHERE " + day_range(day_));
  EXPECT_EQ(late, "34565");
  snapshot(db_, day_, "_late");
  const auto [status3, out3] = webmon_cli({"compact", "--day", day_});
  ASSERT_EQ(status3, 0) << out3;
  EXPECT_EQ(out3, day_ + ": compacted 5 rows (34565 checks in compact rows)\n");
  EXPECT_EQ(form_of(db_, day_), "compact");
  EXPECT_EQ(compare(db_, day_, "_late"), same(late));
  EXPECT_EQ(db_.scalar("SELECT count(*) FROM checks_compact WHERE day = '" + day_ + "'"), "25");

  // A late row in checks_default alone (no partition) is compacted too.
  db_.exec("INSERT INTO checks (scheduled_at, started_at, target_id, checker_id, total_time, body_bytes, redirects, ok)"
           " SELECT '" + day_ + " 23:59:59.999+00', '" + day_ + " 23:59:59.999+00', t.id, 1, 1, 0, 0, true FROM targets t"
           " WHERE t.name = 'site-24'");
  snapshot(db_, day_, "_default");
  const auto [status4, out4] = webmon_cli({"compact", "--day", day_});
  ASSERT_EQ(status4, 0) << out4;
  EXPECT_EQ(out4, day_ + ": compacted 1 rows (34566 checks in compact rows)\n");
  EXPECT_EQ(db_.scalar("SELECT count(*) FROM ONLY checks_default"), "0");
  EXPECT_EQ(compare(db_, day_, "_default"), same("34566"));
}

// The checker measures in nanoseconds and the column is float4: a stored duration can carry digits
// below the microsecond, which the compact form rounds away (the bound: microseconds).
// Everything else reads back exactly.
TEST_F(Compaction, DurationsBelowAMicrosecondAreRoundedToTheMicrosecond) {
  db_.exec("INSERT INTO targets (name, url, first_seen, last_seen) VALUES ('ns', 'https://ns.example/', now(), now())");
  db_.exec("INSERT INTO checkers (name) VALUES ('c')");
  db_.exec("SELECT webmon_ensure_checks_partition('" + day_ + "')");
  db_.exec("INSERT INTO checks (scheduled_at, started_at, target_id, checker_id, total_time, http_response_time, dns_time,"
           " connect_time, tls_time, ttfb_time, transfer_time, body_bytes, redirects, ok) SELECT '" + day_ +
           " 08:00:00.001+00'::timestamptz + k * interval '15 s', '" + day_ + " 08:00:00.004+00'::timestamptz + k *"
           " interval '15 s', t.id, 1, v * 3, v, v / 7, v / 3, v / 2, v * 0.9, v / 11, 100, 0, true FROM targets t,"
           " generate_series(0, 99) k, LATERAL (SELECT (0.012345678901 + k * 0.0987654321)::real AS v) x");
  snapshot(db_, day_);
  ASSERT_EQ(webmon_cli({"compact", "--day", day_}).first, 0);
  EXPECT_EQ(form_of(db_, day_), "compact");
  // Rows compared with durations in whole microseconds: the same 100 rows.
  const std::string us = "scheduled_at, started_at, tls_cert_not_after, target_id, checker_id, body_bytes, redirects, ok, "
                         "round(total_time::float8 * 1e6), round(http_response_time::float8 * 1e6), "
                         "round(dns_time::float8 * 1e6), round(connect_time::float8 * 1e6), "
                         "round(tls_time::float8 * 1e6), round(ttfb_time::float8 * 1e6), round(transfer_time::float8 * 1e6)";
  EXPECT_EQ(db_.scalar("SELECT count(*) FROM (SELECT " + us + " FROM snap_all EXCEPT ALL SELECT " + us +
                       " FROM checks_all WHERE " + day_range(day_) + ") d"),
            "0");
  EXPECT_EQ(db_.scalar("SELECT count(*) FROM checks_all WHERE " + day_range(day_)), "100");
  // And no value moved by a microsecond: half of one by the rounding, and at most half of float4's
  // step there (under a microsecond below 16 s) when it is read back into a float4.
  const auto worst = std::stod(db_.scalar(
      "SELECT max(abs(a.http_response_time::float8 - b.http_response_time::float8)) FROM snap_all a JOIN checks_all b "
      "USING (target_id, scheduled_at)"));
  EXPECT_LT(worst, 1e-6) << worst;
  EXPECT_GT(worst, 0.0) << "the values had digits below the microsecond";
}

TEST_F(Compaction, OneTargetOverATimeRangeReadsOnlyItsCompactRows) {
  // Enough compact rows (400 targets x 2 days) that reading them all would cost the planner more.
  populate(db_, day_, 400, 3600);
  const auto other = utc_day(db_, 6);
  populate(db_, other, 400, 3600);
  ASSERT_EQ(webmon_cli({"compact", "--day", day_}).first, 0);
  ASSERT_EQ(webmon_cli({"compact", "--day", other}).first, 0);
  db_.exec("ANALYZE");
  const std::string query = "SELECT * FROM check_results WHERE target = 'site-7' AND scheduled_at >= '" + day_ +
                            " 10:00+00' AND scheduled_at < '" + day_ + " 11:00+00'";
  std::string plan;
  {
    pqxx::connection c(db_.uri());
    pqxx::nontransaction nt(c);
    for (const auto& row : nt.exec("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) " + query)) {
      plan += row[0].as<std::string>() + "\n";
    }
  }
  // The compact rows come through the (target_id, day) key of the one target (its 2 days); the
  // other 399 targets' rows are not read, nor are the day partitions outside the range.
  // (An index or a bitmap scan, as the planner likes; the key is what matters.)
  EXPECT_NE(plan.find("checks_compact_pkey"), std::string::npos) << plan;
  EXPECT_NE(plan.find("Index Cond: (target_id = t_1.id)"), std::string::npos) << plan;
  EXPECT_EQ(plan.find("Seq Scan on checks_compact"), std::string::npos) << plan;
  EXPECT_EQ(plan.find("checks_2"), std::string::npos) << "no day partition outside the range is scanned\n" << plan;
  EXPECT_NE(plan.find(" on checks_compact cc (actual rows=2 loops=1)"), std::string::npos) << plan;
  EXPECT_EQ(db_.scalar("SELECT count(*) FROM (" + query + ") q"), "1");
}

// SIGKILL of `webmon compact` (and the end of its server process) while the compaction is held at
// each of its steps by a lock the test holds: the day is then still rows, complete, and the next
// run compacts it.
TEST_F(Compaction, KilledAtAnyStepLeavesTheRowsOrTheCompactDayNeverBothOrNeither) {
  populate(db_, day_, 6, 120);  // 6 targets x 720 checks
  const auto n = db_.scalar("SELECT count(*) FROM checks_all WHERE " + day_range(day_));
  snapshot(db_, day_);
  const std::string pause_lock = "hashtext('webmon.compact_test_pause')";
  struct Point {
    const char* name;
    bool end_backend;  // pg_terminate_backend instead of SIGKILL of the client
  };
  for (const Point point : {Point{"chunks", false}, Point{"chunk", false}, Point{"finish", false},
                            Point{"drop", false}, Point{"commit", false}, Point{"chunk", true}, Point{"commit", true}}) {
    SCOPED_TRACE(std::string(point.name) + (point.end_backend ? " (backend ended)" : " (client killed)"));
    pqxx::connection holder(db_.uri());
    pqxx::nontransaction h(holder);
    h.exec("SELECT pg_advisory_lock(" + pause_lock + ")");
    ChildProcess cli({WEBMON_CLI_BIN, "compact", "--day", day_, "--config", paused_config(point.name).string()},
                     dir_.path() / (std::string("compact-") + point.name + ".log"));
    std::string backend;
    ASSERT_TRUE(eventually([&] {
      backend = db_.scalar("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND "
                           "database = (SELECT oid FROM pg_database WHERE datname = current_database())");
      return !backend.empty();
    }, 60s)) << cli.log();
    if (point.end_backend) {
      EXPECT_EQ(db_.scalar("SELECT pg_terminate_backend(" + backend + ")"), "t");
    } else {
      cli.signal(SIGKILL);
    }
    const auto exit = cli.wait_for_exit(60s);
    ASSERT_TRUE(exit) << cli.log();
    EXPECT_NE(*exit, 0) << cli.log();
    h.exec("SELECT pg_advisory_unlock(" + pause_lock + ")");
    ASSERT_TRUE(eventually([&] { return db_.scalar("SELECT count(*) FROM pg_stat_activity WHERE pid = " + backend) == "0"; },
                           60s));
    EXPECT_EQ(form_of(db_, day_), "rows");
    EXPECT_EQ(compare(db_, day_), same(n));
  }
  const auto [status, out] = webmon_cli({"compact", "--day", day_});
  ASSERT_EQ(status, 0) << out;
  EXPECT_EQ(form_of(db_, day_), "compact");
  EXPECT_EQ(compare(db_, day_), same(n));
}

// The real writer goes on ingesting while a compaction is held open mid-way, including late rows
// for the very day being compacted; nothing is lost or doubled, and the compaction takes the late
// rows too (it sees the partition changed, rolls back and goes again).
TEST_F(Compaction, AWriterIngestingDuringACompactionLosesNothing) {
  using webmon::writer::test::Producer;
  using webmon::writer::test::TestTopic;
  populate(db_, day_, 10, 120);
  const auto n = std::stoll(db_.scalar("SELECT count(*) FROM checks_all WHERE " + day_range(day_)));
  const TestTopic topic("compact_topic");
  Producer producer;
  producer.create_topic(topic.name(), 2);
  webmon::writer::test::WriterOptions options;
  auto writer_config = webmon::writer::test::write_writer_config(dir_.path(), "writer", topic.name(),
                                                                 unique_name("compact_group"), db_.uri(), options);
  {
    std::ofstream(writer_config, std::ios::app) << "  compact_after_days: 0\n";  // this test compacts itself
  }
  ChildProcess writer({WEBMON_WRITER_BIN, "--config", writer_config.string(), "--log-level", "info"},
                      dir_.path() / "writer.log");

  pqxx::connection holder(db_.uri());
  pqxx::nontransaction h(holder);
  h.exec("SELECT pg_advisory_lock(hashtext('webmon.compact_test_pause'))");
  ChildProcess cli({WEBMON_CLI_BIN, "compact", "--day", day_, "--config", paused_config("chunk").string()},
                   dir_.path() / "compact.log");
  ASSERT_TRUE(eventually([&] {
    return db_.scalar("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND "
                      "database = (SELECT oid FROM pg_database WHERE datname = current_database())") == "1";
  }, 60s)) << cli.log();

  // Today's checks, and 20 late ones for the day in compaction (site-1 .. site-10, on the hour).
  constexpr int kToday = 3000;
  constexpr int kLate = 20;
  for (int i = 0; i < kToday; ++i) {
    const auto c = webmon::writer::test::make_check(i);
    producer.produce(topic.name(), c.target, webmon::encode_check_result(c));
  }
  for (int i = 0; i < kLate; ++i) {
    webmon::CheckResult c = webmon::writer::test::make_check(i);
    c.target = "site-" + std::to_string(1 + i % 10);
    const auto day = std::chrono::sys_days(std::chrono::floor<std::chrono::days>(std::chrono::system_clock::now())) -
                     std::chrono::days(5);
    c.scheduled_at = webmon::SysMillis(day.time_since_epoch()) + std::chrono::hours(1 + i) + std::chrono::milliseconds(7);
    c.started_at = c.scheduled_at + std::chrono::milliseconds(3);
    producer.produce(topic.name(), c.target, webmon::encode_check_result(c));
  }
  producer.flush();
  // Ingest is not held up by the open compaction: every message lands while it waits.
  ASSERT_TRUE(eventually([&] {
    return db_.scalar("SELECT count(*) FROM check_results WHERE target LIKE 'target-%'") == std::to_string(kToday);
  }, 120s)) << writer.log();
  ASSERT_TRUE(eventually([&] {
    return db_.scalar("SELECT count(*) FROM checks_all WHERE " + day_range(day_)) == std::to_string(n + kLate);
  }, 60s)) << writer.log();
  EXPECT_TRUE(cli.running());

  h.exec("SELECT pg_advisory_unlock(hashtext('webmon.compact_test_pause'))");
  const auto exit = cli.wait_for_exit(120s);
  ASSERT_TRUE(exit) << cli.log();
  EXPECT_EQ(*exit, 0) << cli.log();
  const auto total = std::to_string(n + kLate);
  EXPECT_EQ(cli.log(), day_ + ": compacted " + total + " rows (" + total + " checks in compact rows)\n");
  EXPECT_EQ(form_of(db_, day_), "compact");
  EXPECT_EQ(db_.scalar("SELECT count(*) FROM checks_all WHERE " + day_range(day_)), total);
  EXPECT_EQ(db_.scalar("SELECT count(*) - count(DISTINCT (target, scheduled_at)) FROM check_results"), "0");
  EXPECT_EQ(db_.scalar("SELECT count(*) FROM check_results WHERE target LIKE 'target-%'"), std::to_string(kToday));
  writer.signal(SIGTERM);
  EXPECT_EQ(writer.wait_for_exit(60s), 0) << writer.log();
}

// The writer compacts closed days on its own (a minute after it starts).
TEST_F(Compaction, TheWriterCompactsClosedDaysInTheBackground) {
  populate(db_, day_, 8, 300);
  const auto yesterday = utc_day(db_, 1);
  populate(db_, yesterday, 8, 300);
  const auto n = db_.scalar("SELECT count(*) FROM checks_all WHERE " + day_range(day_));
  snapshot(db_, day_);
  const webmon::writer::test::TestTopic topic("compact_bg_topic");
  webmon::writer::test::Writer writer(dir_.path(), "writer", topic.name(), unique_name("compact_bg"), db_.uri());
  ASSERT_TRUE(eventually([&] { return form_of(db_, day_) == "compact"; }, 240s)) << writer.log();
  EXPECT_EQ(compare(db_, day_), same(n));
  EXPECT_NE(writer.log().find("compacted " + day_ + ": " + n + " rows"), std::string::npos) << writer.log();
  // Yesterday is not old enough with compact_after_days 2.
  EXPECT_EQ(form_of(db_, yesterday), "rows");
  EXPECT_EQ(writer.stop(), 0) << writer.log();
}

TEST_F(Compaction, RefusesADayThatIsNotClosed) {
  const auto [status, out] = webmon_cli({"compact", "--day", utc_day(db_, 0)});
  EXPECT_EQ(status, 2) << out;
  EXPECT_NE(out.find("is not closed yet"), std::string::npos) << out;
  const auto [status2, out2] = webmon_cli({"compact", "--day", "2026-02-30"});
  EXPECT_EQ(status2, 2) << out2;
  EXPECT_NE(out2.find("invalid date"), std::string::npos) << out2;
  const auto [status3, out3] = webmon_cli({"compact"});
  EXPECT_EQ(status3, 0) << out3;
  EXPECT_EQ(out3, "nothing to compact before " + utc_day(db_, 2) + "\n");
}

}  // namespace
