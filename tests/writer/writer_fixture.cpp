#include "writer_fixture.hpp"

#include <csignal>

#include <array>
#include <fstream>
#include <iostream>
#include <stdexcept>
#include <thread>

#include <pqxx/pqxx>

#include "webmon/common/config.hpp"

namespace webmon::writer::test {
CheckResult make_check(std::int64_t i, int targets) {
  using namespace std::chrono;
  CheckResult r;
  const auto t = i % targets;
  r.target = "target-" + std::to_string(t);
  r.url = "https://" + r.target + ".example/health";
  // Today, so that rows land in daily partitions; one millisecond apart per message.
  const auto base = floor<days>(system_clock::now());
  r.scheduled_at = SysMillis(duration_cast<milliseconds>(base.time_since_epoch())) + milliseconds(i);
  r.started_at = r.scheduled_at + milliseconds(i % 7);
  r.checker = "checker-" + std::to_string(i % 2);
  switch (i % 5) {
    case 0:
      r.error = ErrorClass::timeout;
      r.error_detail = "no response within 10 s";
      r.timings.dns = 0.001;
      r.timings.total = 10.0;
      break;
    case 1:
      r.error = ErrorClass::dns;
      r.error_detail = "host not found";
      r.timings.total = 0.02;
      break;
    default:
      r.http_status = (i % 5 == 2) ? 200 : 503;
      r.ok = r.http_status == 200;
      r.http_response_time = 0.001 * static_cast<double>(1 + i % 900);
      r.regexp_match = (i % 3 == 0) ? std::optional<bool>() : std::optional<bool>(i % 2 == 0);
      r.timings.dns = 0.001;
      r.timings.connect = 0.002;
      r.timings.tls = 0.01;
      r.timings.ttfb = 0.05;
      r.timings.transfer = 0.003;
      r.timings.total = 0.066;
      r.body_bytes = static_cast<std::uint64_t>(100 + i % 5000);
      r.peer = "192.0.2." + std::to_string(1 + t % 200) + ":443";
      r.tls_cert_not_after = floor<seconds>(system_clock::now()) + hours(24 * 90);
      break;
  }
  return r;
}

namespace {

// The answer to an admin request sent to `queue`; throws "<what>: ..." for none within 60 s or an error.
kafka::EventPtr admin_answer(rd_kafka_queue_t* queue, const char* what) {
  kafka::EventPtr event(rd_kafka_queue_poll(queue, 60000));
  if (!event) throw std::runtime_error(std::string(what) + ": no answer within 60 s");
  if (rd_kafka_event_error(event.get())) {
    throw std::runtime_error(std::string(what) + ": " + rd_kafka_event_error_string(event.get()));
  }
  return event;
}

}  // namespace

Producer::Producer() {
  KafkaConfig cfg;
  cfg.bootstrap_servers = webmon::test::kafka_bootstrap();
  auto conf = kafka::make_conf(cfg, {{"enable.idempotence", "true"},
                                     {"linger.ms", "20"},
                                     {"compression.type", "lz4"},
                                     {"queue.buffering.max.messages", "1000000"},
                                     {"queue.buffering.max.kbytes", "1048576"}});
  rk_ = kafka::new_handle(RD_KAFKA_PRODUCER, std::move(conf));
}

Producer::~Producer() = default;

void Producer::create_topic(const std::string& topic, int partitions) {
  kafka::ensure_topic(rk_.get(), topic, partitions, 30000);
}

void Producer::delete_records_before(const std::string& topic, std::int32_t partition, std::int64_t before) {
  kafka::TopicPartitionListPtr offsets(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(offsets.get(), topic.c_str(), partition)->offset = before;
  rd_kafka_DeleteRecords_t* request = rd_kafka_DeleteRecords_new(offsets.get());
  kafka::QueuePtr queue(rd_kafka_queue_new(rk_.get()));
  rd_kafka_DeleteRecords(rk_.get(), &request, 1, nullptr, queue.get());
  rd_kafka_DeleteRecords_destroy(request);
  const auto event = admin_answer(queue.get(), "DeleteRecords");
  const auto* result = rd_kafka_event_DeleteRecords_result(event.get());
  const auto* done = result ? rd_kafka_DeleteRecords_result_offsets(result) : nullptr;
  if (!done || done->cnt != 1) throw std::runtime_error("DeleteRecords: no result for the partition");
  if (done->elems[0].err) {
    throw std::runtime_error(std::string("DeleteRecords: ") + rd_kafka_err2str(done->elems[0].err));
  }
}

void Producer::add_partitions(const std::string& topic, int total) {
  std::array<char, 512> errstr{};
  rd_kafka_NewPartitions_t* request =
      rd_kafka_NewPartitions_new(topic.c_str(), static_cast<std::size_t>(total), errstr.data(), errstr.size());
  if (!request) throw std::runtime_error(std::string("CreatePartitions: ") + errstr.data());
  kafka::QueuePtr queue(rd_kafka_queue_new(rk_.get()));
  rd_kafka_CreatePartitions(rk_.get(), &request, 1, nullptr, queue.get());
  rd_kafka_NewPartitions_destroy(request);
  const auto event = admin_answer(queue.get(), "CreatePartitions");
  const auto* result = rd_kafka_event_CreatePartitions_result(event.get());
  std::size_t count = 0;
  const auto* topics = result ? rd_kafka_CreatePartitions_result_topics(result, &count) : nullptr;
  if (!topics || count != 1) throw std::runtime_error("CreatePartitions: no result for the topic");
  if (rd_kafka_topic_result_error(topics[0])) throw std::runtime_error("CreatePartitions: " + kafka::topic_error_text(topics[0]));
  // The controller answers before every broker's metadata says so: wait until it does.
  const std::unique_ptr<rd_kafka_topic_t, decltype(&rd_kafka_topic_destroy)> handle(
      rd_kafka_topic_new(rk_.get(), topic.c_str(), nullptr), &rd_kafka_topic_destroy);
  const bool shown = webmon::test::eventually(
      [&] {
        const rd_kafka_metadata_t* metadata = nullptr;
        if (rd_kafka_metadata(rk_.get(), 0, handle.get(), &metadata, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR) return false;
        const bool done = metadata->topic_cnt == 1 && metadata->topics[0].partition_cnt == total;
        rd_kafka_metadata_destroy(metadata);
        return done;
      },
      std::chrono::seconds(60), std::chrono::milliseconds(200));
  if (!shown) throw std::runtime_error("CreatePartitions: the metadata shows no " + std::to_string(total) + " partitions");
}

void Producer::produce(const std::string& topic, const std::optional<std::string>& key,
                       const std::optional<std::string>& value, bool header, std::int32_t partition) {
  // rd_kafka_produceva: the same as rd_kafka_producev without its macros' C casts.
  std::vector<rd_kafka_vu_t> vus(6);
  vus[0].vtype = RD_KAFKA_VTYPE_TOPIC;
  vus[0].u.cstr = topic.c_str();
  vus[1].vtype = RD_KAFKA_VTYPE_PARTITION;
  vus[1].u.i32 = partition;
  vus[2].vtype = RD_KAFKA_VTYPE_MSGFLAGS;
  vus[2].u.i = RD_KAFKA_MSG_F_COPY;
  vus[3].vtype = RD_KAFKA_VTYPE_KEY;
  vus[3].u.mem.ptr = key ? const_cast<char*>(key->data()) : nullptr;
  vus[3].u.mem.size = key ? key->size() : 0;
  vus[4].vtype = RD_KAFKA_VTYPE_VALUE;
  vus[4].u.mem.ptr = value ? const_cast<char*>(value->data()) : nullptr;
  vus[4].u.mem.size = value ? value->size() : 0;
  const std::string header_name(kSchemaHeaderName);
  vus[5].vtype = RD_KAFKA_VTYPE_HEADER;
  vus[5].u.header.name = header_name.c_str();
  vus[5].u.header.val = kSchemaHeaderValue.data();
  vus[5].u.header.size = static_cast<ssize_t>(kSchemaHeaderValue.size());
  if (!header) vus.pop_back();
  while (true) {
    kafka::ErrorPtr error(rd_kafka_produceva(rk_.get(), vus.data(), vus.size()));
    const auto err = error ? rd_kafka_error_code(error.get()) : RD_KAFKA_RESP_ERR_NO_ERROR;
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
      rd_kafka_poll(rk_.get(), 50);
      continue;
    }
    if (err) throw std::runtime_error(std::string("produce: ") + rd_kafka_err2str(err));
    rd_kafka_poll(rk_.get(), 0);
    return;
  }
}

void Producer::flush() {
  if (auto err = rd_kafka_flush(rk_.get(), 120000)) {
    throw std::runtime_error(std::string("flush: ") + rd_kafka_err2str(err));
  }
}

TestTopic::TestTopic(const std::string& prefix) : name_(webmon::test::unique_name(prefix)) {}

TestTopic::~TestTopic() {
  try {
    KafkaConfig cfg;
    cfg.bootstrap_servers = webmon::test::kafka_bootstrap();
    auto rk = kafka::new_handle(RD_KAFKA_PRODUCER, kafka::make_conf(cfg, {}));
    kafka::delete_topic(rk.get(), name_, 15000);
  } catch (const std::exception& e) {
    std::cerr << "deleting topic " << name_ << ": " << e.what() << "\n";
  }
}

std::filesystem::path write_writer_config(const std::filesystem::path& dir, const std::string& name,
                                          const std::string& topic, const std::string& group,
                                          const std::string& pg_uri, const WriterOptions& options) {
  const auto bootstrap = options.bootstrap.empty() ? webmon::test::kafka_bootstrap() : options.bootstrap;
  // No tuned session timeouts or group.instance.id here: the tests run with the defaults users get.
  std::string yaml = "kafka:\n  bootstrap_servers: \"" + bootstrap + "\"\n  topic: \"" + topic + "\"\n";
  if (!options.kafka_properties.empty()) {
    yaml += "  properties:\n";
    for (const auto& [k, v] : options.kafka_properties) yaml += "    " + k + ": \"" + v + "\"\n";
  }
  yaml += "postgres:\n  uri: \"" + pg_uri + "\"\n";
  yaml += "writer:\n  group_id: \"" + group + "\"\n  batch_max_rows: " + std::to_string(options.batch_max_rows) +
          "\n  batch_max_ms: " + std::to_string(options.batch_max_ms) + "\n";
  if (!options.instance_id.empty()) yaml += "  instance_id: \"" + options.instance_id + "\"\n";
  if (options.metrics_port) yaml += "  metrics_listen: \"127.0.0.1:" + std::to_string(options.metrics_port) + "\"\n";
  if (options.retention_days) yaml += "  retention_days: " + std::to_string(*options.retention_days) + "\n";
  const auto path = dir / (name + ".yml");
  std::ofstream out(path);
  out << yaml;
  return path;
}

Writer::Writer(const std::filesystem::path& dir, const std::string& name, const std::string& topic,
               const std::string& group, const std::string& pg_uri, const WriterOptions& options,
               std::vector<std::string> env) {
  const auto config = write_writer_config(dir, name, topic, group, pg_uri, options);
  process_ = std::make_unique<webmon::test::ChildProcess>(
      std::vector<std::string>{WEBMON_WRITER_BIN, "--config", config.string(), "--log-level", options.log_level},
      dir / (name + ".log"), std::move(env));
}

std::optional<int> Writer::stop(std::chrono::milliseconds limit) {
  process_->signal(SIGTERM);
  return process_->wait_for_exit(limit);
}

void Writer::kill() {
  process_->signal(SIGKILL);
  process_->wait_for_exit(std::chrono::seconds(30));
}

Counts counts(const TestDatabase& db) {
  Counts c;
  try {
    pqxx::connection conn(db.uri());
    pqxx::nontransaction nt(conn);
    if (nt.exec("SELECT to_regclass('checks') IS NOT NULL")[0][0].as<bool>() == false) return c;
    const auto r = nt.exec(
        "SELECT count(*), count(*) - count(DISTINCT (target_id, scheduled_at)), "
        "(SELECT count(*) FROM dead_letters) FROM checks");
    c.rows = r[0][0].as<std::int64_t>();
    c.duplicates = r[0][1].as<std::int64_t>();
    c.dead_letters = r[0][2].as<std::int64_t>();
  } catch (const std::exception&) {
    // PostgreSQL is being restarted by the test: nothing counted this time.
    c.rows = -1;
  }
  return c;
}

void report(const std::string& test, std::int64_t expected, const Counts& c) {
  std::cout << test << ": rows expected " << expected << ", rows found " << c.rows << ", duplicates "
            << c.duplicates << ", dead letters " << c.dead_letters << std::endl;
}

}  // namespace webmon::writer::test
