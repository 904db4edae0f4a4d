// Unit: how the writer routes each message (row or dead letter) and cuts batches. No servers.
#include <gtest/gtest.h>

#include "webmon/writer/batch.hpp"

namespace webmon::writer {
namespace {

using namespace std::chrono_literals;

CheckResult sample(const std::string& target = "example") {
  CheckResult r;
  r.target = target;
  r.url = "https://example.com/";
  r.scheduled_at = SysMillis(std::chrono::milliseconds(1'714'564'800'123));
  r.started_at = r.scheduled_at + 2ms;
  r.http_response_time = 0.125;
  r.http_status = 200;
  r.regexp_match = true;
  r.ok = true;
  r.timings.dns = 0.01;
  r.timings.connect = 0.02;
  r.timings.tls = 0.03;
  r.timings.ttfb = 0.04;
  r.timings.transfer = 0.005;
  r.timings.total = 0.13;
  r.body_bytes = 1256;
  r.peer = "93.184.216.34:443";
  r.checker = "checker-1";
  return r;
}

InMessage message(const std::string& value, std::int32_t partition = 0, std::int64_t offset = 0) {
  InMessage m;
  m.topic = "webmon.checks";
  m.partition = partition;
  m.offset = offset;
  m.key = "example";
  m.value = value;
  return m;
}

std::string reason_for(const std::string& value, std::size_t max = 1024 * 1024) {
  auto out = classify(message(value), max);
  if (auto* r = std::get_if<std::string>(&out)) return *r;
  return "";
}

TEST(Classify, ValidMessageBecomesARow) {
  const auto r = sample();
  auto out = classify(message(encode_check_result(r)), 1 << 20);
  ASSERT_TRUE(std::holds_alternative<CheckResult>(out)) << std::get<std::string>(out);
  EXPECT_EQ(std::get<CheckResult>(out), r);
}

TEST(Classify, UnknownFieldsAreIgnored) {
  auto json = encode_check_result(sample());
  json.insert(1, "\"added_later\":{\"x\":[1,2]},");
  EXPECT_EQ(reason_for(json), "");
}

TEST(Classify, TruncatedJsonIsADeadLetter) {
  const auto json = encode_check_result(sample());
  for (std::size_t cut : {std::size_t{0}, std::size_t{1}, json.size() / 2, json.size() - 1}) {
    EXPECT_NE(reason_for(json.substr(0, cut)), "") << "cut at " << cut;
  }
}

TEST(Classify, WrongTypesAreDeadLetters) {
  const auto json = encode_check_result(sample());
  auto replace = [&](const std::string& from, const std::string& to) {
    auto s = json;
    const auto at = s.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    s.replace(at, from.size(), to);
    return s;
  };
  EXPECT_NE(reason_for(replace("\"http_status\":200", "\"http_status\":\"200\"")), "");
  EXPECT_NE(reason_for(replace("\"ok\":true", "\"ok\":1")), "");
  EXPECT_NE(reason_for(replace("\"target\":\"example\"", "\"target\":42")), "");
  EXPECT_NE(reason_for("[]"), "");
  EXPECT_NE(reason_for("\"text\""), "");
}

TEST(Classify, UnknownSchemaVersionIsADeadLetter) {
  auto json = encode_check_result(sample());
  const auto at = json.find("\"schema_version\":1");
  ASSERT_NE(at, std::string::npos);
  json.replace(at, 18, "\"schema_version\":2");
  EXPECT_NE(reason_for(json).find("schema_version"), std::string::npos) << reason_for(json);
}

TEST(Classify, OversizedMessageIsRefusedUnparsed) {
  const auto json = encode_check_result(sample());
  EXPECT_NE(reason_for(json, json.size() - 1), "");
  EXPECT_EQ(reason_for(json, json.size()), "");
}

TEST(Classify, NullValueAndForeignSchemaHeaderAreDeadLetters) {
  auto m = message("");
  m.value.reset();
  EXPECT_TRUE(std::holds_alternative<std::string>(classify(m, 1 << 20)));

  const auto json = encode_check_result(sample());
  auto v1 = message(json);
  v1.schema_header = kSchemaHeaderValue;
  EXPECT_TRUE(std::holds_alternative<CheckResult>(classify(v1, 1 << 20)));
  auto v2 = message(json);
  v2.schema_header = "webmon.check.v2";
  auto out = classify(v2, 1 << 20);
  ASSERT_TRUE(std::holds_alternative<std::string>(out));
  EXPECT_NE(std::get<std::string>(out).find("webmon.check.v2"), std::string::npos);
}

TEST(Classify, ValuesPostgresqlCannotStoreAreDeadLetters) {
  auto with = [](auto change) {
    auto r = sample();
    change(r);
    return reason_for(encode_check_result(r));
  };
  EXPECT_NE(with([](CheckResult& r) { r.error_detail = std::string("a\0b", 3); }), "");
  EXPECT_NE(with([](CheckResult& r) { r.http_status = 70000; }), "");
  EXPECT_NE(with([](CheckResult& r) { r.body_bytes = 1ull << 40; }), "");
  EXPECT_NE(with([](CheckResult& r) { r.peer = "not-an-address"; }), "");
  EXPECT_EQ(with([](CheckResult& r) { r.peer = "[2001:db8::1]:8443"; }), "");
  EXPECT_EQ(with([](CheckResult& r) { r.peer.clear(); }), "");
}

TEST(Classify, AMessageWithoutDnsCachedIsARowWithoutIt) {
  // Checkers older than dns_cached do not send it: the row is stored, the field NULL.
  auto r = sample();
  r.dns_cached = true;
  auto json = encode_check_result(r);
  const std::string field = ",\"dns_cached\":true";
  ASSERT_NE(json.find(field), std::string::npos) << json;
  json.erase(json.find(field), field.size());
  auto out = classify(message(json), 1 << 20);
  ASSERT_TRUE(std::holds_alternative<CheckResult>(out)) << std::get<std::string>(out);
  EXPECT_FALSE(std::get<CheckResult>(out).dns_cached.has_value());
  r.dns_cached.reset();
  EXPECT_EQ(std::get<CheckResult>(out), r);
}

TEST(Classify, LocationIsARowWithOrWithoutIt) {
  auto r = sample();
  r.location = "eu-west";
  auto out = classify(message(encode_check_result(r)), 1 << 20);
  ASSERT_TRUE(std::holds_alternative<CheckResult>(out)) << std::get<std::string>(out);
  EXPECT_EQ(std::get<CheckResult>(out).location, "eu-west");
  // A NUL cannot be stored in the locations table: a dead letter, not a COPY that fails the batch.
  r.location = std::string("eu\0west", 7);
  EXPECT_EQ(reason_for(encode_check_result(r)), "a text field holds a NUL character, which PostgreSQL cannot store");
}

TEST(Classify, OutOfRangeReasonsNameTheField) {
  auto with = [](auto change) {
    auto r = sample();
    change(r);
    return reason_for(encode_check_result(r));
  };
  EXPECT_EQ(with([](CheckResult& r) { r.http_status = 70000; }), "field http_status: 70000 out of range");
  EXPECT_EQ(with([](CheckResult& r) { r.redirects = 40000; }), "field redirects: out of range");
  EXPECT_EQ(with([](CheckResult& r) { r.body_bytes = 1ull << 40; }), "field body_bytes: out of range");
  EXPECT_EQ(with([](CheckResult& r) { r.timings.ttfb = 2e9; }), "field timings.ttfb: out of range");
  EXPECT_EQ(with([](CheckResult& r) { r.peer = "not-an-address"; }),
            "field peer: not an IP address with an optional port");
  EXPECT_EQ(with([](CheckResult& r) { r.checker = std::string("a\0b", 3); }),
            "a text field holds a NUL character, which PostgreSQL cannot store");
  EXPECT_EQ(with([](CheckResult& r) { r.scheduled_at = SysMillis(std::chrono::sys_days(std::chrono::year(0) / 1 / 1)); }),
            "field scheduled_at: out of range");
}

TEST(ParsePeer, Forms) {
  auto p = parse_peer("10.0.0.1:80");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->address, "10.0.0.1");
  EXPECT_EQ(p->port, 80);
  p = parse_peer("[::1]:443");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->address, "::1");
  EXPECT_EQ(p->port, 443);
  p = parse_peer("::1");
  ASSERT_TRUE(p);
  EXPECT_FALSE(p->port);
  EXPECT_FALSE(parse_peer("10.0.0.1:99999"));
  EXPECT_FALSE(parse_peer("host.example:80"));
  EXPECT_FALSE(parse_peer("[::1]x"));
}

