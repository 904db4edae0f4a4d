// Integration, with the real Kafka and PostgreSQL from scripts/stack and the real webmon-writer:
// messages produced to a fresh topic end up in check_results exactly as sent, garbage in
// dead_letters, the schema is applied once, and a changed applied migration is refused.
#include <csignal>

#include <algorithm>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <pqxx/pqxx>

#include "support/http_client.hpp"
#include "webmon/writer/migrations.hpp"
#include "webmon/writer/pg_format.hpp"
#include "webmon/writer/sink.hpp"
#include "writer_fixture.hpp"

namespace webmon::writer::test {
namespace {

using namespace std::chrono_literals;
using webmon::test::eventually;
using webmon::test::TempDir;
using webmon::test::unique_name;

std::string opt_text(const pqxx::field& f) { return f.is_null() ? "NULL" : f.c_str(); }

std::string expected_real(const std::optional<double>& v) {
  if (!v) return "NULL";
  std::ostringstream s;
  s << static_cast<float>(*v);
  return s.str();
}

TEST(WriterWithKafkaAndPostgres, RowsInCheckResultsMatchWhatWasSent) {
  TestDatabase db;
  TempDir dir;
  const TestTopic topic_guard("wt_topic");
  const auto& topic = topic_guard.name();
  Producer producer;
  producer.create_topic(topic, 3);
  constexpr int kMessages = 600;
  std::vector<CheckResult> sent;
  for (int i = 0; i < kMessages; ++i) {
    sent.push_back(make_check(i, 7));
    producer.produce(topic, sent.back().target, encode_check_result(sent.back()));
  }
  producer.produce(topic, std::string("broken"), std::string("{\"schema_version\":1,\"target\":"));
  producer.produce(topic, std::string("tomb"), std::nullopt);
  producer.flush();

  WriterOptions options;
  options.batch_max_rows = 100;
  Writer writer(dir.path(), "writer", topic, unique_name("wt_group"), db.uri(), options);
  ASSERT_TRUE(eventually([&] { return counts(db).rows == kMessages && counts(db).dead_letters == 2; }, 120s))
      << writer.log();
  EXPECT_EQ(writer.stop(), 0) << writer.log();

  pqxx::connection conn(db.uri());
  pqxx::nontransaction nt(conn);
  const auto rows = nt.exec(
      "SELECT target, url, scheduled_at, started_at, http_response_time, http_status, regexp_match, ok, error, "
      "error_detail FROM check_results ORDER BY scheduled_at");
  ASSERT_EQ(rows.size(), static_cast<std::size_t>(kMessages));
  nt.exec("SET TIME ZONE 'UTC'");
  const auto utc_rows = nt.exec(
      "SELECT target, url, to_char(scheduled_at, 'YYYY-MM-DD HH24:MI:SS.MS') || '+00', "
      "to_char(started_at, 'YYYY-MM-DD HH24:MI:SS.MS') || '+00', http_response_time, http_status, regexp_match, ok, "
      "error, error_detail FROM check_results ORDER BY scheduled_at");
  std::sort(sent.begin(), sent.end(), [](const auto& a, const auto& b) { return a.scheduled_at < b.scheduled_at; });
  for (int i = 0; i < kMessages; ++i) {
    const auto& r = sent[static_cast<std::size_t>(i)];
    const auto row = utc_rows[i];
    SCOPED_TRACE("message " + std::to_string(i));
    EXPECT_EQ(row[0].as<std::string>(), r.target);
    EXPECT_EQ(row[1].as<std::string>(), r.url);
    EXPECT_EQ(row[2].as<std::string>(), format_pg_timestamp(r.scheduled_at));
    EXPECT_EQ(row[3].as<std::string>(), format_pg_timestamp(r.started_at));
    EXPECT_EQ(opt_text(row[4]), expected_real(r.http_response_time));
    EXPECT_EQ(opt_text(row[5]), r.http_status ? std::to_string(*r.http_status) : "NULL");
    EXPECT_EQ(opt_text(row[6]), r.regexp_match ? (*r.regexp_match ? "t" : "f") : "NULL");
    EXPECT_EQ(row[7].as<std::string>(), r.ok ? "t" : "f");
    EXPECT_EQ(opt_text(row[8]), r.error == ErrorClass::none ? "NULL" : std::string(to_string(r.error)));
    EXPECT_EQ(opt_text(row[9]), r.error_detail.empty() ? "NULL" : r.error_detail);
  }
  // The columns beyond the view's are stored too.
  EXPECT_EQ(nt.exec("SELECT count(*) FROM checks WHERE peer IS NOT NULL AND peer_port = 443 AND "
                    "tls_cert_not_after IS NOT NULL AND body_bytes > 0")[0][0].as<int>(),
            std::count_if(sent.begin(), sent.end(), [](const auto& r) { return !r.peer.empty(); }));
  EXPECT_EQ(nt.exec("SELECT count(*) FROM targets")[0][0].as<int>(), 7);
  EXPECT_EQ(nt.exec("SELECT count(*) FROM checks_default")[0][0].as<int>(), 0) << "today has a partition";

  // Dead letters keep the raw bytes and say why.
  const auto dl = nt.exec("SELECT key, value, reason FROM dead_letters ORDER BY key");
  ASSERT_EQ(dl.size(), 2u);
  EXPECT_EQ(pqxx::binarystring(dl[0][0]).str(), "broken");
  EXPECT_EQ(pqxx::binarystring(dl[0][1]).str(), "{\"schema_version\":1,\"target\":");
  EXPECT_NE(dl[0][2].as<std::string>(), "");
  EXPECT_EQ(pqxx::binarystring(dl[1][0]).str(), "tomb");
  EXPECT_TRUE(dl[1][1].is_null());

  // The offsets stored cover every message, once.
  EXPECT_EQ(nt.exec("SELECT sum(next_offset) FROM ingest_offsets")[0][0].as<int>(), kMessages + 2);
}

// make_check(from) to make_check(to - 1) on `topic`, delivered.
void produce_checks(Producer& producer, const std::string& topic, int from, int to) {
  for (int i = from; i < to; ++i) producer.produce(topic, std::nullopt, encode_check_result(make_check(i)));
  producer.flush();
}

// A writer in `group` that runs until check_results holds `rows` rows, then stops cleanly.
void write_until(const TempDir& dir, const std::string& topic, const std::string& group, const TestDatabase& db,
                 int rows) {
  Writer writer(dir.path(), "first", topic, group, db.uri());
  ASSERT_TRUE(eventually([&] { return counts(db).rows == rows; }, 120s)) << writer.log();
  EXPECT_EQ(writer.stop(), 0) << writer.log();
}

// Kafka's retention overtaking a stopped writer (operations.md, "Retention"): the messages before
// the log's new start are gone (here deleted with the admin API's DeleteRecords, which moves the
// log start offset as retention does). The restarted writer logs the gap, counts it in
// offset_gaps_total, and writes what Kafka still holds, once.
TEST(WriterWithKafkaAndPostgres, RetentionOvertakingAStoppedWriterIsLoggedAndCounted) {
  TestDatabase db;
  TempDir dir;
  const TestTopic topic_guard("wt_topic");
  const auto& topic = topic_guard.name();
  const auto group = unique_name("wt_group");
  Producer producer;
  producer.create_topic(topic, 1);
  produce_checks(producer, topic, 0, 50);
  ASSERT_NO_FATAL_FAILURE(write_until(dir, topic, group, db, 50));
  produce_checks(producer, topic, 50, 100);
  producer.delete_records_before(topic, 0, 90);  // offsets 50-89 are gone before the writer read them

  WriterOptions options;
  options.metrics_port = webmon::test::free_port();
  Writer writer(dir.path(), "second", topic, group, db.uri(), options);
  ASSERT_TRUE(eventually([&] { return counts(db).rows == 60; }, 120s)) << writer.log();
  EXPECT_TRUE(eventually(
      [&] { return webmon::test::scrape_metric(options.metrics_port, "webmon_writer_offset_gaps_total") == 1.0; }, 30s))
      << writer.log();
  EXPECT_NE(writer.log().find("partition 0: expected offset 50, got 90"), std::string::npos) << writer.log();
  EXPECT_EQ(writer.stop(), 0) << writer.log();
  EXPECT_EQ(counts(db).rows, 60);
  EXPECT_EQ(db.scalar("SELECT sum(next_offset) FROM ingest_offsets"), "100");
}

// Messages 50..99 after the topic grew to two partitions: 50..79 to the new partition 1, the
// rest to partition 0, by a producer made afterwards (which knows of partition 1).
void produce_after_growth(const std::string& topic) {
  Producer after;
  for (int i = 50; i < 100; ++i) {
    after.produce(topic, std::nullopt, encode_check_result(make_check(i)), true, i < 80 ? 1 : 0);
  }
  after.flush();
}

void expect_all_once_after_growth(const TestDatabase& db) {
  const auto c = counts(db);
  EXPECT_EQ(c.rows, 100);
  EXPECT_EQ(c.duplicates, 0);
  EXPECT_EQ(db.scalar("SELECT string_agg(\"partition\" || ':' || next_offset, ',' ORDER BY \"partition\") "
                      "FROM ingest_offsets"),
            "0:70,1:30");
}

// operations.md ("Scaling"): to go beyond the topic's partition count, add partitions and start
// more writers. The messages produced to a new partition before any writer read it are all
// written (read from its earliest offset), once, beside the old partition's.
TEST(WriterWithKafkaAndPostgres, PartitionsAddedToTheTopicAreReadFromTheirEarliestOffset) {
  TestDatabase db;
  TempDir dir;
  const TestTopic topic_guard("wt_topic");
  const auto& topic = topic_guard.name();
  const auto group = unique_name("wt_group");
  Producer producer;
  producer.create_topic(topic, 1);
  produce_checks(producer, topic, 0, 50);
  Writer first(dir.path(), "first", topic, group, db.uri());
  ASSERT_TRUE(eventually([&] { return counts(db).rows == 50; }, 120s)) << first.log();
  producer.add_partitions(topic, 2);
  produce_after_growth(topic);
  WriterOptions options;
  options.instance_id = "second-writer";  // the first has the default, the host name
  Writer second(dir.path(), "second", topic, group, db.uri(), options);
  ASSERT_TRUE(eventually([&] { return counts(db).rows == 100; }, 120s)) << first.log() << second.log();
  EXPECT_EQ(second.stop(), 0) << second.log();
  EXPECT_EQ(first.stop(), 0) << first.log();
  expect_all_once_after_growth(db);
}

// operations.md ("Scaling"): a group that gains partitions, with no member joining or leaving,
// reads them: one writer runs all along, the topic grows, and the new partition's messages are
// all written, once, within seconds (not librdkafka's 5-minute metadata refresh).
TEST(WriterWithKafkaAndPostgres, ARunningWriterReadsPartitionsAddedToItsTopic) {
  TestDatabase db;
  TempDir dir;
  const TestTopic topic_guard("wt_topic");
  const auto& topic = topic_guard.name();
  const auto group = unique_name("wt_group");
  Producer producer;
  producer.create_topic(topic, 1);
  produce_checks(producer, topic, 0, 50);
  Writer writer(dir.path(), "writer", topic, group, db.uri());
  ASSERT_TRUE(eventually([&] { return counts(db).rows == 50; }, 120s)) << writer.log();
  producer.add_partitions(topic, 2);
  produce_after_growth(topic);
  ASSERT_TRUE(eventually([&] { return counts(db).rows == 100; }, 90s)) << writer.log();
  EXPECT_EQ(writer.stop(), 0) << writer.log();
  expect_all_once_after_growth(db);
}

// operations.md ("Scaling"): a writer stopped, partitions added, the writer started again with
// the same writer.instance_id (static membership). Kafka hands a static member that comes back
// within its session its old assignment, without a rebalance; the writer sees that the topic
// has a partition no member holds, leaves and joins again, and writes the new partition's
// messages, once, beside the old partition's from where ingest_offsets says.
TEST(WriterWithKafkaAndPostgres, AWriterRestartedWithItsInstanceIdAfterPartitionsWereAddedReadsThem) {
  TestDatabase db;
  TempDir dir;
  const TestTopic topic_guard("wt_topic");
  const auto& topic = topic_guard.name();
  const auto group = unique_name("wt_group");
  Producer producer;
  producer.create_topic(topic, 1);
  produce_checks(producer, topic, 0, 50);
  WriterOptions options;
  options.instance_id = "the-writer";
  {
    Writer first(dir.path(), "first", topic, group, db.uri(), options);
    ASSERT_TRUE(eventually([&] { return counts(db).rows == 50; }, 120s)) << first.log();
    EXPECT_EQ(first.stop(), 0) << first.log();
  }
  producer.add_partitions(topic, 2);
  produce_after_growth(topic);
  Writer again(dir.path(), "again", topic, group, db.uri(), options);
  ASSERT_TRUE(eventually([&] { return counts(db).rows == 100; }, 90s)) << again.log();
  EXPECT_EQ(again.stop(), 0) << again.log();
  expect_all_once_after_growth(db);
  // Which way it went: handed the old assignment (one partition; the case this test is for) and
  // then rejoined, or, on a machine slow enough that the stopped member's 10 s session expired
  // before the restart joined, assigned both at once by a rebalance.
  const auto log = again.log();
  const bool old_assignment = log.find("assigned 1 partition(s)") < log.find("assigned 2 partition(s)");
  std::cout << "restarted writer: " << (old_assignment ? "handed its old assignment, then rejoined" : "assigned both at once")
            << std::endl;
  if (old_assignment) {
    EXPECT_NE(log.find("joining again so that all are assigned"), std::string::npos) << log;
  }
}

TEST(WriterWithKafkaAndPostgres, RestartResumesFromStoredOffsets) {
  TestDatabase db;
  TempDir dir;
  const TestTopic topic_guard("wt_topic");
  const auto& topic = topic_guard.name();
  const auto group = unique_name("wt_group");
  Producer producer;
  producer.create_topic(topic, 2);
  produce_checks(producer, topic, 0, 300);
  ASSERT_NO_FATAL_FAILURE(write_until(dir, topic, group, db, 300));
  produce_checks(producer, topic, 300, 500);
  Writer writer(dir.path(), "second", topic, group, db.uri());
  ASSERT_TRUE(eventually([&] { return counts(db).rows >= 500; }, 120s)) << writer.log();
  EXPECT_EQ(writer.stop(), 0) << writer.log();
  const auto c = counts(db);
  EXPECT_EQ(c.rows, 500);
  EXPECT_EQ(c.duplicates, 0);
}

TEST(WriterWithPostgres, MigrationsTwiceAreHarmless) {
  TestDatabase db;
  const auto first = apply_migrations(db.uri());
  EXPECT_EQ(first.applied.size(), embedded_migrations().size());
  EXPECT_EQ(first.already_applied, 0u);
  const auto second = apply_migrations(db.uri());
  EXPECT_TRUE(second.applied.empty());
  EXPECT_EQ(second.already_applied, embedded_migrations().size());
  EXPECT_EQ(db.scalar("SELECT count(*) FROM schema_migrations"), std::to_string(embedded_migrations().size()));
  EXPECT_EQ(db.scalar("SELECT checksum FROM schema_migrations WHERE version = 1"),
            embedded_migrations().front().checksum);
}

TEST(WriterWithKafkaAndPostgres, BinaryAppliesSchemaOnceAcrossRuns) {
  TestDatabase db;
  TempDir dir;
  const TestTopic topic_guard("wt_topic");
  const auto& topic = topic_guard.name();
  for (const char* run : {"run1", "run2"}) {
    Writer writer(dir.path(), run, topic, unique_name("wt_group"), db.uri());
    ASSERT_TRUE(eventually([&] { return writer.log().find("migration(s) applied now") != std::string::npos; }, 60s))
        << writer.log();
    EXPECT_EQ(writer.stop(), 0) << writer.log();
  }
  std::ifstream second(dir.path() / "run2.log");
  std::stringstream text;
  text << second.rdbuf();
  EXPECT_NE(text.str().find("0 migration(s) applied now"), std::string::npos) << text.str();
  EXPECT_EQ(db.scalar("SELECT count(*) FROM schema_migrations"), std::to_string(embedded_migrations().size()));
}

TEST(WriterWithKafkaAndPostgres, SigtermJustAfterStartStopsCleanlyEveryTime) {
  // rd_kafka_consumer_close() can serve a last rebalance while the consumer is leaving its group,
  // when librdkafka names no rebalance protocol: the writer crashed on it (exit 139) about one
  // time in three when stopped within its first 50 ms. And an assignment that arrived just before
  // the close, taken from inside it, made the close wait forever (about one stop in 70 on a loaded
  // machine); the close's deadline would end such a stop, and says so in the log.
  TestDatabase db;
  TempDir dir;
  const TestTopic topic("wt_topic");
  const auto group = unique_name("wt_group");
  for (int i = 0; i < 10; ++i) {
    Writer writer(dir.path(), "run" + std::to_string(i), topic.name(), group, db.uri());
    ASSERT_TRUE(eventually([&] { return writer.log().find("migration(s) applied now") != std::string::npos; }, 60s))
        << writer.log();
    EXPECT_EQ(writer.stop(), 0) << "run " << i << "\n" << writer.log();
    EXPECT_EQ(writer.log().find("close has not returned"), std::string::npos) << "run " << i << "\n" << writer.log();
  }
}

TEST(WriterWithKafkaAndPostgres, ChangedAppliedMigrationIsRefused) {
  TestDatabase db;
  TempDir dir;
  apply_migrations(db.uri());
  // The same migrations, but 001 edited after it was applied.
  for (const auto& m : embedded_migrations()) {
    dir.write("sql/" + m.name, m.version == 1 ? m.sql + "\n-- edited later\n" : m.sql);
  }
  const TestTopic topic("wt_topic");
  Writer writer(dir.path(), "writer", topic.name(), unique_name("wt_group"), db.uri(), {},
                {"WEBMON_MIGRATIONS_DIR=" + (dir.path() / "sql").string()});
  const auto status = writer.process().wait_for_exit(60s);
  ASSERT_TRUE(status) << writer.log();
  EXPECT_EQ(*status, 1);
  EXPECT_NE(writer.log().find("001_init.sql was changed after it was applied"), std::string::npos) << writer.log();
  // The library refuses the same way.
  pqxx::connection conn(db.uri());
  EXPECT_THROW(apply_migrations(conn, load_migrations(dir.path() / "sql")), MigrationError);
}

// The heart of exactly once, at the sink: a batch commits only from the offset PostgreSQL holds.
TEST(WriterWithPostgres, FencedOffsetUpdateRefusesStaleWriters) {
  TestDatabase db;
  apply_migrations(db.uri());
  auto batch = [](std::optional<std::int64_t> expected, std::int64_t next, std::int64_t first_message) {
    Batch b;
    b.topic = "topic";
    b.partitions[0] = PartitionSpan{expected, next, 2};
    b.rows = {make_check(first_message), make_check(first_message + 1)};
    return b;
  };
  PgSink a(db.uri(), "group");
  PgSink b(db.uri(), "group");
  PgSink other_group(db.uri(), "another-group");
  a.connect();
  b.connect();
  other_group.connect();
  EXPECT_EQ(a.read_offsets("topic", {0, 1}).at(0), std::nullopt);

  EXPECT_EQ(a.write(batch(std::nullopt, 10, 0)), PgSink::Result::committed);
  EXPECT_EQ(b.write(batch(std::nullopt, 12, 0)), PgSink::Result::fenced) << "b also thought nothing was stored";
  EXPECT_EQ(b.read_offsets("topic", {0, 1}).at(0), 10);
  EXPECT_EQ(b.read_offsets("topic", {0, 1}).at(1), std::nullopt);
  EXPECT_EQ(b.write(batch(10, 20, 2)), PgSink::Result::committed);
  EXPECT_EQ(a.write(batch(10, 15, 2)), PgSink::Result::fenced) << "a is a zombie: b moved on";
  EXPECT_EQ(other_group.write(batch(std::nullopt, 5, 0)), PgSink::Result::committed) << "groups are apart";

  EXPECT_EQ(db.scalar("SELECT count(*) FROM checks"), "6");
  EXPECT_EQ(db.scalar("SELECT next_offset FROM ingest_offsets WHERE group_id = 'group'"), "20");
  EXPECT_EQ(db.scalar("SELECT count(*) - count(DISTINCT (target_id, scheduled_at)) FROM checks"), "2")
      << "only the other group's copy of messages 0 and 1 repeats";
}

TEST(WriterWithPostgres, IndexesServeOneTargetOverTimeAndAllTargetsLastHour) {
  TestDatabase db;
  apply_migrations(db.uri());
  pqxx::connection conn(db.uri());
  pqxx::nontransaction nt(conn);
  nt.exec("SELECT webmon_ensure_checks_partition(d::date) FROM generate_series(current_date - 2, current_date, "
          "interval '1 day') AS d");
  nt.exec("INSERT INTO targets (name, url, first_seen, last_seen) SELECT 't' || i, 'http://t' || i, now(), now() "
          "FROM generate_series(1, 100) AS i");
  nt.exec("INSERT INTO checkers (name) VALUES ('c')");
  nt.exec("INSERT INTO checks (scheduled_at, started_at, target_id, checker_id, total_time, body_bytes, redirects, ok) "
          "SELECT now() - i * interval '1 second', now(), 1 + i % 100, 1, 0.1, 10, 0, true "
          "FROM generate_series(0, 150000) AS i");
  nt.exec("ANALYZE checks");
  auto plan = [&](const std::string& query) {
    std::string text;
    for (const auto& row : nt.exec("EXPLAIN " + query)) text += row[0].as<std::string>() + "\n";
    return text;
  };
  const auto one_target = plan(
      "SELECT * FROM check_results WHERE target = 't7' AND scheduled_at >= now() - interval '6 hours'");
  EXPECT_NE(one_target.find("target_id_scheduled_at_idx"), std::string::npos) << one_target;
  // An hour of a day whose partition is full (yesterday, 12:00-13:00 UTC) is read through the BRIN
  // index, its day never read whole. (Not today's last hour: in the first hours after midnight UTC
  // today's partition holds little more than that hour, and reading it whole is then the right plan.)
  const std::string noon = "((now() AT TIME ZONE 'UTC')::date - 1 + time '12:00') AT TIME ZONE 'UTC'";
  const auto last_hour = plan("SELECT * FROM check_results WHERE scheduled_at >= " + noon +
                              " AND scheduled_at < " + noon + " + interval '1 hour'");
  EXPECT_NE(last_hour.find("_scheduled_at_idx"), std::string::npos) << "the BRIN index\n" << last_hour;
  const auto cut_day = db.scalar("SELECT to_char((now() AT TIME ZONE 'UTC')::date - 1, '\"checks_\"YYYYMMDD')");
  EXPECT_EQ(last_hour.find("Seq Scan on " + cut_day), std::string::npos) << "no day read whole\n" << last_hour;
  // Only the partitions that can hold the last hour are read (pruned at run time with now()).
  const auto pruned = plan("SELECT count(*) FROM checks WHERE scheduled_at >= '" +
                           db.scalar("SELECT date_trunc('hour', now())::text") + "'");
  EXPECT_EQ(pruned.find(db.scalar("SELECT to_char(current_date - 2, '\"checks_\"YYYYMMDD')")), std::string::npos)
      << pruned;
}

TEST(WriterWithKafkaAndPostgres, RetentionDropsWholeOldPartitions) {
  TestDatabase db;
  TempDir dir;
  apply_migrations(db.uri());
  db.exec("SELECT webmon_ensure_checks_partition(current_date - 30)");
  db.exec("SELECT webmon_ensure_checks_partition(current_date - 3)");
  ASSERT_EQ(db.scalar("SELECT count(*) FROM pg_inherits WHERE inhparent = 'checks'::regclass"), "3");
  // Rows of days without a partition of their own land in checks_default: one a year old, one a
  // month ahead. And two dead letters, one received 20 days ago.
  db.exec("INSERT INTO targets (name, url, first_seen, last_seen) VALUES ('r', 'http://r/', now(), now())");
  db.exec("INSERT INTO checkers (name) VALUES ('retention-test')");
  for (const char* when : {"now() - interval '365 days'", "now() + interval '30 days'"}) {
    db.exec(std::string("INSERT INTO checks (scheduled_at, started_at, target_id, checker_id, total_time, body_bytes, "
                        "redirects, ok) SELECT ") + when + ", " + when + ", t.id, c.id, 0.1, 0, 0, true FROM targets t, checkers c");
  }
  db.exec("INSERT INTO dead_letters (topic, \"partition\", \"offset\", received_at, reason) VALUES "
          "('t', 0, 1, now() - interval '20 days', 'old'), ('t', 0, 2, now(), 'new')");
  ASSERT_EQ(db.scalar("SELECT count(*) FROM checks_default"), "2");
  WriterOptions options;
  options.retention_days = 10;
  const TestTopic topic("wt_topic");
  Writer writer(dir.path(), "writer", topic.name(), unique_name("wt_group"), db.uri(), options);
  ASSERT_TRUE(eventually([&] {
    return db.scalar("SELECT count(*) FROM pg_class WHERE relname = to_char(current_date - 30, '\"checks_\"YYYYMMDD')") ==
           "0";
  }, 60s)) << writer.log();
  EXPECT_EQ(db.scalar("SELECT count(*) FROM pg_class WHERE relname = to_char(current_date - 3, '\"checks_\"YYYYMMDD')"),
            "1");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM pg_class WHERE relname = to_char(current_date + 2, '\"checks_\"YYYYMMDD')"),
            "1")
      << "partitions are created ahead";
  // The default partition and dead_letters lose only their rows from before the cutoff.
  EXPECT_EQ(db.scalar("SELECT count(*) FROM checks_default WHERE scheduled_at < now() - interval '10 days'"), "0");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM checks_default WHERE scheduled_at > now()"), "1");
  EXPECT_EQ(db.scalar("SELECT string_agg(reason, ',') FROM dead_letters"), "new");
  EXPECT_EQ(writer.stop(), 0) << writer.log();
}

// The daily partition of the UTC day `days_back` days before today: checks_YYYYMMDD.
std::string day_partition(const TestDatabase& db, int days_back) {
  return db.scalar("SELECT to_char((now() AT TIME ZONE 'UTC')::date - " + std::to_string(days_back) +
                   ", '\"checks_\"YYYYMMDD')");
}

bool table_exists(const TestDatabase& db, const std::string& relname) {
  return db.scalar("SELECT to_regclass('" + relname + "') IS NOT NULL") == "t";
}

// By hand, as operations.md ("Retention") shows: SELECT webmon_drop_checks_before(cutoff) drops
// the daily partitions wholly before the cutoff, with their rows, returns how many it dropped,
// and leaves the cutoff's day and later ones as they were.
TEST(WriterWithPostgres, DropChecksBeforeByHandReturnsThePartitionsDroppedAndKeepsLaterOnes) {
  TestDatabase db;
  apply_migrations(db.uri());
  const std::string today = "(now() AT TIME ZONE 'UTC')::date";
  const std::vector<int> days_back = {100, 95, 91, 90, 89, 0};  // the cutoff is 90 days back
  db.exec("INSERT INTO targets (name, url, first_seen, last_seen) VALUES ('d', 'http://d/', now(), now())");
  db.exec("INSERT INTO checkers (name) VALUES ('drop-test')");
  for (const int back : days_back) {
    db.exec("SELECT webmon_ensure_checks_partition(" + today + " - " + std::to_string(back) + ")");
    // Two rows a day, at noon UTC, routed by `checks` to the day's partition.
    const std::string when = "((" + today + " - " + std::to_string(back) + ")::timestamp + interval '12 hours' + "
                             "k * interval '1 second') AT TIME ZONE 'UTC'";
    db.exec("INSERT INTO checks (scheduled_at, started_at, target_id, checker_id, total_time, body_bytes, redirects, "
            "ok) SELECT " + when + ", " + when + ", t.id, c.id, 0.1, 0, 0, true FROM targets t, checkers c, "
            "generate_series(1, 2) AS k");
    const auto name = day_partition(db, back);
    ASSERT_EQ(db.scalar("SELECT count(*) FROM ONLY " + name), "2") << name;
  }
  ASSERT_EQ(db.scalar("SELECT count(*) FROM checks_default"), "0");

  EXPECT_EQ(db.scalar("SELECT webmon_drop_checks_before(" + today + " - 90)"), "3");
  for (const int back : days_back) {
    const auto name = day_partition(db, back);
    if (back > 90) {
      EXPECT_FALSE(table_exists(db, name)) << name << " is wholly before the cutoff";
    } else {
      EXPECT_TRUE(table_exists(db, name)) << name;
      if (table_exists(db, name)) {
        EXPECT_EQ(db.scalar("SELECT count(*) FROM ONLY " + name), "2");
      }
    }
  }
  // Only the rows of the three days kept, through the view users read.
  EXPECT_EQ(db.scalar("SELECT count(*) FROM check_results"), "6");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM check_results WHERE scheduled_at < (" + today +
                      " - 90)::timestamp AT TIME ZONE 'UTC'"),
            "0");
  // Again: nothing left to drop.
  EXPECT_EQ(db.scalar("SELECT webmon_drop_checks_before(" + today + " - 90)"), "0");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM check_results"), "6");
}

