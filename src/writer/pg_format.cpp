#include "webmon/writer/pg_format.hpp"

#include <charconv>

#include "webmon/writer/batch.hpp"

namespace webmon::writer {
namespace {

void put2(char*& p, unsigned v) {
  *p++ = static_cast<char>('0' + v / 10);
  *p++ = static_cast<char>('0' + v % 10);
}

// "2024-05-01 12:00:00.123+00" into p; returns the end.
char* put_timestamp(char* p, SysMillis t) {
  using namespace std::chrono;
  const auto day = floor<days>(t);
  const year_month_day ymd(day);
  auto ms = (t - day).count();  // milliseconds into the day
  const auto h = static_cast<unsigned>(ms / 3'600'000);
  ms %= 3'600'000;
  const auto mi = static_cast<unsigned>(ms / 60'000);
  ms %= 60'000;
  const auto s = static_cast<unsigned>(ms / 1000);
  const auto frac = static_cast<unsigned>(ms % 1000);
  const int y = static_cast<int>(ymd.year());
  put2(p, static_cast<unsigned>(y / 100));
  put2(p, static_cast<unsigned>(y % 100));
  *p++ = '-';
  put2(p, static_cast<unsigned>(ymd.month()));
  *p++ = '-';
  put2(p, static_cast<unsigned>(ymd.day()));
  *p++ = ' ';
  put2(p, h);
  *p++ = ':';
  put2(p, mi);
  *p++ = ':';
  put2(p, s);
  *p++ = '.';
  *p++ = static_cast<char>('0' + frac / 100);
  put2(p, frac % 100);
  *p++ = '+';
  *p++ = '0';
  *p++ = '0';
  return p;
}

// Appends fields to a buffer, each followed by a NUL, and remembers where each starts; the
// pointers are made once the buffer has stopped moving.
class FieldWriter {
 public:
  static constexpr std::size_t kNull = static_cast<std::size_t>(-1);

  explicit FieldWriter(std::string& buffer) : buffer_(buffer) {
    buffer_.clear();
    starts_.fill(kNull);
  }
  void text(std::size_t i, std::string_view s) {
    starts_[i] = buffer_.size();
    buffer_.append(s);
    buffer_.push_back('\0');
  }
  template <typename Format>
  void put(std::size_t i, std::size_t most, Format&& format) {
    starts_[i] = buffer_.size();
    buffer_.resize(buffer_.size() + most + 1);
    char* begin = buffer_.data() + starts_[i];
    char* end = format(begin, begin + most);
    *end = '\0';
    buffer_.resize(static_cast<std::size_t>(end - buffer_.data()) + 1);
  }
  void timestamp(std::size_t i, SysMillis t) {
    put(i, 32, [t](char* b, char*) { return put_timestamp(b, t); });
  }
  template <typename Int>
  void integer(std::size_t i, Int v) {
    put(i, 24, [v](char* b, char* e) { return std::to_chars(b, e, v).ptr; });
  }
  // Shortest text that reads back as the same float4: what the column will hold anyway.
  void real(std::size_t i, double v) {
    put(i, 32, [v](char* b, char* e) { return std::to_chars(b, e, static_cast<float>(v)).ptr; });
  }
  void real(std::size_t i, const std::optional<double>& v) {
    if (v) real(i, *v);
  }
  void finish(CopyRow::Fields& fields) const {
    for (std::size_t i = 0; i < fields.size(); ++i) {
      fields[i] = starts_[i] == kNull ? nullptr : buffer_.data() + starts_[i];
    }
  }

 private:
  std::string& buffer_;
  std::array<std::size_t, kCheckColumns.size()> starts_{};
};

}  // namespace

std::string format_pg_timestamp(SysMillis t) {
  char buf[40];
  return std::string(buf, put_timestamp(buf, t));
}

std::string pg_text_array(const std::vector<std::string_view>& items) {
  std::string out = "{";
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i) out += ',';
    out += '"';
    for (char c : items[i]) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  out += '}';
  return out;
}

std::optional<int> error_class_id(ErrorClass e) {
  switch (e) {
    case ErrorClass::none: return std::nullopt;
    case ErrorClass::dns: return 1;
    case ErrorClass::connect: return 2;
    case ErrorClass::tls: return 3;
    case ErrorClass::timeout: return 4;
    case ErrorClass::protocol: return 5;
    case ErrorClass::too_many_redirects: return 6;
  }
  return std::nullopt;
}

const CopyRow::Fields& CopyRow::format(const CheckResult& r, int target_id, int checker_id) {
  FieldWriter w(buffer_);
  w.timestamp(0, r.scheduled_at);
  w.timestamp(1, r.started_at);
  if (r.tls_cert_not_after) w.timestamp(2, std::chrono::time_point_cast<std::chrono::milliseconds>(*r.tls_cert_not_after));
  w.integer(3, target_id);
  w.integer(4, checker_id);
  w.real(5, r.timings.total);
  w.real(6, r.http_response_time);
  w.real(7, r.timings.dns);
  w.real(8, r.timings.connect);
  w.real(9, r.timings.tls);
  w.real(10, r.timings.ttfb);
  w.real(11, r.timings.transfer);
  w.integer(12, r.body_bytes);
  if (!r.peer.empty()) {
    if (auto peer = parse_peer(r.peer)) {
      w.text(19, peer->address);
      if (peer->port) w.integer(13, *peer->port);
    }
  }
  if (r.http_status) w.integer(14, *r.http_status);
  w.integer(15, r.redirects);
  if (auto id = error_class_id(r.error)) w.integer(16, *id);
  w.text(17, r.ok ? "t" : "f");
  if (r.regexp_match) w.text(18, *r.regexp_match ? "t" : "f");
  if (!r.error_detail.empty()) w.text(20, r.error_detail);
  w.finish(fields_);
  return fields_;
}

std::optional<std::string_view> CopyRow::operator[](std::size_t i) const {
  if (!fields_.at(i)) return std::nullopt;
  return std::string_view(fields_[i]);
}

}  // namespace webmon::writer