TEST(BatchBuilder, CutsBySize) {
  BatchBuilder b(3, 10s);
  const auto t0 = BatchBuilder::Clock::now();
  const auto json = encode_check_result(sample());
  b.add(message(json, 0, 10), 10, t0);
  b.add(message(json, 0, 11), 10, t0);
  EXPECT_FALSE(b.full());
  EXPECT_FALSE(b.due(t0));
  b.add(message(json, 0, 12), 10, t0);
  EXPECT_TRUE(b.full());
  EXPECT_TRUE(b.due(t0));
  auto batch = b.take();
  EXPECT_EQ(batch.rows.size(), 3u);
  EXPECT_TRUE(b.empty());
  EXPECT_FALSE(b.deadline());
}

TEST(BatchBuilder, CutsByAgeOfTheFirstMessage) {
  BatchBuilder b(1000, 500ms);
  const auto t0 = BatchBuilder::Clock::now();
  EXPECT_FALSE(b.due(t0 + 1h));  // an empty batch is never due
  const auto json = encode_check_result(sample());
  b.add(message(json, 0, 0), std::nullopt, t0);
  b.add(message(json, 0, 1), std::nullopt, t0 + 400ms);
  ASSERT_TRUE(b.deadline());
  EXPECT_EQ(*b.deadline(), t0 + 500ms);
  EXPECT_FALSE(b.due(t0 + 499ms));
  EXPECT_TRUE(b.due(t0 + 500ms));
}