// A check of `days_back` days ago (number i as make_check makes it, moved back whole days).
CheckResult check_days_ago(std::int64_t i, int days_back) {
  CheckResult r = make_check(i, 1);
  r.scheduled_at -= std::chrono::days(days_back);
  r.started_at -= std::chrono::days(days_back);
  return r;
}

// storage.md: the writer makes the partition of any day of the last month (or of retention_days)
// that a batch holds; an older row lands in checks_default, and when its day's partition is made
// later (here by a writer whose retention_days reaches that day) the row moves into it, once.
TEST(WriterWithKafkaAndPostgres, PartitionsAreMadeForTheDaysABatchHoldsAndLaterTakeTheirRowsFromTheDefault) {
  TestDatabase db;
  TempDir dir;
  const TestTopic topic_guard("wt_topic");
  const auto& topic = topic_guard.name();
  const auto group = unique_name("wt_group");
  Producer producer;
  producer.create_topic(topic, 1);
  for (const auto& [i, back] : std::vector<std::pair<int, int>>{{0, 0}, {1, 20}, {2, 40}}) {
    producer.produce(topic, std::nullopt, encode_check_result(check_days_ago(i, back)));
  }
  producer.flush();
  const auto rows_in = [&](const std::string& relname) {
    if (!table_exists(db, relname)) return std::string("no such table");
    return db.scalar("SELECT count(*) FROM ONLY " + relname);
  };
  {
    Writer writer(dir.path(), "writer", topic, group, db.uri());
    ASSERT_TRUE(eventually([&] { return counts(db).rows == 3; }, 120s)) << writer.log();
    EXPECT_EQ(writer.stop(), 0) << writer.log();
  }
  EXPECT_EQ(rows_in(day_partition(db, 0)), "1");
  EXPECT_EQ(rows_in(day_partition(db, 20)), "1") << "20 days back is within the last month";
  EXPECT_EQ(rows_in(day_partition(db, 40)), "no such table") << "40 days back is not";
  EXPECT_EQ(rows_in("checks_default"), "1");

  producer.produce(topic, std::nullopt, encode_check_result(check_days_ago(3, 40)));
  producer.flush();
  {
    WriterOptions options;
    options.retention_days = 60;  // its batches' days reach 60 days back
    Writer writer(dir.path(), "writer2", topic, group, db.uri(), options);
    ASSERT_TRUE(eventually([&] { return counts(db).rows == 4; }, 120s)) << writer.log();
    EXPECT_EQ(writer.stop(), 0) << writer.log();
  }
  EXPECT_EQ(rows_in(day_partition(db, 40)), "2") << "the new row and the one moved out of the default partition";
  EXPECT_EQ(rows_in("checks_default"), "0");
  const auto c = counts(db);
  EXPECT_EQ(c.rows, 4);
  EXPECT_EQ(c.duplicates, 0);
  EXPECT_EQ(db.scalar("SELECT count(*) FROM check_results WHERE scheduled_at = '" +
                      format_pg_timestamp(check_days_ago(2, 40).scheduled_at) + "'"),
            "1");
}

