// Reads a topic of the real Kafka back the way a user would: every record from the beginning,
// with key, value, headers, partition and offset.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace webmon::test {

struct KafkaRecord {
  std::string key;
  std::string value;
  std::map<std::string, std::string> headers;
  int partition = 0;
  std::int64_t offset = 0;
};

// Consumes every partition of `topic` from its earliest offset (assigned, no consumer group; the
// topic is waited for if it does not exist yet) until at least `min_records`
// arrived and then no new record for `quiet`, or until `limit` passed.
std::vector<KafkaRecord> read_topic(const std::string& topic, std::size_t min_records,
                                    std::chrono::milliseconds quiet = std::chrono::seconds(3),
                                    std::chrono::milliseconds limit = std::chrono::seconds(90));

// How many partitions the broker has for `topic` (0: no such topic).
int partition_count(const std::string& topic);

// Makes `topic` with `partitions` partitions through the admin API, as an operator would before
// the checker starts (kafka::ensure_topic: an existing topic is left as it is).
void create_topic(const std::string& topic, int partitions);

}  // namespace webmon::test