TEST(BatchBuilder, RoutesGarbageToDeadLettersWithRawBytes) {
  BatchBuilder b(100, 1s);
  const auto t0 = BatchBuilder::Clock::now();
  const std::string garbage("\x01\x02not json\xff", 12);
  b.add(message(encode_check_result(sample("a")), 2, 100), 100, t0);
  b.add(message(garbage, 2, 101), 100, t0);
  const auto json_b = encode_check_result(sample("b"));  // InMessage only views it
  auto m = message(json_b, 5, 7);
  m.key.reset();
  b.add(m, std::nullopt, t0);
  auto batch = b.take();
  ASSERT_EQ(batch.rows.size(), 2u);
  EXPECT_EQ(batch.rows[0].target, "a");
  EXPECT_EQ(batch.rows[1].target, "b");
  ASSERT_EQ(batch.dead_letters.size(), 1u);
  const auto& d = batch.dead_letters[0];
  EXPECT_EQ(d.topic, "webmon.checks");
  EXPECT_EQ(d.partition, 2);
  EXPECT_EQ(d.offset, 101);
  EXPECT_EQ(d.value, garbage);
  EXPECT_EQ(d.key, "example");
  EXPECT_FALSE(d.reason.empty());
}

TEST(BatchBuilder, TracksEachPartitionsFenceAndNextOffset) {
  BatchBuilder b(100, 1s);
  const auto t0 = BatchBuilder::Clock::now();
  const auto json = encode_check_result(sample());
  b.add(message(json, 0, 40), 40, t0);
  b.add(message(json, 1, 0), std::nullopt, t0);
  b.add(message(json, 0, 41), 999, t0);  // only the first message of a partition sets the fence
  b.add(message("junk", 0, 42), 999, t0);
  EXPECT_TRUE(b.contains(0));
  EXPECT_FALSE(b.contains(3));
  auto batch = b.take();
  ASSERT_EQ(batch.partitions.size(), 2u);
  EXPECT_EQ(batch.partitions[0].expected, 40);
  EXPECT_EQ(batch.partitions[0].next, 43);
  EXPECT_EQ(batch.partitions[0].messages, 3u);
  EXPECT_FALSE(batch.partitions[1].expected);
  EXPECT_EQ(batch.partitions[1].next, 1);
  EXPECT_EQ(batch.messages(), 4u);
}