// Several writers started at once on an empty database (operations.md, "Schema upgrades"): they
// take turns on the advisory lock, so each migration file is applied by one of them, once.
TEST(WriterWithKafkaAndPostgres, SeveralWritersStartingAtOnceApplyEachMigrationOnce) {
  TestDatabase db;
  TempDir dir;
  const TestTopic topic("wt_topic");
  const auto group = unique_name("wt_group");
  std::vector<std::unique_ptr<Writer>> writers;
  for (int i = 0; i < 3; ++i) {
    WriterOptions options;
    options.instance_id = "writer-" + std::to_string(i);  // one id each, as operations.md says
    writers.push_back(std::make_unique<Writer>(dir.path(), "writer" + std::to_string(i), topic.name(), group,
                                               db.uri(), options));
  }
  for (auto& w : writers) {
    ASSERT_TRUE(eventually([&] { return w->log().find("migration(s) applied now") != std::string::npos; }, 90s))
        << w->log();
  }
  std::string all;
  for (auto& w : writers) {
    EXPECT_EQ(w->stop(), 0) << w->log();
    all += w->log();
  }
  const auto& migrations = embedded_migrations();
  std::string names;
  for (const auto& m : migrations) {
    EXPECT_EQ(webmon::test::occurrences(all, "applied migration " + m.name), 1u) << m.name << "\n" << all;
    names += (names.empty() ? "" : ",") + m.name;
  }
  // The lock is held for a whole run: one writer applied them all, the others found them there.
  const auto n = std::to_string(migrations.size());
  EXPECT_EQ(webmon::test::occurrences(all, "schema: " + n + " migration(s) applied now, 0 already"), 1u) << all;
  EXPECT_EQ(webmon::test::occurrences(all, "schema: 0 migration(s) applied now, " + n + " already"), 2u) << all;
  EXPECT_EQ(db.scalar("SELECT count(*) FROM schema_migrations"), n);
  EXPECT_EQ(db.scalar("SELECT string_agg(name, ',' ORDER BY version) FROM schema_migrations"), names);
  // The last file's objects are there: the schema is complete.
  EXPECT_EQ(db.scalar("SELECT to_regclass('check_rollups_weekly') IS NOT NULL AND "
                      "to_regprocedure('webmon_rollup_hour(timestamptz, boolean)') IS NOT NULL AND "
                      "to_regprocedure('webmon_incidents_from_checks(integer, integer, timestamptz, text)') IS NOT NULL"),
            "t");
}

