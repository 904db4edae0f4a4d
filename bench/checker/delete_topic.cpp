// webmon-bench-delete-topic: removes the topic one bench/checker run wrote, so that runs do not
// pile up gigabytes of results in the local Kafka. `webmon-bench-delete-topic BOOTSTRAP TOPIC`
#include <exception>
#include <iostream>
#include <string>

#include "webmon/common/kafka.hpp"

namespace kafka = webmon::kafka;

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: webmon-bench-delete-topic BOOTSTRAP TOPIC\n";
    return 2;
  }
  try {
    kafka::ConfPtr conf(rd_kafka_conf_new());
    kafka::set(conf.get(), "bootstrap.servers", argv[1]);
    auto rk = kafka::new_handle(RD_KAFKA_PRODUCER, std::move(conf));
    kafka::delete_topic(rk.get(), argv[2], 30000);
  } catch (const std::exception& e) {
    std::cerr << "webmon-bench-delete-topic: " << e.what() << '\n';
    return 1;
  }
  return 0;
}
