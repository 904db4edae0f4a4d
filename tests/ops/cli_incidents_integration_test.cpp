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
