// `webmon incidents` as a process against the stack's real PostgreSQL: crafted runs of checks
// (flapping, a single failure below the threshold, an incident still open at the end, one across
// midnight whose first day is compacted), checked field by field in table and JSON, and empty.
#include <gtest/gtest.h>

#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <boost/json.hpp>

#include "support/database.hpp"
#include "support/process.hpp"
#include "support/stack.hpp"
#include "webmon/writer/migrations.hpp"

namespace {

namespace json = boost::json;
using webmon::test::TempDir;
using webmon::test::TestDatabase;

// Cells of each line of a table: columns are two or more spaces apart.
std::vector<std::vector<std::string>> cells(const std::string& table) {
  std::vector<std::vector<std::string>> out;
  std::istringstream lines(table);
  for (std::string line; std::getline(lines, line);) {
    std::vector<std::string> row;
    const std::regex gap(" {2,}");
    for (std::sregex_token_iterator it(line.begin(), line.end(), gap, -1), end; it != end; ++it) {
      std::string c = *it;
      while (!c.empty() && c.front() == ' ') c.erase(c.begin());
      if (!c.empty()) row.push_back(c);
    }
    out.push_back(row);
  }
  return out;
}

class CliIncidents : public ::testing::Test {
 protected:
  void SetUp() override {
    webmon::writer::apply_migrations(db_.uri());
    day_ = db_.scalar("SELECT ((now() AT TIME ZONE 'UTC')::date - 3)::text");
    next_ = db_.scalar("SELECT ((now() AT TIME ZONE 'UTC')::date - 2)::text");
    db_.exec("INSERT INTO checkers (name) VALUES ('c')");
    db_.exec("INSERT INTO locations (name) VALUES ('eu-west')");
    db_.exec("SELECT webmon_ensure_checks_partition('" + day_ + "'), webmon_ensure_checks_partition('" + next_ + "')");
    // Each target's checks a minute apart from 10:00 on day_: 'S' ok, 'F' a timeout, 'H' HTTP 503.
    add("single", day_ + " 10:00", "SSFSS");
    add("flap", day_ + " 10:00", "FSFSFSFS");
    add("two", day_ + " 10:00", "SFFFSS");
    add("open", day_ + " 10:00", "SSHH");
    add("recover", day_ + " 10:00", "FFSFSS");
    add("midnight", day_ + " 23:57", "SFFFFS", "eu-west");  // 23:58 .. 00:01 fail, 00:02 ok
  }

  void add(const std::string& target, const std::string& from, const std::string& runs,
           const std::string& location = "") {
    db_.exec("INSERT INTO targets (name, url, first_seen, last_seen) VALUES ('" + target + "', 'https://" + target +
             ".example/', now(), now())");
    for (std::size_t k = 0; k < runs.size(); ++k) {
      const char r = runs[k];
      const std::string at = "('" + from + "+00'::timestamptz + interval '" + std::to_string(k) + " min')";
      db_.exec("INSERT INTO checks (scheduled_at, started_at, target_id, checker_id, total_time, http_response_time, "
               "body_bytes, http_status, redirects, error, ok, error_detail, location_id) SELECT " + at + ", " + at +
               ", t.id, 1, 0.1, " + (r == 'F' ? "NULL" : "0.1") + ", 0, " +
               (r == 'F' ? "NULL" : r == 'H' ? "503" : "200") + ", 0, " + (r == 'F' ? "4" : "NULL") + ", " +
               (r == 'S' ? "true" : "false") + ", " + (r == 'F' ? "'no answer in " + std::to_string(k) + " s'" : "NULL") +
               ", " + (location.empty() ? "NULL" : "(SELECT id FROM locations WHERE name = '" + location + "')") +
               " FROM targets t WHERE t.name = '" + target + "'");
    }
  }

  std::pair<int, std::string> cli(std::vector<std::string> args, const std::string& extra_config = "") {
    const auto config = dir_.write("config.yml", "postgres:\n  uri: \"" + db_.uri() + "\"\n" + extra_config);
    args.insert(args.begin(), WEBMON_CLI_BIN);
    args.push_back("--config");
    args.push_back(config.string());
    return webmon::test::run_command(args);
  }

