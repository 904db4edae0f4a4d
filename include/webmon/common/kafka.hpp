// RAII holders for librdkafka's C handles and the one place a KafkaConfig becomes an
// rd_kafka_conf_t, so that the checker's producer and the writer's consumer agree on security
// settings and pass `kafka.properties` through librdkafka's own validation.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <librdkafka/rdkafka.h>

namespace webmon {

struct KafkaConfig;

namespace kafka {

struct ConfDeleter { void operator()(rd_kafka_conf_t* p) const noexcept { rd_kafka_conf_destroy(p); } };
struct HandleDeleter { void operator()(rd_kafka_t* p) const noexcept { rd_kafka_destroy(p); } };
struct TopicPartitionListDeleter {
  void operator()(rd_kafka_topic_partition_list_t* p) const noexcept { rd_kafka_topic_partition_list_destroy(p); }
};
struct MessageDeleter { void operator()(rd_kafka_message_t* p) const noexcept { rd_kafka_message_destroy(p); } };
struct HeadersDeleter { void operator()(rd_kafka_headers_t* p) const noexcept { rd_kafka_headers_destroy(p); } };
struct QueueDeleter { void operator()(rd_kafka_queue_t* p) const noexcept { rd_kafka_queue_destroy(p); } };
struct EventDeleter { void operator()(rd_kafka_event_t* p) const noexcept { rd_kafka_event_destroy(p); } };
struct NewTopicDeleter { void operator()(rd_kafka_NewTopic_t* p) const noexcept { rd_kafka_NewTopic_destroy(p); } };
struct AdminOptionsDeleter {
  void operator()(rd_kafka_AdminOptions_t* p) const noexcept { rd_kafka_AdminOptions_destroy(p); }
};
struct ErrorDeleter { void operator()(rd_kafka_error_t* p) const noexcept { rd_kafka_error_destroy(p); } };

using ConfPtr = std::unique_ptr<rd_kafka_conf_t, ConfDeleter>;
using HandlePtr = std::unique_ptr<rd_kafka_t, HandleDeleter>;
using TopicPartitionListPtr = std::unique_ptr<rd_kafka_topic_partition_list_t, TopicPartitionListDeleter>;
using MessagePtr = std::unique_ptr<rd_kafka_message_t, MessageDeleter>;
using HeadersPtr = std::unique_ptr<rd_kafka_headers_t, HeadersDeleter>;
using QueuePtr = std::unique_ptr<rd_kafka_queue_t, QueueDeleter>;
using EventPtr = std::unique_ptr<rd_kafka_event_t, EventDeleter>;
using NewTopicPtr = std::unique_ptr<rd_kafka_NewTopic_t, NewTopicDeleter>;
using AdminOptionsPtr = std::unique_ptr<rd_kafka_AdminOptions_t, AdminOptionsDeleter>;
using ErrorPtr = std::unique_ptr<rd_kafka_error_t, ErrorDeleter>;

// Thrown for a setting librdkafka refuses; what() carries librdkafka's own message.
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

using Properties = std::vector<std::pair<std::string, std::string>>;

// Sets one property; throws ConfigError("kafka.<name>: <librdkafka's reason>").
void set(rd_kafka_conf_t* conf, std::string_view name, std::string_view value);

// Translates the `kafka` section (bootstrap servers, security protocol, ssl.*, sasl.*) into
// librdkafka properties, then `kafka.properties` as given, which therefore win.
Properties properties_for(const KafkaConfig& cfg);

// A new conf holding `base` (the component's own defaults, e.g. enable.idempotence) then
// properties_for(cfg). Throws ConfigError.
ConfPtr make_conf(const KafkaConfig& cfg, const Properties& base);

// Creates a client from `conf`. rd_kafka_new takes ownership of the conf only when it succeeds;
// this is the one place that hand-over happens. Throws ConfigError with librdkafka's message.
HandlePtr new_handle(rd_kafka_type_t type, ConfPtr conf);

// Ensures `topic` exists with `partitions` partitions (creates it through the admin API when
// missing; an existing topic is left as it is). Blocks up to `timeout_ms`; throws
// std::runtime_error on failure. Call it from a thread that may block, never an io_context.
void ensure_topic(rd_kafka_t* rk, const std::string& topic, int partitions, int timeout_ms);

// An admin result's error text: librdkafka's string, which may be NULL, else the code's own.
std::string topic_error_text(const rd_kafka_topic_result_t* result);

// Deletes `topic` through the admin API, waiting up to `timeout_ms`; throws std::runtime_error
// with Kafka's reason when it fails or does not answer in time.
void delete_topic(rd_kafka_t* rk, const std::string& topic, int timeout_ms);

// How many partitions `topic` has, from the brokers' metadata; throws when Kafka does not say
// (no answer within timeout_ms, no such topic).
int topic_partitions(rd_kafka_t* rk, const std::string& topic, int timeout_ms);

}  // namespace kafka
}  // namespace webmon
