// Unit: the deadlines added to every PostgreSQL session's connection string, and that a value the
// URI gives itself wins. No servers: libpq parses the result back.
#include <map>
#include <memory>
#include <string>

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include "webmon/writer/pg_session.hpp"

namespace webmon::writer {
namespace {

using namespace std::chrono_literals;

std::map<std::string, std::string> parsed(const std::string& conninfo) {
  char* err = nullptr;
  std::unique_ptr<PQconninfoOption, decltype(&PQconninfoFree)> opts(PQconninfoParse(conninfo.c_str(), &err),
                                                                     &PQconninfoFree);
  EXPECT_TRUE(opts) << (err ? err : "");
  std::map<std::string, std::string> out;
  for (auto* o = opts.get(); o && o->keyword; ++o) {
    if (o->val) out[o->keyword] = o->val;
  }
  return out;
}

TEST(PgSession, DefaultsAddedToAUri) {
  PostgresConfig pg;
  pg.uri = "postgresql://webmon:s3cr%27t@db.example:5433/webmon?sslmode=require";
  const auto s = pg_session(pg);
  const auto kv = parsed(s.conninfo);
  EXPECT_EQ(kv.at("host"), "db.example");
  EXPECT_EQ(kv.at("port"), "5433");
  EXPECT_EQ(kv.at("password"), "s3cr't");
  EXPECT_EQ(kv.at("sslmode"), "require");
  EXPECT_EQ(kv.at("connect_timeout"), "10");
  EXPECT_EQ(kv.at("keepalives"), "1");
  EXPECT_EQ(kv.at("keepalives_idle"), "10");
  EXPECT_EQ(kv.at("keepalives_interval"), "5");
  EXPECT_EQ(kv.at("keepalives_count"), "3");
  EXPECT_EQ(kv.at("options"), "-c statement_timeout=20000");
  EXPECT_EQ(s.connect_timeout, 10s);
  EXPECT_EQ(s.statement_timeout, 20s);
}

TEST(PgSession, ConfiguredValuesAndKeyValueForm) {
  PostgresConfig pg;
  pg.uri = "host=127.0.0.1 dbname=webmon user=webmon";
  pg.connect_timeout_seconds = 3;
  pg.keepalives_idle_seconds = 7;
  pg.keepalives_interval_seconds = 2;
  pg.keepalives_count = 4;
  pg.statement_timeout_ms = 1500;
  const auto s = pg_session(pg);
  const auto kv = parsed(s.conninfo);
  EXPECT_EQ(kv.at("dbname"), "webmon");
  EXPECT_EQ(kv.at("connect_timeout"), "3");
  EXPECT_EQ(kv.at("keepalives_idle"), "7");
  EXPECT_EQ(kv.at("keepalives_interval"), "2");
  EXPECT_EQ(kv.at("keepalives_count"), "4");
  EXPECT_EQ(kv.at("options"), "-c statement_timeout=1500");
  EXPECT_EQ(s.statement_timeout, 1500ms);
}

TEST(PgSession, TheUriWins) {
  PostgresConfig pg;
  pg.uri =
      "postgresql://h/db?connect_timeout=30&keepalives_idle=60&options=-c%20search_path%3Dx%20-c%20statement_timeout%3D5s";
  const auto s = pg_session(pg);
  const auto kv = parsed(s.conninfo);
  EXPECT_EQ(kv.at("connect_timeout"), "30");
  EXPECT_EQ(kv.at("keepalives_idle"), "60");
  EXPECT_EQ(kv.at("keepalives_count"), "3");
  EXPECT_EQ(kv.at("options"), "-c search_path=x -c statement_timeout=5s");
  EXPECT_EQ(s.connect_timeout, 30s);
  EXPECT_EQ(s.statement_timeout, 5s);

  pg.uri = "postgresql://h/db?options=-c%20search_path%3Dx";  // other options: ours appended
  EXPECT_EQ(parsed(pg_session(pg).conninfo).at("options"), "-c search_path=x -c statement_timeout=20000");
}

TEST(PgSession, UnparsableUriIsAnError) {
  PostgresConfig pg;
  pg.uri = "postgresql://h/db?no_such_option=1";
  EXPECT_THROW(pg_session(pg), std::invalid_argument);
}

}  // namespace
}  // namespace webmon::writer