// What an operator's curl sees: {status code, body}.
std::pair<std::string, std::string> http_get(unsigned short port, const std::string& path) {
  const auto [rc, out] = webmon::test::run_command(
      {"curl", "-s", "-m", "5", "-w", "\n%{http_code}", "http://127.0.0.1:" + std::to_string(port) + path}, 10s);
  const auto nl = out.rfind('\n');
  if (nl == std::string::npos) return {out, ""};
  return {out.substr(nl + 1), out.substr(0, nl)};
}

TEST(WriterWithKafkaAndPostgres, MetricsCountRowsAndReadinessFollowsPostgres) {
  TestDatabase db;
  TempDir dir;
  const TestTopic topic_guard("wt_topic");
  const auto& topic = topic_guard.name();
  Producer producer;
  producer.create_topic(topic, 2);
  for (int i = 0; i < 250; ++i) producer.produce(topic, std::nullopt, encode_check_result(make_check(i)));
  producer.produce(topic, std::nullopt, std::string("garbage"));
  producer.flush();

  WriterOptions options;
  options.metrics_port = webmon::test::free_port();
  Writer writer(dir.path(), "writer", topic, unique_name("wt_group"), db.uri(), options);
  ASSERT_TRUE(eventually([&] { return counts(db).rows == 250; }, 120s)) << writer.log();
  std::string metrics;
  EXPECT_TRUE(eventually([&] {
    metrics = http_get(options.metrics_port, "/metrics").second;
    return metrics.find("webmon_writer_rows_written_total 250") != std::string::npos;
  }, 30s)) << metrics;
  EXPECT_NE(metrics.find("webmon_writer_dead_letters_total 1"), std::string::npos) << metrics;
  // Counted, not merely declared (every series is there from the start, at 0).
  EXPECT_GE(webmon::test::metric_value(metrics, "webmon_writer_batches_total{result=\"committed\"}").value_or(0), 1)
      << metrics;
  EXPECT_GE(webmon::test::metric_value(metrics, "webmon_writer_batch_duration_seconds_count").value_or(0), 1)
      << metrics;
  EXPECT_EQ(webmon::test::metric_value(metrics, "webmon_writer_postgres_up"), std::optional<double>(1)) << metrics;
  EXPECT_NE(metrics.find("webmon_writer_consumer_lag{partition=\"0\",topic=\"" + topic + "\"} 0"), std::string::npos)
      << metrics;
  EXPECT_EQ(http_get(options.metrics_port, "/readyz").first, "200");
  EXPECT_EQ(writer.stop(), 0) << writer.log();
}

