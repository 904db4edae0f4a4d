#include "webmon/common/kafka.hpp"

#include <array>
#include <memory>
#include <stdexcept>

#include <spdlog/spdlog.h>

#include "webmon/common/config.hpp"

namespace webmon::kafka {

std::string topic_error_text(const rd_kafka_topic_result_t* result) {
  // librdkafka leaves the string NULL when the broker sent none: its code's name then.
  const char* text = rd_kafka_topic_result_error_string(result);
  return text ? text : rd_kafka_err2str(rd_kafka_topic_result_error(result));
}

void set(rd_kafka_conf_t* conf, std::string_view name, std::string_view value) {
  std::array<char, 512> err{};
  const std::string n(name);
  const std::string v(value);
  if (rd_kafka_conf_set(conf, n.c_str(), v.c_str(), err.data(), err.size()) != RD_KAFKA_CONF_OK) {
    throw ConfigError("kafka property " + n + ": " + err.data());
  }
}

Properties properties_for(const KafkaConfig& cfg) {
  Properties p;
  p.emplace_back("bootstrap.servers", cfg.bootstrap_servers);
  p.emplace_back("security.protocol", cfg.security_protocol);
  const bool ssl = cfg.security_protocol == "ssl" || cfg.security_protocol == "sasl_ssl";
  const bool sasl = cfg.security_protocol == "sasl_plaintext" || cfg.security_protocol == "sasl_ssl";
  if (ssl) {
    if (!cfg.ssl.ca_file.empty()) p.emplace_back("ssl.ca.location", cfg.ssl.ca_file);
    if (!cfg.ssl.cert_file.empty()) p.emplace_back("ssl.certificate.location", cfg.ssl.cert_file);
    if (!cfg.ssl.key_file.empty()) p.emplace_back("ssl.key.location", cfg.ssl.key_file);
  }
  if (sasl) {
    if (!cfg.sasl.mechanism.empty()) p.emplace_back("sasl.mechanism", cfg.sasl.mechanism);
    if (!cfg.sasl.username.empty()) p.emplace_back("sasl.username", cfg.sasl.username);
    if (!cfg.sasl.password.empty()) p.emplace_back("sasl.password", cfg.sasl.password);
  }
  for (const auto& kv : cfg.properties) p.push_back(kv);
  return p;
}

namespace {

// librdkafka's own log lines (syslog levels) go through spdlog like every other line, so they
// follow log_format (text or JSON), are masked and filtered by --log-level, instead of going to
// stderr in librdkafka's format. Called on librdkafka's threads: nothing may escape.
void log_through_spdlog(const rd_kafka_t*, int level, const char* facility, const char* text) noexcept {
  try {
    const auto to = level <= 3 ? spdlog::level::err
                    : level == 4 ? spdlog::level::warn
                    : level <= 6 ? spdlog::level::info
                                 : spdlog::level::debug;
    spdlog::log(to, "kafka {}: {}", facility ? facility : "", text ? text : "");
  } catch (...) {
  }
}

}  // namespace

ConfPtr make_conf(const KafkaConfig& cfg, const Properties& base) {
  ConfPtr conf(rd_kafka_conf_new());
  rd_kafka_conf_set_log_cb(conf.get(), &log_through_spdlog);
  for (const auto& [k, v] : base) set(conf.get(), k, v);
  for (const auto& [k, v] : properties_for(cfg)) set(conf.get(), k, v);
  return conf;
}

HandlePtr new_handle(rd_kafka_type_t type, ConfPtr conf) {
  std::array<char, 512> err{};
  HandlePtr rk(rd_kafka_new(type, conf.get(), err.data(), err.size()));
  if (!rk) {
    throw ConfigError(std::string(type == RD_KAFKA_PRODUCER ? "kafka producer: " : "kafka consumer: ") + err.data());
  }
  (void)conf.release();  // rd_kafka_new took ownership of the conf
  return rk;
}

void ensure_topic(rd_kafka_t* rk, const std::string& topic, int partitions, int timeout_ms) {
  std::array<char, 512> err{};
  NewTopicPtr nt(rd_kafka_NewTopic_new(topic.c_str(), partitions, -1, err.data(), err.size()));
  if (!nt) throw std::runtime_error("topic " + topic + ": " + err.data());
  AdminOptionsPtr opts(rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS));
  if (rd_kafka_AdminOptions_set_operation_timeout(opts.get(), timeout_ms, err.data(), err.size()) ||
      rd_kafka_AdminOptions_set_request_timeout(opts.get(), timeout_ms, err.data(), err.size())) {
    throw std::runtime_error(std::string("admin options: ") + err.data());
  }
  QueuePtr queue(rd_kafka_queue_new(rk));
  rd_kafka_NewTopic_t* topics[] = {nt.get()};
  rd_kafka_CreateTopics(rk, topics, 1, opts.get(), queue.get());
  // Waits a little past the request timeout so that the admin API's own timeout is what we see.
  EventPtr ev(rd_kafka_queue_poll(queue.get(), timeout_ms + 2000));
  if (!ev) throw std::runtime_error("creating topic " + topic + ": no answer from Kafka in time");
  if (rd_kafka_event_error(ev.get())) {
    throw std::runtime_error("creating topic " + topic + ": " + rd_kafka_event_error_string(ev.get()));
  }
  const auto* result = rd_kafka_event_CreateTopics_result(ev.get());
  size_t n = 0;
  const auto** results = rd_kafka_CreateTopics_result_topics(result, &n);
  for (size_t i = 0; i < n; ++i) {
    const auto code = rd_kafka_topic_result_error(results[i]);
    if (code != RD_KAFKA_RESP_ERR_NO_ERROR && code != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
      throw std::runtime_error("creating topic " + topic + ": " + topic_error_text(results[i]));
    }
  }
}

