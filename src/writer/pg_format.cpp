#include "webmon/writer/pg_format.hpp"

#include <charconv>
#include <cstdio>

#include "webmon/writer/batch.hpp"

namespace webmon::writer {
namespace {

void put2(char*& p, unsigned v) {
  *p++ = static_cast<char>('0' + v / 10);
  *p++ = static_cast<char>('0' + v % 10);
}

std::string real_text(double v) {
  char buf[32];
  // Shortest text that reads back as the same float4: what the column will hold anyway.
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, static_cast<float>(v));
  (void)ec;
  return std::string(buf, end);
}

std::optional<std::string> opt_real(const std::optional<double>& v) {
  if (!v) return std::nullopt;
  return real_text(*v);
}

}  // namespace

std::string format_pg_timestamp(SysMillis t) {
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
  char buf[40];
  char* p = buf;
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
  return std::string(buf, p);
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

CopyRow copy_row(const CheckResult& r, int target_id, int checker_id) {
  CopyRow f;
  f[0] = format_pg_timestamp(r.scheduled_at);
  f[1] = format_pg_timestamp(r.started_at);
  if (r.tls_cert_not_after) {
    f[2] = format_pg_timestamp(std::chrono::time_point_cast<std::chrono::milliseconds>(*r.tls_cert_not_after));
  }
  f[3] = std::to_string(target_id);
  f[4] = std::to_string(checker_id);
  f[5] = real_text(r.timings.total);
  f[6] = opt_real(r.http_response_time);
  f[7] = opt_real(r.timings.dns);
  f[8] = opt_real(r.timings.connect);
  f[9] = opt_real(r.timings.tls);
  f[10] = opt_real(r.timings.ttfb);
  f[11] = opt_real(r.timings.transfer);
  f[12] = std::to_string(r.body_bytes);
  if (!r.peer.empty()) {
    if (auto peer = parse_peer(r.peer)) {
      f[19] = peer->address;
      if (peer->port) f[13] = std::to_string(*peer->port);
    }
  }
  if (r.http_status) f[14] = std::to_string(*r.http_status);
  f[15] = std::to_string(r.redirects);
  if (auto id = error_class_id(r.error)) f[16] = std::to_string(*id);
  f[17] = r.ok ? "t" : "f";
  if (r.regexp_match) f[18] = *r.regexp_match ? "t" : "f";
  if (!r.error_detail.empty()) f[20] = r.error_detail;
  return f;
}

}  // namespace webmon::writer