TEST(WriterWithKafkaAndPostgres, BatchThatFailsWithATransientErrorIsRetriedWithBackoffNeverSkipped) {
  TestDatabase db;
  TempDir dir;
  apply_migrations(db.uri());
  // Some rows fail with an error retrying may cure (SQLSTATE 40001, serialization failure), as
  // long as the trigger is there: their batch cannot commit, and nothing may be dead-lettered.
  db.exec(
      "CREATE FUNCTION test_no_dns_errors() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
      "IF NEW.error = 1 THEN RAISE EXCEPTION 'no_dns_errors' USING ERRCODE = 'serialization_failure'; END IF; "
      "RETURN NEW; END $$");
  db.exec("CREATE TRIGGER no_dns_errors BEFORE INSERT ON checks FOR EACH ROW EXECUTE FUNCTION test_no_dns_errors()");
  const TestTopic topic_guard("wt_topic");
  const auto& topic = topic_guard.name();
  Producer producer;
  producer.create_topic(topic, 1);
  for (int i = 0; i < 100; ++i) producer.produce(topic, std::nullopt, encode_check_result(make_check(i)));
  producer.flush();
  WriterOptions options;
  options.metrics_port = webmon::test::free_port();
  Writer writer(dir.path(), "writer", topic, unique_name("wt_group"), db.uri(), options);
  ASSERT_TRUE(eventually([&] { return writer.log().find("no_dns_errors") != std::string::npos; }, 60s))
      << writer.log();
  const auto failed = [&] {
    return webmon::test::scrape_metric(options.metrics_port, "webmon_writer_batches_total{result=\"failed\"}").value_or(-1);
  };
  // The waits double from 100 ms (0.1, 0.2, 0.4, 0.8, 1.6, 3.2 s, then 5 s each): five failures
  // come within about 1.5 s, and after them at most two more fit in the next 6 s. A retry at a
  // fixed pace (300 ms, say) would fail about 20 more times. A slow machine only makes it fewer.
  ASSERT_TRUE(eventually([&] { return failed() >= 5; }, 60s)) << writer.log();
  const auto after_five = failed();
  std::this_thread::sleep_for(6s);
  const auto six_seconds_later = failed();
  EXPECT_LE(six_seconds_later - after_five, 2) << "retries back off, doubling: " << after_five << " then "
                                               << six_seconds_later << " failures";
  // ... and never stop: the wait is capped (5 s), so the next try comes.
  EXPECT_TRUE(eventually([&] { return failed() > six_seconds_later; }, 30s)) << writer.log();
  EXPECT_EQ(counts(db).rows, 0) << "nothing skipped, nothing half-written";
  EXPECT_TRUE(writer.process().running());

  db.exec("DROP TRIGGER no_dns_errors ON checks");
  ASSERT_TRUE(eventually([&] { return counts(db).rows == 100; }, 60s)) << writer.log();
  EXPECT_EQ(counts(db).duplicates, 0);
  EXPECT_EQ(counts(db).dead_letters, 0);
  EXPECT_EQ(writer.stop(), 0) << writer.log();
}

