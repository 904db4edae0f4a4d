// Instants as text: RFC 3339 (the message's times) and PostgreSQL's timestamptz input (COPY,
// array literals). One digit writer for both. Header-only: each runs for several fields of every
// message, inside the encoder's, the decoder's and the COPY row's loops.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace webmon {

using SysMillis = std::chrono::sys_time<std::chrono::milliseconds>;

// Room for what either writer below puts out.
inline constexpr std::size_t kMaxTimestampText = 27;

namespace time_text_detail {

inline void put2(char* p, unsigned v) noexcept {
  p[0] = static_cast<char>('0' + v / 10);
  p[1] = static_cast<char>('0' + v % 10);
}

// "YYYY-MM-DD" sep "HH:MM:SS.mmm" (23 characters) into p; returns the end. Years are clamped to
// 0000-9999 (RFC 3339 has four-digit years only).
inline char* put_date_time(char* p, SysMillis t, char sep) noexcept {
  using namespace std::chrono;
  const auto day = floor<days>(t);
  const year_month_day ymd(day);
  const hh_mm_ss<milliseconds> tod(t - day);
  int y = static_cast<int>(ymd.year());
  if (y < 0 || y > 9999) y = y < 0 ? 0 : 9999;
  put2(p, static_cast<unsigned>(y / 100));
  put2(p + 2, static_cast<unsigned>(y % 100));
  p[4] = '-';
  put2(p + 5, static_cast<unsigned>(ymd.month()));
  p[7] = '-';
  put2(p + 8, static_cast<unsigned>(ymd.day()));
  p[10] = sep;
  put2(p + 11, static_cast<unsigned>(tod.hours().count()));
  p[13] = ':';
  put2(p + 14, static_cast<unsigned>(tod.minutes().count()));
  p[16] = ':';
  put2(p + 17, static_cast<unsigned>(tod.seconds().count()));
  p[19] = '.';
  const auto ms = static_cast<unsigned>(tod.subseconds().count());
  p[20] = static_cast<char>('0' + ms / 100);
  put2(p + 21, ms % 100);
  return p + 23;
}

inline bool digits(std::string_view s, std::size_t pos, std::size_t n, int& value) {
  if (pos + n > s.size()) return false;
  value = 0;
  for (std::size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    value = value * 10 + (s[i] - '0');
  }
  return true;
}

}  // namespace time_text_detail

// "2024-05-01T12:00:00.123Z" (24 characters) into p; returns the end.
inline char* write_rfc3339_ms(char* p, SysMillis t) noexcept {
  p = time_text_detail::put_date_time(p, t, 'T');
  *p++ = 'Z';
  return p;
}

// "2024-05-01 12:00:00.123+00" (26 characters) into p; returns the end.
inline char* write_pg_timestamp(char* p, SysMillis t) noexcept {
  p = time_text_detail::put_date_time(p, t, ' ');
  *p++ = '+';
  *p++ = '0';
  *p++ = '0';
  return p;
}

// RFC 3339 UTC with milliseconds: 2024-05-01T12:00:00.123Z
inline std::string format_rfc3339_ms(SysMillis t) {
  char buf[kMaxTimestampText];
  return std::string(buf, write_rfc3339_ms(buf, t));
}

// "2024-05-01 12:00:00.123+00"
inline std::string format_pg_timestamp(SysMillis t) {
  char buf[kMaxTimestampText];
  return std::string(buf, write_pg_timestamp(buf, t));
}

// Any RFC 3339 date-time (other offsets, any fraction, truncated to milliseconds); nullopt else.
inline std::optional<SysMillis> parse_rfc3339(std::string_view s) {
  using namespace std::chrono;
  using time_text_detail::digits;
  // date-time = full-date "T" full-time; full-time = HH:MM:SS [.frac] (Z | +HH:MM | -HH:MM)
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
  if (s.size() < 20 || !digits(s, 0, 4, y) || s[4] != '-' || !digits(s, 5, 2, mo) || s[7] != '-' ||
      !digits(s, 8, 2, d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || !digits(s, 11, 2, h) ||
      s[13] != ':' || !digits(s, 14, 2, mi) || s[16] != ':' || !digits(s, 17, 2, sec)) {
    return std::nullopt;
  }
  const year_month_day ymd{year{y}, month{static_cast<unsigned>(mo)}, day{static_cast<unsigned>(d)}};
  if (!ymd.ok() || h > 23 || mi > 59 || sec > 60) return std::nullopt;
  std::size_t pos = 19;
  int ms = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    const std::size_t start = pos;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      if (pos - start < 3) ms = ms * 10 + (s[pos] - '0');  // finer than ms is truncated
      ++pos;
    }
    if (pos == start) return std::nullopt;
    for (std::size_t n = pos - start; n < 3; ++n) ms *= 10;
  }
  if (pos >= s.size()) return std::nullopt;
  minutes offset{0};
  if (s[pos] == 'Z' || s[pos] == 'z') {
    ++pos;
  } else if (s[pos] == '+' || s[pos] == '-') {
    int oh = 0, om = 0;
    if (!digits(s, pos + 1, 2, oh) || pos + 3 >= s.size() || s[pos + 3] != ':' || !digits(s, pos + 4, 2, om) ||
        oh > 23 || om > 59) {
      return std::nullopt;
    }
    offset = hours{oh} + minutes{om};
    if (s[pos] == '-') offset = -offset;
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != s.size()) return std::nullopt;
  // A leap second (:60) lands on the next second, which is what a UTC clock without them shows.
  return SysMillis{sys_days{ymd}.time_since_epoch() + hours{h} + minutes{mi} + seconds{sec} + milliseconds{ms} -
                   offset};
}

}  // namespace webmon