TEST(BatchBuilder, DiscardForgetsEverything) {
  BatchBuilder b(100, 1s);
  b.add(message("junk", 0, 1), 1, BatchBuilder::Clock::now());
  b.discard();
  EXPECT_TRUE(b.empty());
  EXPECT_TRUE(b.take().partitions.empty());
}

TEST(SplitBatch, OnePartitionSplitsAtTheMedianOffsetAndChainsTheFence) {
  BatchBuilder b(100, 1s);
  const auto t0 = BatchBuilder::Clock::now();
  for (std::int64_t off = 10; off < 15; ++off) {
    auto r = sample("t" + std::to_string(off));
    b.add(message(off == 12 ? std::string("junk") : encode_check_result(r), 0, off), 10, t0);
  }
  auto batch = b.take();
  ASSERT_EQ(batch.rows.size(), 4u);
  ASSERT_EQ(batch.origins.size(), 4u);
  auto [first, second] = split_batch(std::move(batch));
  // offsets 10 11 | 12 13 14 (12 is the dead letter)
  EXPECT_EQ(first.partitions.at(0).expected, 10);
  EXPECT_EQ(first.partitions.at(0).next, 12);
  EXPECT_EQ(second.partitions.at(0).expected, 12);
  EXPECT_EQ(second.partitions.at(0).next, 15);
  ASSERT_EQ(first.rows.size(), 2u);
  EXPECT_EQ(first.rows[0].target, "t10");
  EXPECT_EQ(first.rows[1].target, "t11");
  ASSERT_EQ(second.rows.size(), 2u);
  EXPECT_EQ(second.rows[0].target, "t13");
  ASSERT_EQ(second.dead_letters.size(), 1u);
  EXPECT_EQ(second.dead_letters[0].offset, 12);
  EXPECT_TRUE(first.dead_letters.empty());
  // The raw bytes travel with their rows.
  const auto dl = refused_row(second, 1, "refused");
  EXPECT_EQ(dl.offset, 14);
  EXPECT_EQ(dl.key, std::optional<std::string>("example"));
  EXPECT_EQ(dl.value, std::optional<std::string>(encode_check_result(sample("t14"))));
  EXPECT_EQ(dl.reason, "refused");
}

TEST(SplitBatch, SeveralPartitionsSplitByPartition) {
  BatchBuilder b(100, 1s);
  const auto t0 = BatchBuilder::Clock::now();
  const auto json = encode_check_result(sample());
  for (std::int32_t p = 0; p < 3; ++p) {
    b.add(message(json, p, 100 + p), std::nullopt, t0);
    b.add(message(json, p, 101 + p), std::nullopt, t0);
  }
  auto [first, second] = split_batch(b.take());
  EXPECT_EQ(first.partitions.size(), 2u);
  EXPECT_EQ(second.partitions.size(), 1u);
  EXPECT_EQ(first.rows.size(), 4u);
  EXPECT_EQ(second.rows.size(), 2u);
  EXPECT_EQ(second.partitions.at(2).next, 104);
  EXPECT_FALSE(second.partitions.at(2).expected);
  for (const auto& o : second.origins) EXPECT_EQ(o.partition, 2);
}

TEST(SplitBatch, SplittingAgainEndsAtSingleMessages) {
  BatchBuilder b(100, 1s);
  const auto t0 = BatchBuilder::Clock::now();
  for (std::int64_t off = 0; off < 7; ++off) b.add(message(encode_check_result(sample()), 0, off), 0, t0);
  std::vector<Batch> pending{b.take()};
  std::vector<Batch> singles;
  while (!pending.empty()) {
    Batch x = std::move(pending.back());
    pending.pop_back();
    if (x.messages() == 1) {
      singles.push_back(std::move(x));
      continue;
    }
    auto [l, r] = split_batch(std::move(x));
    ASSERT_GT(l.messages(), 0u);
    ASSERT_GT(r.messages(), 0u);
    pending.push_back(std::move(l));
    pending.push_back(std::move(r));
  }
  ASSERT_EQ(singles.size(), 7u);
  for (const auto& s : singles) {
    const auto off = s.origins.at(0).offset;
    EXPECT_EQ(s.partitions.at(0).expected, off == 0 ? 0 : off);
    EXPECT_EQ(s.partitions.at(0).next, off + 1);
  }
}

}  // namespace
}  // namespace webmon::writer