TEST(WriterWithKafka, NotReadyWhilePostgresIsUnreachableAndStillStopsCleanly) {
  TempDir dir;
  // Nothing listens there: the writer keeps retrying with backoff.
  const auto nowhere = "postgresql://webmon:webmon@127.0.0.1:" + std::to_string(webmon::test::free_port()) + "/none";
  WriterOptions options;
  options.metrics_port = webmon::test::free_port();
  Writer writer(dir.path(), "writer", unique_name("wt_topic"), unique_name("wt_group"), nowhere, options);
  ASSERT_TRUE(eventually([&] { return http_get(options.metrics_port, "/healthz").first == "200"; }, 60s))
      << writer.log();
  EXPECT_EQ(http_get(options.metrics_port, "/readyz").first, "503");  // answered: not ready (not just "no answer")
  EXPECT_TRUE(eventually([&] { return writer.log().find("retrying") != std::string::npos; }, 30s)) << writer.log();
  // What an alert on `webmon_writer_postgres_up == 0` (docs/operations.md) reads.
  EXPECT_EQ(webmon::test::scrape_metric(options.metrics_port, "webmon_writer_postgres_up"), std::optional<double>(0))
      << writer.log();
  EXPECT_EQ(writer.log().find(":webmon@"), std::string::npos) << "the password is never logged\n" << writer.log();
  EXPECT_EQ(writer.stop(), 0) << writer.log();
}

