// Fault: exactly once under kills and restarts, with the real Kafka, PostgreSQL and webmon-writer.
// Messages are produced at a steady pace in the background so that the faults land during the
// ingest, and every test prints rows expected, rows found and duplicates.
#include <signal.h>
#include <sys/types.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <pqxx/pqxx>

#include "support/http_client.hpp"
#include "support/pg_proxy.hpp"
#include "webmon/writer/migrations.hpp"
#include "writer_fixture.hpp"

namespace webmon::writer::test {
namespace {

using namespace std::chrono_literals;
using webmon::test::eventually;
using webmon::test::occurrences;
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

TEST(WriterFault, KilledWithSigkillAndRestartedAtOnceWithTheDefaultConfig) {
  // No writer.instance_id and no kafka.properties: the defaults (static membership as the host
  // name, a 10 s session) are what lets a restarted writer take its partitions back at once.
  TestDatabase db;
  TempDir dir;
  const TestTopic topic_guard("wf_topic");
  const auto& topic = topic_guard.name();
  const auto group = unique_name("wf_group");
  create_topic(topic);
  constexpr std::int64_t kKillMessages = 300'000;
  BackgroundProducer producer(topic, kKillMessages, 40s);

  WriterOptions options;
  options.batch_max_rows = 2000;
  int kills_during_ingest = 0;
  int run = 0;
  std::vector<double> first_batch_seconds;  // from each start to its first committed batch
  const auto give_up = std::chrono::steady_clock::now() + 4min;
  while (counts(db).rows < kKillMessages && std::chrono::steady_clock::now() < give_up) {
    const auto before = counts(db).rows;
    const auto started = std::chrono::steady_clock::now();
    Writer writer(dir.path(), "run" + std::to_string(run++), topic, group, db.uri(), options);
    if (!eventually([&] { return counts(db).rows > before || counts(db).rows >= kKillMessages; }, 120s)) break;
    if (run > 1) {  // the first start joins a new group; the restarts are what is measured
      first_batch_seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    }
    std::this_thread::sleep_for(2s);  // a few seconds of ingest, then the next kill
    writer.kill();
    if (counts(db).rows < kKillMessages) ++kills_during_ingest;
  }
  Writer last(dir.path(), "last", topic, group, db.uri(), options);
  // A bound, not an expectation: the sanitized writer takes minutes for what is left.
  EXPECT_TRUE(eventually([&] { return producer.done() && counts(db).rows >= kKillMessages; }, 600s)) << last.log();
  EXPECT_EQ(last.stop(), 0) << last.log();
  const auto c = counts(db);
  std::string times;
  double slowest = 0;
  for (double t : first_batch_seconds) {
    times += (times.empty() ? "" : ", ") + std::to_string(t).substr(0, 4);
    slowest = std::max(slowest, t);
  }
  report("SIGKILL and restart at once, default config (" + std::to_string(kills_during_ingest) +
             " kills during the ingest; restart to first committed batch: " + times + " s)",
         kKillMessages, c);
  EXPECT_EQ(producer.error(), "");
  EXPECT_GE(kills_during_ingest, 2);
  EXPECT_FALSE(first_batch_seconds.empty());
  // Not a speed test: a restart that waited for the killed member's session to expire would take
  // librdkafka's default session.timeout.ms (45 s) at least; static membership takes seconds.
  EXPECT_LT(slowest, 45.0) << times;
  EXPECT_EQ(c.rows, kKillMessages);
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
  options.metrics_port = webmon::test::free_port();
  Writer writer(dir.path(), "writer", topic, unique_name("wf_group"), db.uri(), options);
  ASSERT_TRUE(eventually([&] { return counts(db).rows == 0 && writer.log().find("assigned") != std::string::npos; },
                         60s))
      << writer.log();
  ASSERT_TRUE(eventually([&] { return webmon::test::http_get(options.metrics_port, "/readyz").status == 200; }, 60s))
      << writer.log();
  const auto metric = [&](const char* name) { return webmon::test::scrape_metric(options.metrics_port, name); };
  const auto errors_before = metric("webmon_writer_postgres_errors_total");
  const auto retries_before = metric("webmon_writer_postgres_retries_total");
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
  // operations.md ("Metrics"): each restart broke the connection (a failed job at least, and
  // failed connects while the server was down), and every failure was followed by exactly one
  // reconnect attempt; read once it is up again, so that no attempt is still to come.
  EXPECT_TRUE(eventually([&] { return webmon::test::http_get(options.metrics_port, "/readyz").status == 200; }, 60s));
  const auto errors_after = metric("webmon_writer_postgres_errors_total");
  const auto retries_after = metric("webmon_writer_postgres_retries_total");
  EXPECT_EQ(writer.stop(), 0) << writer.log();
  ASSERT_TRUE(errors_before && retries_before && errors_after && retries_after);
  EXPECT_GE(*errors_after - *errors_before, 2.0);
  EXPECT_EQ(*retries_after - *retries_before, *errors_after - *errors_before);
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

// Options for two writers of one group: each its own instance id and metrics endpoint.
std::pair<WriterOptions, WriterOptions> two_writer_options(
    const std::vector<std::pair<std::string, std::string>>& properties = {}) {
  WriterOptions a;
  a.batch_max_rows = 2000;
  a.kafka_properties = properties;
  a.instance_id = "writer-a";
  a.metrics_port = webmon::test::free_port();
  WriterOptions b = a;
  b.instance_id = "writer-b";
  b.metrics_port = webmon::test::free_port();
  return {a, b};
}

// Two writers in one group (each its own instance id), one stopped and started again.
void two_writers_one_restarted(const std::vector<std::pair<std::string, std::string>>& properties,
                               const std::string& what) {
  TestDatabase db;
  TempDir dir;
  const TestTopic topic_guard("wf_topic");
  const auto& topic = topic_guard.name();
  const auto group = unique_name("wf_group");
  create_topic(topic);
  const auto [a_options, b_options] = two_writer_options(properties);
  Writer a(dir.path(), "a", topic, group, db.uri(), a_options);
  auto b = std::make_unique<Writer>(dir.path(), "b1", topic, group, db.uri(), b_options);
  BackgroundProducer producer(topic, kMessages, 30s);

  ASSERT_TRUE(eventually([&] { return occurrences(b->log(), "assigned ") >= 1 && counts(db).rows > 0; }, 60s)) << b->log();
  EXPECT_EQ(b->stop(), 0) << b->log();
  const auto at_stop = counts(db).rows;
  // A static member that stops does not leave: its partitions move to `a` when its session
  // expires (a rebalance), and back in part when it starts again (another one).
  const auto a_assigned = occurrences(a.log(), "assigned ");
  EXPECT_TRUE(eventually([&] { return occurrences(a.log(), "assigned ") > a_assigned; }, 90s)) << a.log();
  const auto a_revoked = occurrences(a.log(), "revoked ");
  b = std::make_unique<Writer>(dir.path(), "b2", topic, group, db.uri(), b_options);
  EXPECT_TRUE(eventually([&] { return occurrences(a.log(), "revoked ") > a_revoked; }, 90s)) << a.log();
  EXPECT_TRUE(eventually([&] { return producer.done() && counts(db).rows >= kMessages; }, 180s)) << a.log();
  // Both wrote: `a` all along, and the restarted `b` its share of the partitions afterwards.
  const auto a_rows = webmon::test::scrape_metric(a_options.metrics_port, "webmon_writer_rows_written_total");
  const auto b2_rows = webmon::test::scrape_metric(b_options.metrics_port, "webmon_writer_rows_written_total");
  EXPECT_EQ(b->stop(), 0) << b->log();
  EXPECT_EQ(a.stop(), 0) << a.log();
  ASSERT_TRUE(a_rows && b2_rows);
  EXPECT_GT(*a_rows, 0);
  EXPECT_GT(*b2_rows, 0) << "the restarted writer wrote nothing";
  const auto c = counts(db);
  report(what + ", one stopped at " + std::to_string(at_stop) + " rows and restarted", kMessages, c);
  EXPECT_EQ(producer.error(), "");
  EXPECT_LT(at_stop, kMessages);
  EXPECT_EQ(c.rows, kMessages);
  EXPECT_EQ(c.duplicates, 0);
  const bool cooperative = !properties.empty();
  for (const auto* w : {&a, b.get()}) {
    EXPECT_NE(w->log().find(cooperative ? "(COOPERATIVE rebalance protocol)" : "(EAGER rebalance protocol)"),
              std::string::npos)
        << w->log();
  }
}

TEST(WriterFault, TwoWritersInOneGroupOneStoppedAndRestarted) { two_writers_one_restarted({}, "two writers"); }

TEST(WriterFault, TwoWritersWithCooperativeStickyOneStoppedAndRestarted) {
  two_writers_one_restarted({{"partition.assignment.strategy", "cooperative-sticky"}},
                            "two writers, cooperative-sticky");
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

// The stack's PostgreSQL, every process of it stopped with SIGSTOP (the postmaster first, so that
// it forks no new backend, then its children), and continued again by the destructor whatever
// the test's outcome. The pids come from the stack's postmaster.pid and the parent pids in /proc,
// never from process names.
class FrozenPostgres {
 public:
  FrozenPostgres() {
    const char* dir = std::getenv("WEBMON_STACK_DIR");
    const std::filesystem::path stack = dir ? std::filesystem::path(dir) : std::filesystem::path(WEBMON_SOURCE_DIR) / ".stack";
    std::ifstream pidfile(stack / "postgres" / "data" / "postmaster.pid");
    pid_t postmaster = 0;
    if (!(pidfile >> postmaster) || postmaster <= 1) throw std::runtime_error("no postmaster.pid under " + stack.string());
    stop(postmaster);
    for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
      const auto name = entry.path().filename().string();
      if (name.find_first_not_of("0123456789") != std::string::npos) continue;
      std::ifstream stat(entry.path() / "stat");
      std::string line;
      if (!std::getline(stat, line)) continue;
      const auto close = line.rfind(')');  // "pid (comm) state ppid ..."
      if (close == std::string::npos) continue;
      std::istringstream rest(line.substr(close + 2));
      char state = 0;
      pid_t ppid = 0;
      if (rest >> state >> ppid && ppid == postmaster) stop(static_cast<pid_t>(std::stoi(name)));
    }
  }
  ~FrozenPostgres() { thaw(); }
  FrozenPostgres(const FrozenPostgres&) = delete;
  FrozenPostgres& operator=(const FrozenPostgres&) = delete;
  void thaw() {
    for (auto it = stopped_.rbegin(); it != stopped_.rend(); ++it) ::kill(*it, SIGCONT);
    stopped_.clear();
  }
  std::size_t processes() const { return stopped_.size(); }

 private:
  void stop(pid_t pid) {
    if (::kill(pid, SIGSTOP) == 0) stopped_.push_back(pid);
  }
  std::vector<pid_t> stopped_;
};

// ARCHITECTURE ("Deadlines"): an idle writer still queries PostgreSQL every 10 s, so /readyz says
// 503 when the server freezes with no traffic at all, and 200 again once it answers.
TEST(WriterFault, AnIdleWriterNoticesAFrozenPostgresAndRecovers) {
  TestDatabase db;
  TempDir dir;
  const TestTopic topic_guard("wf_topic");
  const auto& topic = topic_guard.name();
  create_topic(topic);
  WriterOptions options;
  options.metrics_port = webmon::test::free_port();
  Writer writer(dir.path(), "writer", topic, unique_name("wf_group"), db.uri(), options);
  const auto readyz = [&] { return webmon::test::http_get(options.metrics_port, "/readyz").status; };
  ASSERT_TRUE(eventually([&] { return readyz() == 200; }, 60s)) << writer.log();
  ASSERT_TRUE(eventually([&] { return writer.log().find("assigned") != std::string::npos; }, 60s)) << writer.log();
  const auto log_at_freeze = writer.log().size();
  double seconds_to_503 = -1;
  {
    FrozenPostgres frozen;  // continued by its destructor, also when an assertion below fails
    ASSERT_GT(frozen.processes(), 1u);
    const auto frozen_at = std::chrono::steady_clock::now();
    // Nothing is produced: only the idle ping can find out.
    const bool unready = eventually([&] { return readyz() == 503; }, 60s, 200ms);
    seconds_to_503 = std::chrono::duration<double>(std::chrono::steady_clock::now() - frozen_at).count();
    EXPECT_TRUE(writer.process().running()) << writer.log();
    frozen.thaw();
    ASSERT_TRUE(unready) << "still ready 60 s into the freeze\n" << writer.log().substr(log_at_freeze);
  }
  const auto thawed_at = std::chrono::steady_clock::now();
  EXPECT_NE(writer.log().find("no answer in time", log_at_freeze), std::string::npos) << writer.log();
  EXPECT_TRUE(eventually([&] { return readyz() == 200; }, 60s)) << writer.log().substr(log_at_freeze);
  std::cout << "idle writer: /readyz 503 " << std::to_string(seconds_to_503).substr(0, 4)
            << " s into the freeze, 200 again "
            << std::to_string(std::chrono::duration<double>(std::chrono::steady_clock::now() - thawed_at).count())
                   .substr(0, 4)
            << " s after it" << std::endl;
  EXPECT_EQ(writer.stop(), 0) << writer.log();
}

// operations.md ("Schema upgrades"): a writer started while PostgreSQL does not answer (here
// frozen: its kernel still accepts the connection, nothing answers it) waits, not ready, and
// applies the migrations once the server answers, then is ready.
TEST(WriterFault, StartedWhilePostgresIsFrozenItMigratesOnceItAnswers) {
  TestDatabase db;
  TempDir dir;
  WriterOptions options;
  options.metrics_port = webmon::test::free_port();
  const auto readyz = [&] { return webmon::test::http_get(options.metrics_port, "/readyz").status; };
  std::unique_ptr<Writer> writer;
  {
    FrozenPostgres frozen;  // continued by its destructor, also when an assertion below fails
    ASSERT_GT(frozen.processes(), 1u);
    writer = std::make_unique<Writer>(dir.path(), "writer", unique_name("wf_topic"), unique_name("wf_group"),
                                      db.uri(), options);
    // libpq's connect_timeout (10 s by default) ends the first try; the writer says it retries.
    const bool waiting = eventually([&] { return writer->log().find("retrying") != std::string::npos; }, 60s);
    const bool unready = eventually([&] { return readyz() == 503; }, 30s);
    EXPECT_TRUE(writer->process().running()) << writer->log();
    frozen.thaw();
    ASSERT_TRUE(waiting) << writer->log();
    EXPECT_TRUE(unready) << writer->log();
  }
  const auto all = std::to_string(embedded_migrations().size());
  ASSERT_TRUE(eventually(
      [&] { return writer->log().find("schema: " + all + " migration(s) applied now, 0 already") != std::string::npos; },
      60s))
      << writer->log();
  EXPECT_EQ(db.scalar("SELECT count(*) FROM schema_migrations"), all);
  EXPECT_TRUE(eventually([&] { return readyz() == 200; }, 60s)) << writer->log();
  EXPECT_EQ(writer->stop(), 0) << writer->log();
}

TEST(WriterFault, PostgresFrozenWithSigstopForAMinuteDuringIngest) {
  TestDatabase db;
  TempDir dir;
  const TestTopic topic_guard("wf_topic");
  const auto& topic = topic_guard.name();
  create_topic(topic);
  WriterOptions options;
  options.batch_max_rows = 2000;
  options.metrics_port = webmon::test::free_port();
  Writer writer(dir.path(), "writer", topic, unique_name("wf_group"), db.uri(), options);
  ASSERT_TRUE(eventually([&] { return webmon::test::http_get(options.metrics_port, "/readyz").status == 200; }, 60s))
      << writer.log();
  BackgroundProducer producer(topic, kMessages, 20s);
  ASSERT_TRUE(eventually([&] { return counts(db).rows > 0; }, 60s)) << writer.log();

  std::int64_t before_freeze = 0;
  double seconds_to_503 = -1;
  std::size_t log_at_freeze = 0;
  {
    before_freeze = counts(db).rows;
    log_at_freeze = writer.log().size();
    FrozenPostgres frozen;  // continued by its destructor, also when an assertion below fails
    const auto frozen_at = std::chrono::steady_clock::now();
    ASSERT_GT(frozen.processes(), 1u);
    // Polled while frozen (no query of ours can reach PostgreSQL now): the writer says it is
    // not ready before the freeze ends.
    const bool unready = eventually([&] { return webmon::test::http_get(options.metrics_port, "/readyz").status == 503; },
                                    55s, 200ms);
    if (unready) seconds_to_503 = std::chrono::duration<double>(std::chrono::steady_clock::now() - frozen_at).count();
    std::this_thread::sleep_until(frozen_at + 60s);  // the freeze lasts a minute whatever happened
    EXPECT_TRUE(writer.process().running()) << writer.log();
    frozen.thaw();
    EXPECT_TRUE(unready) << writer.log();
  }
  EXPECT_TRUE(eventually([&] { return producer.done() && counts(db).rows >= kMessages; }, 180s)) << writer.log();
  EXPECT_TRUE(eventually([&] { return webmon::test::http_get(options.metrics_port, "/readyz").status == 200; }, 60s));
  EXPECT_TRUE(writer.process().running()) << writer.log();
  const auto since = writer.log().substr(log_at_freeze);  // up to here; stopping revokes, of course
  EXPECT_EQ(writer.stop(), 0) << writer.log();
  const auto c = counts(db);
  report("PostgreSQL frozen (SIGSTOP) for 60 s at " + std::to_string(before_freeze) + " rows; /readyz 503 after " +
             std::to_string(seconds_to_503).substr(0, 4) + " s",
         kMessages, c);
  EXPECT_EQ(producer.error(), "");
  EXPECT_LT(before_freeze, kMessages);
  EXPECT_EQ(c.rows, kMessages);
  EXPECT_EQ(c.duplicates, 0);
  // It kept its group membership: no partition was revoked or assigned again meanwhile.
  EXPECT_EQ(since.find("revoked"), std::string::npos) << since;
  EXPECT_EQ(since.find("assigned"), std::string::npos) << since;
  EXPECT_NE(since.find("no answer in time"), std::string::npos) << since;
}

// The freeze lands on a rebalance. Two writers share the topic; PostgreSQL is frozen, and one of
// them is killed: after its session (10 s) the group gives its partitions to the other while
// PostgreSQL still answers nothing. (A writer that starts while PostgreSQL is frozen does not
// join at all: it applies the migrations first, so a rebalance during a freeze comes from a
// member that leaves.) The survivor's revocation and assignment must not wait on PostgreSQL: the
// group settles during the freeze, the survivor says not ready and stays a member, and once
// PostgreSQL is back it writes everything, exactly once.
TEST(WriterFault, PostgresFrozenDuringARebalance) {
  TestDatabase db;
  TempDir dir;
  const TestTopic topic_guard("wf_topic");
  const auto& topic = topic_guard.name();
  const auto group = unique_name("wf_group");
  create_topic(topic);
  const auto [a_options, b_options] = two_writer_options();
  Writer a(dir.path(), "a", topic, group, db.uri(), a_options);
  Writer b(dir.path(), "b", topic, group, db.uri(), b_options);
  BackgroundProducer producer(topic, kMessages, 30s);
  constexpr auto kRows = "webmon_writer_rows_written_total";
  // Both hold partitions and have written some of them.
  ASSERT_TRUE(eventually([&] {
    return webmon::test::scrape_metric(a_options.metrics_port, kRows).value_or(0) > 0 &&
           webmon::test::scrape_metric(b_options.metrics_port, kRows).value_or(0) > 0;
  }, 90s)) << a.log() << b.log();

  std::int64_t before_freeze = 0;
  double seconds_to_503 = -1;
  double seconds_to_assigned = -1;
  std::optional<double> rows_at_thaw;
  std::size_t log_at_freeze = 0;
  {
    before_freeze = counts(db).rows;
    log_at_freeze = a.log().size();
    const auto assigned_before = occurrences(a.log(), "assigned ");
    FrozenPostgres frozen;
    const auto frozen_at = std::chrono::steady_clock::now();
    ASSERT_GT(frozen.processes(), 1u);
    b.kill();
    // Polled together while frozen (no query of ours can reach PostgreSQL now).
    const auto since = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - frozen_at).count(); };
    eventually([&] {
      if (seconds_to_503 < 0 && webmon::test::http_get(a_options.metrics_port, "/readyz").status == 503) {
        seconds_to_503 = since();
      }
      if (seconds_to_assigned < 0 && occurrences(a.log(), "assigned ") > assigned_before) seconds_to_assigned = since();
      return seconds_to_503 >= 0 && seconds_to_assigned >= 0;
    }, 55s, 200ms);
    std::this_thread::sleep_until(frozen_at + 60s);  // the freeze lasts a minute whatever happened
    EXPECT_TRUE(a.process().running()) << a.log();
    rows_at_thaw = webmon::test::scrape_metric(a_options.metrics_port, kRows);
    frozen.thaw();
  }
  EXPECT_TRUE(eventually([&] { return producer.done() && counts(db).rows >= kMessages; }, 180s)) << a.log();
  const auto rows_after = webmon::test::scrape_metric(a_options.metrics_port, kRows);
  const auto a_since = a.log().substr(log_at_freeze);
  EXPECT_EQ(a.stop(), 0) << a.log();
  const auto c = counts(db);
  report("PostgreSQL frozen for 60 s at " + std::to_string(before_freeze) + " rows while the group rebalanced (" +
             "partitions reassigned after " + std::to_string(seconds_to_assigned).substr(0, 4) + " s, /readyz 503 after " +
             std::to_string(seconds_to_503).substr(0, 4) + " s)",
         kMessages, c);
  EXPECT_EQ(producer.error(), "");
  EXPECT_LT(before_freeze, kMessages);
  EXPECT_EQ(c.rows, kMessages);
  EXPECT_EQ(c.duplicates, 0);
  // The rebalance finished during the freeze (it did not wait for PostgreSQL), the survivor said
  // it was not ready within about 30 s (a 20 s statement timeout plus 5 s), and it stayed a member.
  EXPECT_GE(seconds_to_assigned, 0) << "no new assignment during the freeze\n" << a_since;
  EXPECT_GE(seconds_to_503, 0) << a_since;
  EXPECT_LE(seconds_to_503, 40) << a_since;
  EXPECT_EQ(a_since.find("leaving the consumer group"), std::string::npos) << a_since;
  ASSERT_TRUE(rows_at_thaw && rows_after);
  EXPECT_GT(*rows_after, *rows_at_thaw) << "nothing written after the thaw";
}

// A COMMIT lost for real, through a proxy that reads the wire protocol: the writer's batch is
// either committed with its answer lost, or never committed; either way the writer cannot know
// which, re-reads the offsets it stored, and ends with every row exactly once.
void lost_commit(webmon::test::PgCommitLoser::Mode mode, const std::string& outcome) {
  TestDatabase db;
  TempDir dir;
  const TestTopic topic_guard("wf_topic");
  const auto& topic = topic_guard.name();
  create_topic(topic);
  constexpr std::int64_t kTotal = 20'000;
  {
    Producer producer;
    for (std::int64_t i = 0; i < kTotal; ++i) {
      const auto r = make_check(i, 200);
      producer.produce(topic, r.target, encode_check_result(r));
    }
    producer.flush();
  }
  const auto uri = db.uri();
  const auto port_at = uri.rfind(':');
  const auto pg_port = static_cast<unsigned short>(std::stoi(uri.substr(port_at + 1, uri.find('/', port_at) - port_at - 1)));
  webmon::test::PgCommitLoser loser(pg_port, mode);
  loser.arm();  // the first batch's COMMIT
  WriterOptions options;
  options.batch_max_rows = 2000;
  Writer writer(dir.path(), "writer", topic, unique_name("wf_group"), loser.uri_through(uri), options);
  EXPECT_TRUE(eventually([&] { return counts(db).rows >= kTotal; }, 180s)) << writer.log();
  EXPECT_TRUE(eventually([&] { return writer.log().find("the batch whose commit was in doubt") != std::string::npos; }, 30s))
      << writer.log();
  EXPECT_EQ(writer.stop(), 0) << writer.log();
  const auto c = counts(db);
  report("COMMIT lost (" + outcome + ")", kTotal, c);
  EXPECT_EQ(loser.lost(), 1);
  EXPECT_NE(writer.log().find("the batch whose commit was in doubt " + outcome), std::string::npos) << writer.log();
  EXPECT_EQ(c.rows, kTotal);
  EXPECT_EQ(c.duplicates, 0);
  EXPECT_EQ(c.dead_letters, 0);
}

TEST(WriterFault, CommitThatLandedButWhoseAnswerWasLostIsNotWrittenTwice) {
  lost_commit(webmon::test::PgCommitLoser::Mode::lose_reply, "was committed");
}

TEST(WriterFault, CommitThatNeverReachedPostgresIsWrittenAgain) {
  lost_commit(webmon::test::PgCommitLoser::Mode::lose_commit, "was not committed");
}

TEST(WriterFault, RowThatPostgresRefusesGoesToDeadLettersAndThePartitionGoesOn) {
  TestDatabase db;
  TempDir dir;
  const TestTopic topic_guard("wf_topic");
  const auto& topic = topic_guard.name();
  create_topic(topic);
  WriterOptions options;
  options.batch_max_rows = 2000;
  Writer writer(dir.path(), "writer", topic, unique_name("wf_group"), db.uri(), options);
  ASSERT_TRUE(eventually([&] { return db.scalar("SELECT to_regclass('checks') IS NOT NULL") == "t"; }, 60s))
      << writer.log();
  // A rule the writer does not know: the decoder takes the message, PostgreSQL refuses it.
  db.exec("ALTER TABLE checks ADD CONSTRAINT test_no_poison CHECK (error_detail IS DISTINCT FROM 'poison')");

  constexpr std::int64_t kTotal = 10'000;
  constexpr std::int64_t kPoison = 5'000;
  std::string poison_key;
  std::string poison_value;
  {
    Producer producer;
    for (std::int64_t i = 0; i < kTotal; ++i) {
      auto r = make_check(i, 20);
      if (i == kPoison) r.error_detail = "poison";
      const auto json = encode_check_result(r);
      if (i == kPoison) {
        poison_key = r.target;
        poison_value = json;
      }
      producer.produce(topic, r.target, json);
    }
    producer.flush();
  }
  EXPECT_TRUE(eventually([&] {
    const auto c = counts(db);
    return c.rows + c.dead_letters >= kTotal;
  }, 180s)) << writer.log();
  EXPECT_TRUE(writer.process().running()) << writer.log();
  EXPECT_EQ(writer.stop(), 0) << writer.log();
  const auto c = counts(db);
  report("one row PostgreSQL refuses among " + std::to_string(kTotal), kTotal - 1, c);
  EXPECT_EQ(c.rows, kTotal - 1);
  EXPECT_EQ(c.duplicates, 0);
  ASSERT_EQ(c.dead_letters, 1);

  pqxx::connection conn(db.uri());
  pqxx::nontransaction nt(conn);
  const auto dl = nt.exec("SELECT key, value, reason FROM dead_letters");
  ASSERT_EQ(dl.size(), 1u);
  EXPECT_EQ(pqxx::binarystring(dl[0][0]).str(), poison_key);
  EXPECT_EQ(pqxx::binarystring(dl[0][1]).str(), poison_value);
  const auto reason = dl[0][2].as<std::string>();
  EXPECT_NE(reason.find("test_no_poison"), std::string::npos) << reason;
  EXPECT_NE(reason.find("23514"), std::string::npos) << reason;
  // Everything after it in its partition was written too.
  EXPECT_EQ(nt.exec("SELECT count(*) FROM checks WHERE error_detail = 'poison'")[0][0].as<int>(), 0);
}

}  // namespace
}  // namespace webmon::writer::test
