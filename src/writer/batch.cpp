#include "webmon/writer/batch.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <set>
#include <stdexcept>
#include <type_traits>
#include <utility>

#include "webmon/common/message_fields.hpp"
#include "webmon/common/text.hpp"

namespace webmon::writer {
namespace {

using v1::Sql;

bool has_nul(std::string_view s) { return s.find('\0') != std::string_view::npos; }

// PostgreSQL's real (float4) holds it, and it is a duration a probe could have measured.
bool storable_seconds(double v) { return std::isfinite(v) && v >= 0 && v < 1e9; }

bool storable_time(SysMillis t) {
  // timestamptz starts at 4713 BC; the decoder's RFC 3339 allows year 0, which PostgreSQL refuses.
  const auto ymd = std::chrono::year_month_day(std::chrono::floor<std::chrono::days>(t));
  return ymd.year() >= std::chrono::year(1) && ymd.year() <= std::chrono::year(9999);
}

// Whether a value fits the column type S; an empty optional is NULL, which always fits.
template <Sql S, typename V>
bool fits(const V& v) {
  if constexpr (requires { v.has_value(); }) {
    return !v || fits<S>(*v);
  } else if constexpr (S == Sql::timestamptz) {
    return storable_time(std::chrono::time_point_cast<std::chrono::milliseconds>(v));
  } else if constexpr (S == Sql::real) {
    return storable_seconds(v);
  } else if constexpr (S == Sql::smallint) {
    return std::cmp_greater_equal(v, 0) && std::cmp_less_equal(v, std::numeric_limits<std::int16_t>::max());
  } else if constexpr (S == Sql::integer) {
    return std::cmp_greater_equal(v, 0) && std::cmp_less_equal(v, std::numeric_limits<std::int32_t>::max());
  } else {
    return true;
  }
}

// Why PostgreSQL could not store field I of the message, if it could not.
template <std::size_t I>
std::optional<std::string> unstorable_field(const CheckResult& r) {
  constexpr auto& f = std::get<I>(v1::kFields);
  [[maybe_unused]] const auto& m = f.member.of(r);
  if constexpr (std::is_same_v<std::remove_cvref_t<decltype(m)>, std::string>) {
    if (has_nul(m)) return "a text field holds a NUL character, which PostgreSQL cannot store";
  }
  if constexpr (f.sql == Sql::inet) {
    if (!m.empty() && !parse_peer(m)) return "field " + std::string(f.name) + ": not an IP address with an optional port";
  } else if constexpr (f.sql == Sql::timestamptz || f.sql == Sql::real || f.sql == Sql::smallint ||
                       f.sql == Sql::integer) {
    if (!fits<f.sql>(m)) return "field " + std::string(f.name) + ": out of range";
  }
  return std::nullopt;
}

std::optional<std::string> unstorable(const CheckResult& r) {
  std::optional<std::string> why;
  v1::for_each_field([&](auto i) {
    if (!why) why = unstorable_field<i>(r);
  });
  return why;
}

bool is_ip(const std::string& s, int family) {
  unsigned char buf[16];
  return ::inet_pton(family, s.c_str(), buf) == 1;
}

}  // namespace

std::optional<Peer> parse_peer(std::string_view peer) {
  if (peer.size() > 64) return std::nullopt;
  const auto hp = parse_host_port(peer, /*port_optional=*/true);
  if (!hp) return std::nullopt;
  Peer out{std::string(hp->host), std::nullopt};
  if (hp->port) out.port = *hp->port;
  // "[v6]" or "[v6]:port"; unbracketed, a port goes with IPv4 only (a bare IPv6 literal has none).
  const bool ok = hp->bracketed || hp->port ? is_ip(out.address, hp->bracketed ? AF_INET6 : AF_INET)
                                            : is_ip(out.address, AF_INET6) || is_ip(out.address, AF_INET);
  if (!ok) return std::nullopt;
  return out;
}

std::variant<CheckResult, std::string> classify(const InMessage& m, std::size_t max_message_bytes) {
  if (!m.value) return std::string("no value (null message)");
  if (m.schema_header && *m.schema_header != kSchemaHeaderValue) {
    return "unknown schema header \"" + std::string(m.schema_header->substr(0, 64)) + "\"";
  }
  auto decoded = decode_check_result(*m.value, max_message_bytes);
  if (auto* err = std::get_if<DecodeError>(&decoded)) return std::move(err->reason);
  auto& r = std::get<CheckResult>(decoded);
  if (auto why = unstorable(r)) return std::move(*why);
  return std::move(r);
}

BatchBuilder::BatchBuilder(std::size_t max_rows, std::chrono::milliseconds max_age, std::size_t max_message_bytes)
    : max_rows_(max_rows == 0 ? 1 : max_rows), max_age_(max_age), max_message_bytes_(max_message_bytes) {}

void BatchBuilder::add(const InMessage& m, std::optional<std::int64_t> expected, Clock::time_point now) {
  if (batch_.empty()) {
    first_at_ = now;
    batch_.topic = std::string(m.topic);
    batch_.rows.reserve(max_rows_);
    batch_.origins.reserve(max_rows_);
    // The raw bytes of a batch are megabytes: grown by doubling they were copied about twice over
    // (memmove was 5 % of the consumer thread, perf, issue 15); the last batch's size is the guess.
    batch_.raw.reserve(raw_hint_);
  }
  auto [span, inserted] = batch_.partitions.try_emplace(m.partition);
  if (inserted) span->second.expected = expected;
  span->second.next = m.offset + 1;
  ++span->second.messages;

  auto classified = classify(m, max_message_bytes_);
  if (auto* row = std::get_if<CheckResult>(&classified)) {
    batch_.rows.push_back(std::move(*row));
    RowOrigin origin{m.partition, m.offset, std::nullopt, std::nullopt};
    auto keep = [this](std::string_view bytes) {
      std::pair<std::size_t, std::size_t> at{batch_.raw.size(), bytes.size()};
      batch_.raw.append(bytes);
      return at;
    };
    if (m.key) origin.key = keep(*m.key);
    if (m.value) origin.value = keep(*m.value);
    batch_.origins.push_back(origin);
    return;
  }
  DeadLetter dl;
  dl.topic = std::string(m.topic);
  dl.partition = m.partition;
  dl.offset = m.offset;
  dl.reason = std::move(std::get<std::string>(classified));
  if (m.key) dl.key = std::string(*m.key);
  if (m.value) dl.value = std::string(*m.value);
  batch_.dead_letters.push_back(std::move(dl));
}

std::optional<BatchBuilder::Clock::time_point> BatchBuilder::deadline() const {
  if (batch_.empty() || !first_at_) return std::nullopt;
  return *first_at_ + max_age_;
}

Batch BatchBuilder::take() {
  raw_hint_ = std::min<std::size_t>(batch_.raw.size() + batch_.raw.size() / 8, std::size_t{64} << 20);
  Batch out = std::move(batch_);
  batch_ = Batch{};
  first_at_.reset();
  return out;
}

void BatchBuilder::discard() {
  batch_ = Batch{};
  first_at_.reset();
}

DeadLetter refused_row(const Batch& batch, std::size_t i, std::string reason) {
  const auto& o = batch.origins.at(i);
  DeadLetter dl;
  dl.topic = batch.topic;
  dl.partition = o.partition;
  dl.offset = o.offset;
  dl.reason = std::move(reason);
  if (o.key) dl.key = batch.raw.substr(o.key->first, o.key->second);
  if (o.value) dl.value = batch.raw.substr(o.value->first, o.value->second);
  return dl;
}

std::pair<Batch, Batch> split_batch(Batch&& batch) {
  Batch first;
  Batch second;
  first.topic = second.topic = batch.topic;
  // Which half each message goes to: by partition, or by offset within the one partition.
  std::function<bool(std::int32_t, std::int64_t)> to_first;
  if (batch.partitions.size() >= 2) {
    std::set<std::int32_t> firsts;
    std::size_t n = 0;
    for (const auto& [p, span] : batch.partitions) {
      if (n++ < (batch.partitions.size() + 1) / 2) firsts.insert(p);
    }
    for (const auto& [p, span] : batch.partitions) (firsts.count(p) ? first : second).partitions[p] = span;
    to_first = [firsts](std::int32_t p, std::int64_t) { return firsts.count(p) != 0; };
  } else {
    std::vector<std::int64_t> offsets;
    for (const auto& o : batch.origins) offsets.push_back(o.offset);
    for (const auto& d : batch.dead_letters) offsets.push_back(d.offset);
    if (offsets.size() < 2 || batch.partitions.empty()) throw std::logic_error("split_batch: fewer than 2 messages");
    std::sort(offsets.begin(), offsets.end());
    const std::int64_t middle = offsets[offsets.size() / 2];
    const auto [p, span] = *batch.partitions.begin();
    const auto below = static_cast<std::size_t>(std::lower_bound(offsets.begin(), offsets.end(), middle) - offsets.begin());
    first.partitions[p] = PartitionSpan{span.expected, middle, below};
    second.partitions[p] = PartitionSpan{middle, span.next, offsets.size() - below};
    to_first = [middle](std::int32_t, std::int64_t offset) { return offset < middle; };
  }
  for (std::size_t i = 0; i < batch.rows.size(); ++i) {
    const auto& o = batch.origins[i];
    Batch& half = to_first(o.partition, o.offset) ? first : second;
    RowOrigin moved{o.partition, o.offset, std::nullopt, std::nullopt};
    if (o.key) {
      moved.key = std::pair{half.raw.size(), o.key->second};
      half.raw.append(batch.raw, o.key->first, o.key->second);
    }
    if (o.value) {
      moved.value = std::pair{half.raw.size(), o.value->second};
      half.raw.append(batch.raw, o.value->first, o.value->second);
    }
    half.rows.push_back(std::move(batch.rows[i]));
    half.origins.push_back(moved);
  }
  for (auto& d : batch.dead_letters) (to_first(d.partition, d.offset) ? first : second).dead_letters.push_back(std::move(d));
  return {std::move(first), std::move(second)};
}

}  // namespace webmon::writer