TEST(WriterWithPostgres, WaitsWhileKafkaIsUnreachableAndStillStopsCleanly) {
  TestDatabase db;
  TempDir dir;
  WriterOptions options;
  options.metrics_port = webmon::test::free_port();
  options.bootstrap = "127.0.0.1:" + std::to_string(webmon::test::free_port());  // nothing listens
  Writer writer(dir.path(), "writer", unique_name("wt_topic"), unique_name("wt_group"), db.uri(), options);
  ASSERT_TRUE(eventually([&] { return db.scalar("SELECT to_regclass('check_results')") == "check_results"; }, 60s))
      << writer.log();
  std::this_thread::sleep_for(2s);
  EXPECT_TRUE(writer.process().running()) << writer.log();
  EXPECT_EQ(http_get(options.metrics_port, "/healthz").first, "200");
  EXPECT_EQ(http_get(options.metrics_port, "/readyz").first, "503");
  EXPECT_EQ(writer.stop(), 0) << writer.log();
}

TEST(WriterWithKafkaAndPostgres, SecondWriterWithTheSameInstanceIdTakesOverAndTheFirstSaysWhyItStops) {
  TestDatabase db;
  TempDir dir;
  const TestTopic topic_guard("wt_topic");
  const auto& topic = topic_guard.name();
  const auto group = unique_name("wt_group");
  Producer producer;
  producer.create_topic(topic, 2);
  WriterOptions options;  // both with the default instance id: the host name
  Writer first(dir.path(), "first", topic, group, db.uri(), options);
  ASSERT_TRUE(eventually([&] { return first.log().find("assigned") != std::string::npos; }, 60s)) << first.log();
  Writer second(dir.path(), "second", topic, group, db.uri(), options);
  const auto status = first.process().wait_for_exit(90s);
  ASSERT_TRUE(status) << first.log();
  EXPECT_EQ(*status, 1) << first.log();
  EXPECT_NE(first.log().find("each writer needs its own instance id"), std::string::npos) << first.log();
  // The one that took its place goes on writing.
  for (int i = 0; i < 300; ++i) producer.produce(topic, std::nullopt, encode_check_result(make_check(i)));
  producer.flush();
  EXPECT_TRUE(eventually([&] { return counts(db).rows == 300; }, 90s)) << second.log();
  EXPECT_EQ(second.stop(), 0) << second.log();
  EXPECT_EQ(counts(db).duplicates, 0);
}

// dns_cached, added to v1 after its first release and to the schema by 002: stored as sent, and
// NULL both for a message of an older checker (no such field) and for a row that was in the
// table before the migration (written by an older writer, with the columns of then).
TEST(WriterWithKafkaAndPostgres, DnsCachedIsStoredAndNullWhereTheMessageOrTheRowPredatesIt) {
  TestDatabase db;
  TempDir dir;
  for (const auto& m : embedded_migrations()) {
    if (m.version == 1) dir.write("sql_001/" + m.name, m.sql);
  }
  {
    pqxx::connection conn(db.uri());
    apply_migrations(conn, load_migrations(dir.path() / "sql_001"));
    pqxx::work tx(conn);
    tx.exec("INSERT INTO targets (name, url, first_seen, last_seen) VALUES ('before', 'http://b/', now(), now())");
    tx.exec("INSERT INTO checkers (name) VALUES ('old-writer')");
    tx.exec(
        "INSERT INTO checks (scheduled_at, started_at, target_id, checker_id, total_time, body_bytes, redirects, ok) "
        "SELECT now(), now(), t.id, c.id, 0.1, 0, 0, true FROM targets t, checkers c");
    tx.commit();
  }
  const TestTopic topic("wt_topic");
  Producer producer;
  producer.create_topic(topic.name(), 1);
  const std::vector<std::pair<std::string, std::optional<bool>>> sent = {
      {"cached", true}, {"looked-up", false}, {"ip-literal", std::nullopt}, {"old-checker", std::nullopt}};
  for (std::size_t i = 0; i < sent.size(); ++i) {
    CheckResult r = make_check(static_cast<std::int64_t>(i), 1);
    r.target = sent[i].first;
    r.dns_cached = sent[i].second;
    std::string value = encode_check_result(r);
    if (r.target == "old-checker") {
      const std::string field = ",\"dns_cached\":null";
      const auto at = value.find(field);
      ASSERT_NE(at, std::string::npos) << value;
      value.erase(at, field.size());
    }
    producer.produce(topic.name(), r.target, value);
  }
  producer.flush();
  Writer writer(dir.path(), "writer", topic.name(), unique_name("wt_group"), db.uri());
  ASSERT_TRUE(eventually([&] { return counts(db).rows == 5; }, 120s)) << writer.log();
  EXPECT_EQ(writer.stop(), 0) << writer.log();
  EXPECT_EQ(counts(db).dead_letters, 0);

  pqxx::connection conn(db.uri());
  pqxx::nontransaction nt(conn);
  std::map<std::string, std::string> stored;
  for (const auto& row : nt.exec("SELECT target, dns_cached FROM check_results")) {
    stored[row[0].as<std::string>()] = opt_text(row[1]);
  }
  const std::map<std::string, std::string> expected = {
      {"before", "NULL"}, {"cached", "t"}, {"looked-up", "f"}, {"ip-literal", "NULL"}, {"old-checker", "NULL"}};
  EXPECT_EQ(stored, expected);
  // The view's released columns stay first, as they were; dns_cached comes after them (and the
  // columns added later after it: location, by 003).
  std::vector<std::string> columns;
  for (const auto& row : nt.exec("SELECT column_name FROM information_schema.columns "
                                 "WHERE table_name = 'check_results' ORDER BY ordinal_position")) {
    columns.push_back(row[0].as<std::string>());
  }
  ASSERT_GE(columns.size(), 11u);
  columns.resize(11);
  EXPECT_EQ(columns, (std::vector<std::string>{"target", "url", "scheduled_at", "started_at", "http_response_time",
                                               "http_status", "regexp_match", "ok", "error", "error_detail",
                                               "dns_cached"}));
}

