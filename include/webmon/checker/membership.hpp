// A checker's place in its fleet (checker.group): a Kafka consumer of that group subscribed to
// kafka.coordination_topic, whose partitions are the fleet's shards; the partitions Kafka assigns
// are the shards this instance probes. Kafka does the membership and the failure detection
// (cooperative-sticky, static membership with checker.instance_id, session.timeout.ms); nothing of
// our own coordinates. It reads no messages and commits no offsets. One thread polls the consumer
// (that is what keeps the instance in the group) and runs the rebalance callback, which hands the
// new shards to the scheduler before it gives partitions back.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "webmon/checker/schedule.hpp"
#include "webmon/common/config.hpp"
#include "webmon/common/kafka.hpp"

namespace webmon::checker {

class CheckerMetrics;

class Membership {
 public:
  struct Events {
    // The shards to probe from now on; called on the membership thread, may block briefly
    // (Scheduler::set_shards).
    std::function<void(const ShardSet&)> shards_changed;
    // The group refused this instance for good (another one took its group.instance.id): the
    // process should stop. Called on the membership thread, once.
    std::function<void()> fatal;
  };

  // The consumer properties set before kafka.properties (which may override them).
  static kafka::Properties default_properties(const Config& config);

  // Creates the consumer; throws kafka::ConfigError for a property librdkafka refuses.
  Membership(const Config& config, CheckerMetrics& metrics, Events events);
  ~Membership();  // stop()
  Membership(const Membership&) = delete;
  Membership& operator=(const Membership&) = delete;

  // Starts the thread: ensures the coordination topic (retrying until Kafka answers), reads its
  // partition count (the shards in effect), subscribes and serves the group.
  void start();

  // Leaves the group and ends the thread (bounded by librdkafka at about session.timeout.ms). A
  // static member (checker.instance_id) does not leave: its shards stay with it until its session
  // times out, so that a restart moves nothing.
  void stop();

 private:
  static void rebalance_cb(rd_kafka_t* rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts,
                           void* opaque) noexcept;
  static void error_cb(rd_kafka_t* rk, int err, const char* reason, void* opaque) noexcept;

  void run();
  bool prepare();  // the topic is there and its partition count known; false when stopping
  bool wait(std::chrono::milliseconds d);  // false when stopping
  void on_rebalance(rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts);
  void assigned(rd_kafka_topic_partition_list_t* parts);
  void revoked(rd_kafka_topic_partition_list_t* parts, bool lost);
  bool cooperative();
  void publish(const char* what, const std::set<unsigned>& before);
  void on_fatal();

  std::string group_;
  std::string topic_;
  std::string instance_;  // group.instance.id; empty: dynamic membership
  int shards_wanted_;
  int session_timeout_ms_;
  CheckerMetrics& metrics_;
  Events events_;
  kafka::HandlePtr rk_;

  // On the membership thread only.
  unsigned count_ = 0;           // the topic's partitions: the shards in effect
  std::set<unsigned> assigned_;  // what librdkafka holds for us
  std::set<unsigned> held_;      // what is probed: assigned_, or what was last held while it is lost
  bool lost_ = false;
  bool ever_assigned_ = false;
  // rd_kafka_consumer_close() is running: of the rebalance events it serves, only a revoke is acted
  // on. An assignment that arrived just before the close and was not polled yet is not taken:
  // librdkafka's group may have ended, and a call that asks it (assign, even
  // rd_kafka_rebalance_protocol()) from that callback waits forever (seen in the writer).
  bool closing_ = false;
  bool cooperative_ = true;      // the protocol last seen (librdkafka says none while closing)

  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> fatal_{false};
  std::mutex m_;
  std::condition_variable cv_;
};

}  // namespace webmon::checker
