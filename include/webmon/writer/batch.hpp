// Pure batch building for the writer: each Kafka message becomes either a row to COPY or a dead
// letter (with the reason and its raw bytes), and a batch is cut by size or age. No servers here,
// so every routing rule is unit-tested.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "webmon/common/check_result.hpp"

namespace webmon::writer {

// One consumed message as the writer sees it (views into librdkafka's buffers).
struct InMessage {
  std::string_view topic;
  std::int32_t partition = 0;
  std::int64_t offset = 0;
  std::optional<std::string_view> key;
  std::optional<std::string_view> value;
  std::optional<std::string_view> schema_header;  // the `schema` header, when present
};

struct DeadLetter {
  std::string topic;
  std::int32_t partition = 0;
  std::int64_t offset = 0;
  std::string reason;
  std::optional<std::string> key;
  std::optional<std::string> value;
};

// Decodes a message and checks that PostgreSQL can store every value (a COPY that failed on one
// row would fail the whole batch again and again). Returns the result or the dead-letter reason.
std::variant<CheckResult, std::string> classify(const InMessage& m, std::size_t max_message_bytes);

// The message's `peer` ("1.2.3.4:443", "[2001:db8::1]:443", or a bare address) split for the
// inet and port columns; nullopt when it is not an IP address.
struct Peer {
  std::string address;
  std::optional<int> port;
};
std::optional<Peer> parse_peer(std::string_view peer);

// Where one partition's part of a batch starts and ends.
struct PartitionSpan {
  std::optional<std::int64_t> expected;  // the stored offset the batch is fenced on; none stored yet
  std::int64_t next = 0;                 // offset after the batch's last message
  std::size_t messages = 0;
};

// Where a row came from, and its raw bytes (in Batch::raw), so that a row PostgreSQL refuses for
// good can become a dead letter holding exactly what was consumed.
struct RowOrigin {
  std::int32_t partition = 0;
  std::int64_t offset = 0;
  std::optional<std::pair<std::size_t, std::size_t>> key;    // (position, length) in Batch::raw
  std::optional<std::pair<std::size_t, std::size_t>> value;
};

struct Batch {
  std::string topic;
  std::vector<CheckResult> rows;
  std::vector<RowOrigin> origins;  // one per row, same order
  std::string raw;                 // the rows' keys and values, back to back
  std::vector<DeadLetter> dead_letters;
  std::map<std::int32_t, PartitionSpan> partitions;
  std::size_t messages() const { return rows.size() + dead_letters.size(); }
  bool empty() const { return partitions.empty(); }
};

// Splits a batch of two messages or more into two that, written one after the other, store the
// same rows, dead letters and offsets: by partition when it spans several, else at the median
// offset of its one partition (the second half is fenced on where the first ends). For finding
// the message(s) PostgreSQL refuses by bisection.
std::pair<Batch, Batch> split_batch(Batch&& batch);

// Row i of the batch turned into a dead letter with `reason` and the row's raw bytes.
DeadLetter refused_row(const Batch& batch, std::size_t i, std::string reason);

class BatchBuilder {
 public:
  using Clock = std::chrono::steady_clock;

  BatchBuilder(std::size_t max_rows, std::chrono::milliseconds max_age,
               std::size_t max_message_bytes = 1024 * 1024);

  // `expected` is the partition's stored offset (fence) when this is its first message in the batch.
  void add(const InMessage& m, std::optional<std::int64_t> expected, Clock::time_point now);

  bool empty() const { return batch_.empty(); }
  std::size_t size() const { return batch_.messages(); }
  bool full() const { return batch_.messages() >= max_rows_; }
  // When the batch must be written even if not full; nullopt while empty.
  std::optional<Clock::time_point> deadline() const;
  bool due(Clock::time_point now) const { return full() || (deadline() && now >= *deadline()); }
  bool contains(std::int32_t partition) const { return batch_.partitions.count(partition) != 0; }

  Batch take();     // the batch so far; the builder starts empty again
  void discard();   // forget the batch (it was not written; its messages will be read again)

 private:
  std::size_t max_rows_;
  std::chrono::milliseconds max_age_;
  std::size_t max_message_bytes_;
  Batch batch_;
  std::optional<Clock::time_point> first_at_;
  std::size_t raw_hint_ = 0;  // bytes to reserve for the next batch's raw keys and values
};

}  // namespace webmon::writer