// location, added to v1 after its first release and to the schema by 003: each name stored once
// in `locations`, its id in the row, the name in check_results; NULL for a message without one
// (no key, null or "") and for a row that was in the table before the migration.
TEST(WriterWithKafkaAndPostgres, LocationsAreStoredAndCheckResultsShowsThem) {
  TestDatabase db;
  TempDir dir;
  for (const auto& m : embedded_migrations()) {
    if (m.version <= 2) dir.write("sql_002/" + m.name, m.sql);
  }
  {
    pqxx::connection conn(db.uri());
    apply_migrations(conn, load_migrations(dir.path() / "sql_002"));
    pqxx::work tx(conn);
    tx.exec("INSERT INTO targets (name, url, first_seen, last_seen) VALUES ('before', 'http://b/', now(), now())");
    tx.exec("INSERT INTO checkers (name) VALUES ('old-writer')");
    tx.exec(
        "INSERT INTO checks (scheduled_at, started_at, target_id, checker_id, total_time, body_bytes, redirects, ok) "
        "SELECT now(), now(), t.id, c.id, 0.1, 0, 0, true FROM targets t, checkers c");
    tx.commit();
  }
  const TestTopic topic("wt_topic");
  Producer producer;
  producer.create_topic(topic.name(), 2);
  // Every target from two locations, three probes each, plus messages without a location.
  struct Sent {
    std::string target;
    std::string location;
    std::string json_location;  // how a message without one says so: "" = no key
  };
  std::vector<Sent> sent;
  for (const char* target : {"shop", "api"}) {
    for (const char* location : {"eu-west", "us-east"}) {
      for (int k = 0; k < 3; ++k) sent.push_back({target, location, ""});
    }
  }
  sent.push_back({"plain", "", ""});
  sent.push_back({"null-location", "", ",\"location\":null"});
  sent.push_back({"empty-location", "", ",\"location\":\"\""});
  for (std::size_t i = 0; i < sent.size(); ++i) {
    CheckResult r = make_check(static_cast<std::int64_t>(i), 1);
    r.target = sent[i].target;
    r.location = sent[i].location;
    std::string value = encode_check_result(r);
    if (!sent[i].json_location.empty()) value.insert(value.size() - 1, sent[i].json_location);
    producer.produce(topic.name(), r.target, value);
  }
  producer.flush();
  {
    WriterOptions options;
    options.batch_max_rows = 4;  // several batches: the ids learnt in one are used by the next
    Writer writer(dir.path(), "writer", topic.name(), unique_name("wt_group"), db.uri(), options);
    ASSERT_TRUE(eventually([&] { return counts(db).rows == static_cast<int>(sent.size()) + 1; }, 120s))
        << writer.log();
    EXPECT_EQ(writer.stop(), 0) << writer.log();
  }
  EXPECT_EQ(counts(db).dead_letters, 0);

  pqxx::connection conn(db.uri());
  pqxx::nontransaction nt(conn);
  std::map<std::pair<std::string, std::string>, int> stored;
  for (const auto& row : nt.exec("SELECT target, location FROM check_results")) {
    ++stored[{row[0].as<std::string>(), opt_text(row[1])}];
  }
  const std::map<std::pair<std::string, std::string>, int> expected = {
      {{"api", "eu-west"}, 3},   {{"api", "us-east"}, 3},        {{"shop", "eu-west"}, 3},
      {{"shop", "us-east"}, 3},  {{"plain", "NULL"}, 1},         {{"null-location", "NULL"}, 1},
      {{"empty-location", "NULL"}, 1}, {{"before", "NULL"}, 1}};
  EXPECT_EQ(stored, expected);
  // Each name once, as a row of locations; the rows hold its id.
  EXPECT_EQ(nt.exec("SELECT string_agg(name, ',' ORDER BY name) FROM locations")[0][0].as<std::string>(),
            "eu-west,us-east");
  EXPECT_EQ(nt.exec("SELECT count(*) FROM checks c JOIN locations l ON l.id = c.location_id")[0][0].as<int>(), 12);
  EXPECT_EQ(nt.exec("SELECT count(*) FROM checks WHERE location_id IS NULL")[0][0].as<int>(), 4);
  // The view's earlier columns stay as they were; location is appended last.
  std::vector<std::string> columns;
  for (const auto& row : nt.exec("SELECT column_name FROM information_schema.columns "
                                 "WHERE table_name = 'check_results' ORDER BY ordinal_position")) {
    columns.push_back(row[0].as<std::string>());
  }
  EXPECT_EQ(columns, (std::vector<std::string>{"target", "url", "scheduled_at", "started_at", "http_response_time",
                                               "http_status", "regexp_match", "ok", "error", "error_detail",
                                               "dns_cached", "location"}));

  // A writer that starts afresh (nothing cached) with the same locations reads their ids: no new
  // row, and no value of the smallint id's sequence spent on names that exist.
  const auto last_id = [&] {
    return nt.exec("SELECT last_value FROM pg_sequences WHERE sequencename = "
                   "split_part(pg_get_serial_sequence('locations', 'id'), '.', 2)")[0][0].as<int>();
  };
  EXPECT_EQ(last_id(), 2);
  for (int k = 0; k < 4; ++k) {
    CheckResult r = make_check(100 + k, 1);
    r.target = "shop";
    r.location = k % 2 ? "eu-west" : "us-east";
    producer.produce(topic.name(), r.target, encode_check_result(r));
  }
  producer.flush();
  {
    Writer writer(dir.path(), "writer2", topic.name(), unique_name("wt_group2"), db.uri());
    // A new group reads the topic from the start: every message again, as duplicates.
    ASSERT_TRUE(eventually([&] { return counts(db).rows == 2 * static_cast<int>(sent.size()) + 1 + 4; }, 120s))
        << writer.log();
    EXPECT_EQ(writer.stop(), 0) << writer.log();
  }
  EXPECT_EQ(nt.exec("SELECT count(*) FROM locations")[0][0].as<int>(), 2);
  EXPECT_EQ(last_id(), 2);
  EXPECT_EQ(nt.exec("SELECT count(*) FROM check_results WHERE target = 'shop' AND location = 'us-east'")[0][0]
                .as<int>(),
            3 + 3 + 2);
}

}  // namespace
}  // namespace webmon::writer::test