void delete_topic(rd_kafka_t* rk, const std::string& topic, int timeout_ms) {
  std::unique_ptr<rd_kafka_DeleteTopic_t, decltype(&rd_kafka_DeleteTopic_destroy)> del(
      rd_kafka_DeleteTopic_new(topic.c_str()), &rd_kafka_DeleteTopic_destroy);
  QueuePtr queue(rd_kafka_queue_new(rk));
  rd_kafka_DeleteTopic_t* topics[] = {del.get()};
  rd_kafka_DeleteTopics(rk, topics, 1, nullptr, queue.get());
  EventPtr ev(rd_kafka_queue_poll(queue.get(), timeout_ms));
  if (!ev) throw std::runtime_error("deleting topic " + topic + ": no answer from Kafka in time");
  if (rd_kafka_event_error(ev.get())) {
    throw std::runtime_error("deleting topic " + topic + ": " + rd_kafka_event_error_string(ev.get()));
  }
  size_t n = 0;
  const auto** results = rd_kafka_DeleteTopics_result_topics(rd_kafka_event_DeleteTopics_result(ev.get()), &n);
  for (size_t i = 0; i < n; ++i) {
    if (const auto code = rd_kafka_topic_result_error(results[i]); code != RD_KAFKA_RESP_ERR_NO_ERROR) {
      throw std::runtime_error("deleting topic " + topic + ": " + topic_error_text(results[i]));
    }
  }
}

int topic_partitions(rd_kafka_t* rk, const std::string& topic, int timeout_ms) {
  std::unique_ptr<rd_kafka_topic_t, decltype(&rd_kafka_topic_destroy)> rkt(rd_kafka_topic_new(rk, topic.c_str(), nullptr),
                                                                          &rd_kafka_topic_destroy);
  if (!rkt) throw std::runtime_error("topic " + topic + ": " + rd_kafka_err2str(rd_kafka_last_error()));
  const rd_kafka_metadata_t* md = nullptr;
  if (const auto err = rd_kafka_metadata(rk, 0, rkt.get(), &md, timeout_ms)) {
    throw std::runtime_error("metadata of " + topic + ": " + rd_kafka_err2str(err));
  }
  std::unique_ptr<const rd_kafka_metadata_t, decltype(&rd_kafka_metadata_destroy)> hold(md, &rd_kafka_metadata_destroy);
  if (md->topic_cnt < 1) throw std::runtime_error("metadata of " + topic + ": no such topic");
  if (md->topics[0].err) throw std::runtime_error("metadata of " + topic + ": " + rd_kafka_err2str(md->topics[0].err));
  return md->topics[0].partition_cnt;
}

}  // namespace webmon::kafka
