#include "support/kafka_topic.hpp"

#include <algorithm>
#include <array>
#include <stdexcept>
#include <thread>

#include "support/stack.hpp"
#include "webmon/common/kafka.hpp"

namespace webmon::test {

std::vector<KafkaRecord> read_topic(const std::string& topic, std::size_t min_records,
                                    std::chrono::milliseconds quiet, std::chrono::milliseconds limit) {
  kafka::ConfPtr conf(rd_kafka_conf_new());
  kafka::set(conf.get(), "bootstrap.servers", kafka_bootstrap());
  kafka::set(conf.get(), "group.id", unique_name("reader"));
  kafka::set(conf.get(), "auto.offset.reset", "earliest");
  kafka::set(conf.get(), "enable.auto.commit", "false");
  auto rk = kafka::new_handle(RD_KAFKA_CONSUMER, std::move(conf));
  rd_kafka_poll_set_consumer(rk.get());
  const auto start = std::chrono::steady_clock::now();
  // Every partition assigned from its beginning, no group join: a join waits for the broker's
  // group.initial.rebalance.delay.ms (3 s, Kafka's default, which the stack keeps) and, after a
  // broker was frozen, sometimes far longer. The topic may not exist yet: wait for it.
  int partitions = 0;
  const auto count = [&] {
    try {
      return partition_count(topic);
    } catch (const std::exception&) {
      return 0;  // no broker answered yet: as good as no topic
    }
  };
  while ((partitions = count()) == 0 && std::chrono::steady_clock::now() - start < limit) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  kafka::TopicPartitionListPtr parts(rd_kafka_topic_partition_list_new(std::max(partitions, 1)));
  for (int p = 0; p < partitions; ++p) {
    rd_kafka_topic_partition_list_add(parts.get(), topic.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
  }
  if (rd_kafka_assign(rk.get(), parts.get()) != RD_KAFKA_RESP_ERR_NO_ERROR) throw std::runtime_error("assign");

  std::vector<KafkaRecord> out;
  auto last_new = start;
  while (true) {
    const auto now = std::chrono::steady_clock::now();
    if (now - start > limit) break;
    if (out.size() >= min_records && now - last_new > quiet) break;
    kafka::MessagePtr msg(rd_kafka_consumer_poll(rk.get(), 200));
    if (!msg || msg->err) continue;
    KafkaRecord r;
    if (msg->key) r.key.assign(static_cast<const char*>(msg->key), msg->key_len);
    if (msg->payload) r.value.assign(static_cast<const char*>(msg->payload), msg->len);
    r.partition = msg->partition;
    r.offset = msg->offset;
    rd_kafka_headers_t* hdrs = nullptr;
    if (rd_kafka_message_headers(msg.get(), &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
      const char* name = nullptr;
      const void* value = nullptr;
      size_t size = 0;
      for (size_t i = 0; rd_kafka_header_get_all(hdrs, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR; ++i) {
        r.headers[name] = value ? std::string(static_cast<const char*>(value), size) : std::string();
      }
    }
    out.push_back(std::move(r));
    last_new = std::chrono::steady_clock::now();
  }
  rd_kafka_consumer_close(rk.get());
  return out;
}

int partition_count(const std::string& topic) {
  kafka::ConfPtr conf(rd_kafka_conf_new());
  kafka::set(conf.get(), "bootstrap.servers", kafka_bootstrap());
  kafka::set(conf.get(), "allow.auto.create.topics", "false");
  auto rk = kafka::new_handle(RD_KAFKA_PRODUCER, std::move(conf));
  rd_kafka_topic_t* handle = rd_kafka_topic_new(rk.get(), topic.c_str(), nullptr);
  const rd_kafka_metadata_t* md = nullptr;
  const auto err = rd_kafka_metadata(rk.get(), 0, handle, &md, 10000);
  rd_kafka_topic_destroy(handle);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) throw std::runtime_error(std::string("metadata: ") + rd_kafka_err2str(err));
  int n = 0;
  for (int i = 0; i < md->topic_cnt; ++i) {
    if (topic == md->topics[i].topic && md->topics[i].err == RD_KAFKA_RESP_ERR_NO_ERROR) n = md->topics[i].partition_cnt;
  }
  rd_kafka_metadata_destroy(md);
  return n;
}

void create_topic(const std::string& topic, int partitions) {
  kafka::ConfPtr conf(rd_kafka_conf_new());
  kafka::set(conf.get(), "bootstrap.servers", kafka_bootstrap());
  auto rk = kafka::new_handle(RD_KAFKA_PRODUCER, std::move(conf));
  kafka::ensure_topic(rk.get(), topic, partitions, 30000);
}

}  // namespace webmon::test
