// Fault: exactly once under kills and restarts, with the real Kafka, PostgreSQL and webmon-writer.
// Messages are produced at a steady pace in the background so that the faults land during the
// ingest, and every test prints rows expected, rows found and duplicates.
#include <atomic>
#include <set>
#include <thread>

#include <gtest/gtest.h>
#include <pqxx/pqxx>

#include "writer_fixture.hpp"

namespace webmon::writer::test {
namespace {

using namespace std::chrono_literals;
using webmon::test::eventually;
using webmon::test::TempDir;
using webmon::test::unique_name;

constexpr std::int64_t kMessages = 100'000;
constexpr int kPartitions = 6;

// Produces make_check(0..n-1) keyed by target over about `spread`, on a thread of its own.
class BackgroundProducer {
 public:
  BackgroundProducer(std::string topic, std::int64_t n, std::chrono::milliseconds spread)
      : thread_([this, topic = std::move(topic), n, spread] { run(topic, n, spread); }) {}
  ~BackgroundProducer() { thread_.join(); }
  bool done() const { return done_; }
  const std::string& error() const { return error_; }

 private:
  void run(const std::string& topic, std::int64_t n, std::chrono::milliseconds spread) {
    try {
      Producer producer;
      constexpr std::int64_t kSlice = 1000;
      const auto start = std::chrono::steady_clock::now();
      for (std::int64_t i = 0; i < n; ++i) {
        const auto r = make_check(i, 200);
        producer.produce(topic, r.target, encode_check_result(r));
        if ((i + 1) % kSlice == 0) {
          std::this_thread::sleep_until(start + spread * (i + 1) / n);
        }
      }
      producer.flush();
    } catch (const std::exception& e) {
      error_ = e.what();
    }
    done_ = true;
  }
  std::atomic<bool> done_{false};
  std::string error_;
  std::thread thread_;
};

void create_topic(const std::string& topic) {
  Producer p;
  p.create_topic(topic, kPartitions);
}

TEST(WriterFault, KilledWithSigkillEveryTwoSeconds) {
  TestDatabase db;
  TempDir dir;
  const TestTopic topic_guard("wf_topic");
  const auto& topic = topic_guard.name();
  const auto group = unique_name("wf_group");
  create_topic(topic);
  BackgroundProducer producer(topic, kMessages, 10s);

  WriterOptions options;
  options.batch_max_rows = 2000;
  options.instance_id = "writer-1";  // a restarted writer takes its place in the group at once
  int kills_during_ingest = 0;
  int run = 0;
  const auto give_up = std::chrono::steady_clock::now() + 4min;
  while (counts(db).rows < kMessages && std::chrono::steady_clock::now() < give_up) {
    Writer writer(dir.path(), "run" + std::to_string(run++), topic, group, db.uri(), options);
    std::this_thread::sleep_for(2s);
    writer.kill();
    if (counts(db).rows < kMessages) ++kills_during_ingest;
  }
  Writer last(dir.path(), "last", topic, group, db.uri(), options);
  EXPECT_TRUE(eventually([&] { return producer.done() && counts(db).rows >= kMessages; }, 180s)) << last.log();
  EXPECT_EQ(last.stop(), 0) << last.log();
  const auto c = counts(db);
  report("killed every 2 s (" + std::to_string(kills_during_ingest) + " kills during the ingest)", kMessages, c);
  EXPECT_EQ(producer.error(), "");
  EXPECT_GE(kills_during_ingest, 2);
  EXPECT_EQ(c.rows, kMessages);
  EXPECT_EQ(c.duplicates, 0);
  EXPECT_EQ(c.dead_letters, 0);
}

TEST(WriterFault, PostgresRestartedTwiceDuringIngest) {
  TestDatabase db;
  TempDir dir;
  const TestTopic topic_guard("wf_topic");
  const auto& topic = topic_guard.name();
  create_topic(topic);
  WriterOptions options;
  options.batch_max_rows = 2000;
  Writer writer(dir.path(), "writer", topic, unique_name("wf_group"), db.uri(), options);
  ASSERT_TRUE(eventually([&] { return counts(db).rows == 0 && writer.log().find("assigned") != std::string::npos; },
                         60s))
      << writer.log();
  BackgroundProducer producer(topic, kMessages, 12s);

  int restarts_during_ingest = 0;
  for (int i = 0; i < 2; ++i) {
    std::this_thread::sleep_for(3s);
    const auto [status, output] =
        webmon::test::run_command({std::string(WEBMON_SOURCE_DIR) + "/scripts/stack", "restart", "postgres"});
    ASSERT_EQ(status, 0) << output;
    if (counts(db).rows < kMessages) ++restarts_during_ingest;
  }
  EXPECT_TRUE(eventually([&] { return producer.done() && counts(db).rows >= kMessages; }, 180s)) << writer.log();
  EXPECT_TRUE(writer.process().running()) << writer.log();
  EXPECT_EQ(writer.stop(), 0) << writer.log();
  const auto c = counts(db);
  report("PostgreSQL restarted twice (" + std::to_string(restarts_during_ingest) + " during the ingest)", kMessages,
         c);
  EXPECT_EQ(producer.error(), "");
  EXPECT_EQ(restarts_during_ingest, 2);
  EXPECT_NE(writer.log().find("pausing consumption"), std::string::npos) << writer.log();
  EXPECT_EQ(c.rows, kMessages);
  EXPECT_EQ(c.duplicates, 0);
}

TEST(WriterFault, KafkaRestartedDuringIngest) {
  TestDatabase db;
  TempDir dir;
  const TestTopic topic_guard("wf_topic");
  const auto& topic = topic_guard.name();
  create_topic(topic);
  WriterOptions options;
  options.batch_max_rows = 2000;
  Writer writer(dir.path(), "writer", topic, unique_name("wf_group"), db.uri(), options);
  ASSERT_TRUE(eventually([&] { return writer.log().find("assigned") != std::string::npos; }, 60s)) << writer.log();
  BackgroundProducer producer(topic, kMessages, 10s);

  std::this_thread::sleep_for(3s);
  const auto [status, output] =
      webmon::test::run_command({std::string(WEBMON_SOURCE_DIR) + "/scripts/stack", "restart", "kafka"}, 3min);
  ASSERT_EQ(status, 0) << output;
  const auto after_restart = counts(db).rows;
  EXPECT_TRUE(eventually([&] { return producer.done() && counts(db).rows >= kMessages; }, 240s)) << writer.log();
  EXPECT_TRUE(writer.process().running()) << writer.log();
  EXPECT_EQ(writer.stop(), 0) << writer.log();
  const auto c = counts(db);
  report("Kafka restarted (" + std::to_string(after_restart) + " rows when it was back)", kMessages, c);
  EXPECT_EQ(producer.error(), "");
  EXPECT_LT(after_restart, kMessages);
  EXPECT_EQ(c.rows, kMessages);
  EXPECT_EQ(c.duplicates, 0);
}

TEST(WriterFault, TwoWritersInOneGroupOneStoppedAndRestarted) {
  TestDatabase db;
  TempDir dir;
  const TestTopic topic_guard("wf_topic");
  const auto& topic = topic_guard.name();
  const auto group = unique_name("wf_group");
  create_topic(topic);
  WriterOptions options;
  options.batch_max_rows = 2000;
  Writer a(dir.path(), "a", topic, group, db.uri(), options);
  auto b = std::make_unique<Writer>(dir.path(), "b1", topic, group, db.uri(), options);
  BackgroundProducer producer(topic, kMessages, 12s);

  std::this_thread::sleep_for(3s);
  EXPECT_EQ(b->stop(), 0) << b->log();
  const auto at_stop = counts(db).rows;
  std::this_thread::sleep_for(2s);
  b = std::make_unique<Writer>(dir.path(), "b2", topic, group, db.uri(), options);
  EXPECT_TRUE(eventually([&] { return producer.done() && counts(db).rows >= kMessages; }, 180s)) << a.log();
  EXPECT_EQ(b->stop(), 0) << b->log();
  EXPECT_EQ(a.stop(), 0) << a.log();
  const auto c = counts(db);
  report("two writers, one stopped at " + std::to_string(at_stop) + " rows and restarted", kMessages, c);
  EXPECT_EQ(producer.error(), "");
  EXPECT_LT(at_stop, kMessages);
  EXPECT_EQ(c.rows, kMessages);
  EXPECT_EQ(c.duplicates, 0);
}

TEST(WriterFault, OnePercentGarbageGoesToDeadLetters) {
  TestDatabase db;
  TempDir dir;
  const TestTopic topic_guard("wf_topic");
  const auto& topic = topic_guard.name();
  create_topic(topic);
  constexpr std::int64_t kTotal = 20'000;
  std::set<std::string> garbage_keys;
  std::int64_t valid = 0;
  {
    Producer producer;
    for (std::int64_t i = 0; i < kTotal; ++i) {
      const auto r = make_check(i, 200);
      auto json = encode_check_result(r);
      if (i % 100 != 37) {
        producer.produce(topic, r.target, json);
        ++valid;
        continue;
      }
      const std::string key = "garbage-" + std::to_string(i);
      garbage_keys.insert(key);
      switch (i / 100 % 4) {
        case 0:
          producer.produce(topic, key, json.substr(0, json.size() / 2));  // truncated
          break;
        case 1:
          producer.produce(topic, key, std::string("\xff\xfe\x00 binary ", 10) + key);
          break;
        case 2: {
          const auto at = json.find("\"schema_version\":1");
          producer.produce(topic, key, json.replace(at, 18, "\"schema_version\":2"));
          break;
        }
        default:
          producer.produce(topic, key, std::nullopt);  // a tombstone
          break;
      }
    }
    producer.flush();
  }
  Writer writer(dir.path(), "writer", topic, unique_name("wf_group"), db.uri());
  EXPECT_TRUE(eventually([&] {
    const auto c = counts(db);
    return c.rows + c.dead_letters >= kTotal;
  }, 180s)) << writer.log();
  EXPECT_EQ(writer.stop(), 0) << writer.log();
  const auto c = counts(db);
  report("1% garbage (" + std::to_string(garbage_keys.size()) + " garbage messages)", valid, c);
  EXPECT_EQ(c.rows, valid);
  EXPECT_EQ(c.duplicates, 0);
  EXPECT_EQ(c.dead_letters, static_cast<std::int64_t>(garbage_keys.size()));

  pqxx::connection conn(db.uri());
  pqxx::nontransaction nt(conn);
  std::set<std::string> stored;
  for (const auto& row : nt.exec("SELECT key, reason FROM dead_letters")) {
    stored.insert(pqxx::binarystring(row[0]).str());
    EXPECT_FALSE(row[1].as<std::string>().empty());
  }
  EXPECT_EQ(stored, garbage_keys);
  EXPECT_EQ(nt.exec("SELECT count(*) FROM dead_letters WHERE reason LIKE '%schema_version%'")[0][0].as<int>(),
            static_cast<int>(garbage_keys.size() / 4));
}

}  // namespace
}  // namespace webmon::writer::test
