#include "webmon/writer/batch.hpp"

#include <arpa/inet.h>

#include <charconv>
#include <cmath>
#include <limits>
#include <algorithm>
#include <functional>
#include <set>
#include <stdexcept>

namespace webmon::writer {
namespace {

bool has_nul(std::string_view s) { return s.find('\0') != std::string_view::npos; }

// PostgreSQL's real (float4) holds it, and it is a duration a probe could have measured.
bool storable_seconds(double v) { return std::isfinite(v) && v >= 0 && v < 1e9; }

bool storable_time(SysMillis t) {
  // timestamptz starts at 4713 BC; the decoder's RFC 3339 allows year 0, which PostgreSQL refuses.
  const auto ymd = std::chrono::year_month_day(std::chrono::floor<std::chrono::days>(t));
  return ymd.year() >= std::chrono::year(1) && ymd.year() <= std::chrono::year(9999);
}

std::optional<std::string> unstorable(const CheckResult& r) {
  if (r.target.empty()) return "field target: empty";
  if (has_nul(r.target) || has_nul(r.url) || has_nul(r.error_detail) || has_nul(r.checker) || has_nul(r.peer)) {
    return "a text field holds a NUL character, which PostgreSQL cannot store";
  }
  if (!storable_time(r.scheduled_at)) return "field scheduled_at: out of range";
  if (!storable_time(r.started_at)) return "field started_at: out of range";
  if (r.tls_cert_not_after &&
      !storable_time(std::chrono::time_point_cast<std::chrono::milliseconds>(*r.tls_cert_not_after))) {
    return "field tls_cert_not_after: out of range";
  }
  if (r.http_status && (*r.http_status < 0 || *r.http_status > 32767)) return "field http_status: out of range";
  if (r.redirects < 0 || r.redirects > 32767) return "field redirects: out of range";
  if (r.body_bytes > static_cast<std::uint64_t>(std::numeric_limits<std::int32_t>::max())) {
    return "field body_bytes: out of range";
  }
  if (r.http_response_time && !storable_seconds(*r.http_response_time)) return "field http_response_time: out of range";
  const auto& t = r.timings;
  for (const auto& [name, v] : {std::pair{"dns", t.dns}, std::pair{"connect", t.connect}, std::pair{"tls", t.tls},
                                std::pair{"ttfb", t.ttfb}, std::pair{"transfer", t.transfer}}) {
    if (v && !storable_seconds(*v)) return std::string("field timings.") + name + ": out of range";
  }
  if (!storable_seconds(t.total)) return "field timings.total: out of range";
  if (!r.peer.empty() && !parse_peer(r.peer)) return "field peer: not an IP address with an optional port";
  return std::nullopt;
}

bool is_ip(const std::string& s, int family) {
  unsigned char buf[16];
  return ::inet_pton(family, s.c_str(), buf) == 1;
}

}  // namespace

std::optional<Peer> parse_peer(std::string_view peer) {
  auto port_of = [](std::string_view s) -> std::optional<int> {
    int port = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), port);
    if (s.empty() || ec != std::errc() || p != s.data() + s.size() || port < 0 || port > 65535) return std::nullopt;
    return port;
  };
  if (peer.size() > 64) return std::nullopt;
  if (!peer.empty() && peer.front() == '[') {  // [v6]:port
    const auto close = peer.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    Peer out{std::string(peer.substr(1, close - 1)), std::nullopt};
    if (!is_ip(out.address, AF_INET6)) return std::nullopt;
    const auto rest = peer.substr(close + 1);
    if (rest.empty()) return out;
    if (rest.front() != ':' || !(out.port = port_of(rest.substr(1)))) return std::nullopt;
    return out;
  }
  std::string whole(peer);
  if (is_ip(whole, AF_INET6) || is_ip(whole, AF_INET)) return Peer{whole, std::nullopt};
  const auto colon = peer.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  Peer out{std::string(peer.substr(0, colon)), port_of(peer.substr(colon + 1))};
  if (!out.port || !is_ip(out.address, AF_INET)) return std::nullopt;
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