  std::string at(const std::string& day, const std::string& hh_mm) { return day + "T" + hh_mm + ":00.000Z"; }

  TestDatabase db_;
  TempDir dir_;
  std::string day_;
  std::string next_;
};

TEST_F(CliIncidents, TableAndJsonFieldByField) {
  // The first day of the midnight incident is compacted: the incident reads the same.
  const auto [cs, co] = cli({"compact", "--day", day_});
  ASSERT_EQ(cs, 0) << co;
  ASSERT_EQ(db_.scalar("SELECT count(*) FROM checks_compact"), "6");

  const auto [status, out] = cli({"incidents", "--since", "all"});
  ASSERT_EQ(status, 0) << out;
  const auto t = cells(out);
  ASSERT_EQ(t.size(), 5u) << out;
  EXPECT_EQ(t[0], (std::vector<std::string>{"TARGET", "STARTED", "ENDED", "DURATION", "FAILED", "FIRST ERROR",
                                              "LOCATION"}));
  // Oldest first: recover (10:00-10:02: closed by its first success with close_after 1; its later
  // single failure opens nothing), two (10:01-10:04), open (from 10:02, still open), midnight.
  // "single" and "flap" never fail twice in a row: no incident.
  EXPECT_EQ(t[1], (std::vector<std::string>{"recover", at(day_, "10:00"), at(day_, "10:02"), "2m0s", "2",
                                              "timeout: no answer in 0 s", "-"}))
      << out;
  EXPECT_EQ(t[2], (std::vector<std::string>{"two", at(day_, "10:01"), at(day_, "10:04"), "3m0s", "3",
                                              "timeout: no answer in 1 s", "-"}))
      << out;
  EXPECT_EQ(t[3], (std::vector<std::string>{"open", at(day_, "10:02"), "open", "1m0s", "2", "HTTP 503", "-"})) << out;
  EXPECT_EQ(t[4], (std::vector<std::string>{"midnight", at(day_, "23:58"), at(next_, "00:02"), "4m0s", "4",
                                              "timeout: no answer in 1 s", "eu-west"}))
      << out;

  const auto [js, jo] = cli({"incidents", "--since", "all", "--format", "json", "--target", "midnight"});
  ASSERT_EQ(js, 0) << jo;
  const auto doc = json::parse(jo).as_object();
  const auto& list = doc.at("incidents").as_array();
  ASSERT_EQ(list.size(), 1u) << jo;
  const auto& i = list[0].as_object();
  EXPECT_EQ(i.at("target").as_string(), "midnight");
  EXPECT_EQ(i.at("location").as_string(), "eu-west");
  EXPECT_EQ(i.at("started_at").as_string(), at(day_, "23:58"));
  EXPECT_EQ(i.at("ended_at").as_string(), at(next_, "00:02"));
  EXPECT_EQ(i.at("duration_s").to_number<double>(), 240.0);
  EXPECT_EQ(i.at("checks_failed").as_int64(), 4);
  EXPECT_EQ(i.at("first_error").as_string(), "timeout");
  EXPECT_EQ(i.at("first_error_detail").as_string(), "no answer in 1 s");
  EXPECT_TRUE(i.at("first_http_status").is_null());
  EXPECT_EQ(i.size(), 9u) << jo;

  const auto [os, oo] = cli({"incidents", "--since", "all", "--open", "--format", "json"});
  ASSERT_EQ(os, 0) << oo;
  const auto open = json::parse(oo).as_object().at("incidents").as_array();
  ASSERT_EQ(open.size(), 1u) << oo;
  EXPECT_EQ(open[0].as_object().at("target").as_string(), "open");
  EXPECT_TRUE(open[0].as_object().at("ended_at").is_null());
  EXPECT_TRUE(open[0].as_object().at("location").is_null());
  EXPECT_TRUE(open[0].as_object().at("first_error").is_null());
  EXPECT_EQ(open[0].as_object().at("first_http_status").as_int64(), 503);
  EXPECT_EQ(open[0].as_object().at("checks_failed").as_int64(), 2);
}

TEST_F(CliIncidents, ThresholdsFromTheConfig) {
  // close_after 2: recover's short success at 10:02 no longer ends it; open_after 3: "open" (two
  // failures) is no incident.
  const auto [status, out] =
      cli({"incidents", "--since", "all", "--format", "json"}, "incidents:\n  open_after: 2\n  close_after: 2\n");
  ASSERT_EQ(status, 0) << out;
  const auto list = json::parse(out).as_object().at("incidents").as_array();
  ASSERT_EQ(list.size(), 4u) << out;
  EXPECT_EQ(list[0].as_object().at("target").as_string(), "recover");
  EXPECT_EQ(list[0].as_object().at("ended_at").as_string(), at(day_, "10:04"));
  EXPECT_EQ(list[0].as_object().at("checks_failed").as_int64(), 3);
  EXPECT_EQ(list[1].as_object().at("target").as_string(), "two");
  EXPECT_EQ(list[1].as_object().at("ended_at").as_string(), at(day_, "10:04"));

  const auto [s3, o3] =
      cli({"incidents", "--since", "all", "--format", "json"}, "incidents:\n  open_after: 3\n");
  ASSERT_EQ(s3, 0) << o3;
  const auto l3 = json::parse(o3).as_object().at("incidents").as_array();
  ASSERT_EQ(l3.size(), 2u) << o3;
  EXPECT_EQ(l3[0].as_object().at("target").as_string(), "two");
  EXPECT_EQ(l3[1].as_object().at("target").as_string(), "midnight");

  const auto [sb, ob] = cli({"incidents"}, "incidents:\n  open_after: 0\n");
  EXPECT_EQ(sb, 2) << ob;
  EXPECT_NE(ob.find("incidents.open_after"), std::string::npos) << ob;
}

// `webmon report` over the same runs, day_ compacted (its rollups written at compaction) and next_
// as rows: per target, location and day, the checks, availability, downtime from the incidents
// clipped to the day (the midnight incident counts 2 min on each side) and the percentiles, in
// the table, JSON and CSV; by week the midnight target's two days add up.
TEST_F(CliIncidents, ReportFieldByFieldInTableJsonAndCsv) {
  const auto [cs, co] = cli({"compact", "--day", day_});
  ASSERT_EQ(cs, 0) << co;
  EXPECT_EQ(db_.scalar("SELECT sum(checks) FROM check_rollups"), "32");  // day_'s 32 checks, by hour

  struct Want {
    std::string period, target, location;
    long long checks;
    double availability, downtime;
    std::string availability_cell, downtime_cell;
  };
  const std::vector<Want> want = {
      {day_, "flap", "", 8, 50.0, 0, "50.000%", "0s"},
      {day_, "midnight", "eu-west", 3, 100.0 / 3, 120, "33.333%", "2m0s"},
      {next_, "midnight", "eu-west", 3, 100.0 / 3, 120, "33.333%", "2m0s"},
      {day_, "open", "", 4, 50.0, 60, "50.000%", "1m0s"},
      {day_, "recover", "", 6, 50.0, 120, "50.000%", "2m0s"},
      {day_, "single", "", 5, 80.0, 0, "80.000%", "0s"},
      {day_, "two", "", 6, 50.0, 180, "50.000%", "3m0s"},
  };

  const auto [ts, to] = cli({"report", "--period", "day"});
  ASSERT_EQ(ts, 0) << to;
  const auto t = cells(to);
  ASSERT_EQ(t.size(), want.size() + 1) << to;
  EXPECT_EQ(t[0], (std::vector<std::string>{"PERIOD", "TARGET", "CHECKS", "AVAILABILITY", "DOWNTIME", "P50", "P95",
                                              "P99", "LOCATION"}));
  for (std::size_t k = 0; k < want.size(); ++k) {
    const auto& w = want[k];
    EXPECT_EQ(t[k + 1], (std::vector<std::string>{w.period, w.target, std::to_string(w.checks), w.availability_cell,
                                                  w.downtime_cell, "0.100s", "0.100s", "0.100s",
                                                  w.location.empty() ? "-" : w.location}))
        << to;
  }

  const auto [js, jo] = cli({"report", "--since", "30d", "--format", "json"});
  ASSERT_EQ(js, 0) << jo;
  const auto list = json::parse(jo).as_object().at("report").as_array();
  ASSERT_EQ(list.size(), want.size()) << jo;
  for (std::size_t k = 0; k < want.size(); ++k) {
    const auto& w = want[k];
    const auto& r = list[k].as_object();
    SCOPED_TRACE(w.target + " " + w.period);
    EXPECT_EQ(r.size(), 9u) << jo;
    EXPECT_EQ(r.at("period").as_string(), w.period);
    EXPECT_EQ(r.at("target").as_string(), w.target);
    if (w.location.empty()) {
      EXPECT_TRUE(r.at("location").is_null());
    } else {
      EXPECT_EQ(r.at("location").as_string(), w.location);
    }
    EXPECT_EQ(r.at("checks").as_int64(), w.checks);
    EXPECT_NEAR(r.at("availability_pct").to_number<double>(), w.availability, 1e-9);
    EXPECT_EQ(r.at("downtime_s").to_number<double>(), w.downtime);
    for (const char* p : {"p50_s", "p95_s", "p99_s"}) EXPECT_NEAR(r.at(p).to_number<double>(), 0.1, 1e-6) << p;
  }

  const auto [vs, vo] = cli({"report", "--format", "csv", "--target", "midnight"});
  ASSERT_EQ(vs, 0) << vo;
  std::vector<std::string> lines;
  for (std::size_t at = 0; at < vo.size();) {
    const auto end = vo.find("\r\n", at);
    ASSERT_NE(end, std::string::npos) << vo;
    lines.push_back(vo.substr(at, end - at));
    at = end + 2;
  }
  ASSERT_EQ(lines.size(), 3u) << vo;
  EXPECT_EQ(lines[0], "period,target,location,checks,availability_pct,downtime_s,p50_s,p95_s,p99_s");
  for (std::size_t k = 1; k < 3; ++k) {
    std::vector<std::string> f;
    std::stringstream in(lines[k]);
    for (std::string x; std::getline(in, x, ',');) f.push_back(x);
    ASSERT_EQ(f.size(), 9u) << lines[k];
    EXPECT_EQ(f[0], k == 1 ? day_ : next_);
    EXPECT_EQ(f[1], "midnight");
    EXPECT_EQ(f[2], "eu-west");
    EXPECT_EQ(f[3], "3");
    EXPECT_NEAR(std::stod(f[4]), 100.0 / 3, 1e-9);
    EXPECT_EQ(f[5], "120");
    for (std::size_t c = 6; c < 9; ++c) EXPECT_NEAR(std::stod(f[c]), 0.1, 1e-6) << lines[k];
  }

  // By week (from Monday): the midnight target's days are one row or two, adding up either way.
  const auto [ws, wo] = cli({"report", "--period", "week", "--target", "midnight", "--format", "json"});
  ASSERT_EQ(ws, 0) << wo;
  const auto weeks = json::parse(wo).as_object().at("report").as_array();
  const bool same_week = db_.scalar("SELECT date_trunc('week', '" + day_ + "'::date) = date_trunc('week', '" + next_ +
                                    "'::date)") == "t";
  ASSERT_EQ(weeks.size(), same_week ? 1u : 2u) << wo;
  long long checks = 0;
  double downtime = 0;
  for (const auto& w : weeks) {
    checks += w.at("checks").as_int64();
    downtime += w.at("downtime_s").to_number<double>();
    EXPECT_EQ(db_.scalar("SELECT extract(isodow FROM '" + std::string(w.at("period").as_string()) + "'::date)"), "1");
  }
  EXPECT_EQ(checks, 6);
  EXPECT_EQ(downtime, 240.0);

  // Nothing: the note, an empty list, the header alone.
  const auto [e1, o1] = cli({"report", "--target", "nobody"});
  EXPECT_EQ(e1, 0) << o1;
  EXPECT_EQ(o1, "no checks in the selected window\n");
  const auto [e2, o2] = cli({"report", "--since", "1h", "--format", "json"});
  EXPECT_EQ(e2, 0) << o2;
  EXPECT_EQ(o2, "{\"report\": []}\n");
  const auto [e3, o3] = cli({"report", "--since", "1h", "--format", "csv"});
  EXPECT_EQ(e3, 0) << o3;
  EXPECT_EQ(o3, "period,target,location,checks,availability_pct,downtime_s,p50_s,p95_s,p99_s\r\n");
  EXPECT_EQ(cli({"report", "--period", "year"}).first, 2);
  EXPECT_EQ(cli({"report", "--format", "xml"}).first, 2);
  EXPECT_EQ(cli({"stats", "--period", "day"}).first, 2);
}

// Incidents come from the runs kept with the rollups (sql/007): the same as sql/005's reading of
// every check (webmon_incidents_from_checks, kept as the reference). Four targets flap at random
// for two days, a check every 2 minutes, in two locations and none. day_ is compacted (its hourly
// and daily runs from the compact rows); next_'s hours are rolled up from rows but for 13:00, as
// when a writer has not got to an hour yet, so its daily row joins runs across a gap whose checks
// are rows. For several thresholds and windows, `webmon incidents` lists exactly the reference's
// incidents, field by field.
TEST_F(CliIncidents, FromTheRollupsTheSameAsFromEveryCheck) {
  db_.exec("INSERT INTO targets (name, url, first_seen, last_seen) SELECT 'random-' || i, 'https://r' || i || "
           "'.example/', now(), now() FROM generate_series(1, 4) i");
  db_.exec("INSERT INTO locations (name) VALUES ('us-east')");
  // Failures come in spells: most of the time 8 % of checks fail, one stretch in three 70 %.
  db_.exec("SELECT setseed(0.25); "
           "INSERT INTO checks (scheduled_at, started_at, target_id, checker_id, total_time, http_response_time, "
           "body_bytes, http_status, redirects, error, ok, error_detail, location_id) "
           "SELECT x.at, x.at + interval '3 ms', t.id, 1, 0.1, CASE WHEN x.f THEN NULL ELSE 0.1 END, 0, "
           "CASE WHEN x.f AND x.k % 2 = 0 THEN 503 WHEN NOT x.f THEN 200 END, 0, CASE WHEN x.f AND x.k % 2 = 1 THEN 4 END, "
           "NOT x.f, CASE WHEN x.f AND x.k % 2 = 1 THEN 'no answer ' || x.k END, "
           "(SELECT l.id FROM locations l WHERE l.name = (ARRAY['eu-west', 'us-east', NULL])[1 + t.id % 3]) "
           "FROM targets t, LATERAL (SELECT k, '" + day_ + " 00:00+00'::timestamptz + k * interval '2 min' AS at, "
           "random() < CASE WHEN (k / (7 + t.id)) % 3 = 0 THEN 0.7 ELSE 0.08 END AS f "
           "FROM generate_series(0, 1439) k) x WHERE t.name LIKE 'random-%' ORDER BY x.at");
  // And one target healthy but for two hours of failures, between two hours that are not rolled
  // up (13:00 and 16:00 on the second day): each of those hours' ok checks is its own run, so the
  // incident ends at 16:00, not later.
  db_.exec("INSERT INTO targets (name, url, first_seen, last_seen) VALUES ('gappy', 'https://gappy.example/', now(), "
           "now()); "
           "INSERT INTO checks (scheduled_at, started_at, target_id, checker_id, total_time, http_response_time, "
           "body_bytes, http_status, redirects, error, ok, error_detail) "
           "SELECT x.at, x.at + interval '3 ms', t.id, 1, 0.1, CASE WHEN x.f THEN NULL ELSE 0.1 END, 0, "
           "CASE WHEN NOT x.f THEN 200 END, 0, CASE WHEN x.f THEN 4 END, NOT x.f, CASE WHEN x.f THEN 'no answer' END "
           "FROM targets t, LATERAL (SELECT at, at >= '" + next_ + " 14:00+00' AND at < '" + next_ + " 16:00+00' AS f "
           "FROM generate_series('" + next_ + " 12:00+00'::timestamptz, '" + next_ + " 17:58+00', interval '2 min') at) x "
           "WHERE t.name = 'gappy'");
  const auto [cs, co] = cli({"compact", "--day", day_});
  ASSERT_EQ(cs, 0) << co;
  db_.exec("SELECT webmon_rollup_hour('" + next_ + " 00:00+00'::timestamptz + h * interval '1 hour') "
           "FROM generate_series(0, 23) h WHERE h NOT IN (13, 16) ORDER BY h");
  ASSERT_EQ(db_.scalar("SELECT count(DISTINCT hour) FROM check_rollups WHERE hour >= '" + next_ + "'"), "22");
  ASSERT_EQ(db_.scalar("SELECT count(*) FROM check_rollups_daily r JOIN targets t ON t.id = r.target_id "
                       "WHERE t.name LIKE 'random-%'"),
            "8");  // 4 targets x 2 days

  for (const auto& [open_after, close_after] : std::vector<std::pair<int, int>>{{1, 1}, {2, 1}, {2, 3}, {4, 2}}) {
    for (const std::string& since : {std::string("-infinity"), day_ + " 22:00+00", next_ + " 01:30+00"}) {
      SCOPED_TRACE(std::to_string(open_after) + " " + std::to_string(close_after) + " " + since);
      const auto config = "incidents:\n  open_after: " + std::to_string(open_after) + "\n  close_after: " +
                          std::to_string(close_after) + "\n";
      // `--since` takes a duration: back from now to 20 s before `since` (the checks are 2 minutes
      // apart, so the same ones).
      const std::string ago =
          since == "-infinity"
              ? "all"
              : db_.scalar("SELECT ceil(extract(epoch FROM now() - '" + since + "'::timestamptz))::bigint + 20") + "s";
      const auto [status, out] = cli({"incidents", "--since", ago, "--format", "json"}, config);
      ASSERT_EQ(status, 0) << out;
      const auto listed = json::parse(out).as_object().at("incidents").as_array();
      // The reference's incidents as the JSON the CLI prints, in its order.
      const auto want = db_.scalar(
          "SELECT coalesce(json_agg(json_build_object('target', i.target, 'location', i.location, 'started_at', "
          "to_char(i.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), 'ended_at', "
          "to_char(i.ended_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), 'duration_s', "
          "extract(epoch FROM i.duration), 'checks_failed', i.checks_failed, 'first_error', i.first_error, "
          "'first_error_detail', i.first_error_detail, 'first_http_status', i.first_http_status) "
          "ORDER BY i.started_at, i.target, i.location NULLS FIRST), '[]') FROM webmon_incidents_from_checks(" +
          std::to_string(open_after) + ", " + std::to_string(close_after) + ", '" + since +
          "') i WHERE i.target LIKE 'random-%' OR i.target = 'gappy'");
      const auto expected = json::parse(want).as_array();
      ASSERT_GT(expected.size(), 3u);
      std::vector<json::object> mine;
      for (const auto& i : listed) {
        const std::string target(i.at("target").as_string());
        if (target.rfind("random-", 0) == 0 || target == "gappy") mine.push_back(i.as_object());
      }
      ASSERT_EQ(mine.size(), expected.size()) << out;
      for (std::size_t k = 0; k < mine.size(); ++k) {
        const auto& w = expected[k].as_object();
        for (const char* key : {"target", "location", "started_at", "ended_at", "checks_failed", "first_error",
                                "first_error_detail", "first_http_status"}) {
          EXPECT_EQ(json::serialize(mine[k].at(key)), json::serialize(w.at(key))) << k << " " << key;
        }
        EXPECT_EQ(mine[k].at("duration_s").to_number<double>(), w.at("duration_s").to_number<double>()) << k;
      }
    }
  }
}

TEST_F(CliIncidents, EmptyResults) {
  const auto [s1, o1] = cli({"incidents", "--target", "nobody", "--since", "all"});
  EXPECT_EQ(s1, 0) << o1;
  EXPECT_EQ(o1, "no incidents in the selected window\n");
  const auto [s2, o2] = cli({"incidents", "--since", "1h", "--format", "json"});
  EXPECT_EQ(s2, 0) << o2;
  EXPECT_EQ(o2, "{\"incidents\": []}\n");
  const auto [s3, o3] = cli({"incidents", "--day", day_});
  EXPECT_EQ(s3, 2) << o3;
}

}  // namespace
