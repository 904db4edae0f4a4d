// webmon-bench-delete-topic: removes the topic one bench/checker run wrote, so that runs do not
// pile up gigabytes of results in the local Kafka. `webmon-bench-delete-topic BOOTSTRAP TOPIC`
#include <iostream>
#include <string>

#include "webmon/common/kafka.hpp"

namespace kafka = webmon::kafka;

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: webmon-bench-delete-topic BOOTSTRAP TOPIC\n";
    return 2;
  }
  char err[512];
  kafka::ConfPtr conf(rd_kafka_conf_new());
  kafka::set(conf.get(), "bootstrap.servers", argv[1]);
  // rd_kafka_new takes ownership of the conf only when it succeeds.
  kafka::HandlePtr rk(rd_kafka_new(RD_KAFKA_PRODUCER, conf.get(), err, sizeof err));
  if (!rk) {
    std::cerr << "webmon-bench-delete-topic: " << err << '\n';
    return 1;
  }
  conf.release();

  rd_kafka_DeleteTopic_t* topic = rd_kafka_DeleteTopic_new(argv[2]);
  kafka::QueuePtr queue(rd_kafka_queue_new(rk.get()));
  rd_kafka_DeleteTopics(rk.get(), &topic, 1, nullptr, queue.get());
  rd_kafka_DeleteTopic_destroy(topic);

  kafka::EventPtr event(rd_kafka_queue_poll(queue.get(), 30000));
  if (!event) {
    std::cerr << "webmon-bench-delete-topic: no answer within 30 s\n";
    return 1;
  }
  if (rd_kafka_event_error(event.get())) {
    std::cerr << "webmon-bench-delete-topic: " << rd_kafka_event_error_string(event.get()) << '\n';
    return 1;
  }
  size_t n = 0;
  const rd_kafka_topic_result_t** results =
      rd_kafka_DeleteTopics_result_topics(rd_kafka_event_DeleteTopics_result(event.get()), &n);
  for (size_t i = 0; i < n; ++i) {
    if (rd_kafka_topic_result_error(results[i])) {
      std::cerr << "webmon-bench-delete-topic: " << rd_kafka_topic_result_name(results[i]) << ": "
                << rd_kafka_topic_result_error_string(results[i]) << '\n';
      return 1;
    }
  }
  return 0;
}
