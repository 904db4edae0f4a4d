#include "webmon/writer/pg_format.hpp"

#include <arpa/inet.h>

#include <bit>
#include <charconv>
#include <cstdint>
#include <type_traits>

#include "webmon/writer/batch.hpp"

namespace webmon::writer {
namespace {

using v1::Null;
using v1::Sql;

// Appends fields to a buffer, each followed by a NUL, and remembers where each starts; the
// pointers are made once the buffer has stopped moving. A field left unwritten is NULL.
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
  template <typename Duration>
  void timestamp(std::size_t i, std::chrono::sys_time<Duration> t) {
    const auto ms = std::chrono::time_point_cast<std::chrono::milliseconds>(t);
    put(i, kMaxTimestampText, [ms](char* b, char*) { return write_pg_timestamp(b, ms); });
  }
  template <typename Int>
  void integer(std::size_t i, Int v) {
    put(i, 24, [v](char* b, char* e) { return std::to_chars(b, e, v).ptr; });
  }
  // The column's width matters only to the binary form.
  void int2(std::size_t i, long long v) { integer(i, v); }
  void int4(std::size_t i, long long v) { integer(i, v); }
  void inet(std::size_t i, const std::string& address) { text(i, address); }
  // Shortest text that reads back as the same float4: what the column will hold anyway.
  void real(std::size_t i, double v) {
    put(i, 32, [v](char* b, char* e) { return std::to_chars(b, e, static_cast<float>(v)).ptr; });
  }
  void boolean(std::size_t i, bool v) { text(i, v ? "t" : "f"); }
  void finish(CopyRow::Fields& fields) const {
    for (std::size_t i = 0; i < fields.size(); ++i) {
      fields[i] = starts_[i] == kNull ? nullptr : buffer_.data() + starts_[i];
    }
  }

 private:
  std::string& buffer_;
  std::array<std::size_t, kCheckColumns.size()> starts_{};
};

// Calls put(value) unless the value is an empty optional (NULL).
template <typename V, typename Put>
void unless_null(const V& v, Put&& put) {
  if constexpr (requires { v.has_value(); }) {
    if (v) put(*v);
  } else {
    put(v);
  }
}

// The fields of one binary COPY tuple, appended to a buffer in column order; a column skipped
// (a field left unwritten) is NULL.
class BinaryWriter {
 public:
  explicit BinaryWriter(std::string& out) : out_(out) { be<std::uint16_t>(kCheckColumns.size()); }
  template <typename Duration>
  void timestamp(std::size_t col, std::chrono::sys_time<Duration> t) {
    // PostgreSQL's epoch is 2000-01-01; the text form carries milliseconds, so does this.
    constexpr std::int64_t kPgEpochMs = 946'684'800'000;
    const auto ms = std::chrono::time_point_cast<std::chrono::milliseconds>(t).time_since_epoch().count();
    value<std::int64_t>(col, (static_cast<std::int64_t>(ms) - kPgEpochMs) * 1000);
  }
  void real(std::size_t col, double v) { value<std::uint32_t>(col, std::bit_cast<std::uint32_t>(static_cast<float>(v))); }
  void int2(std::size_t col, long long v) { value<std::int16_t>(col, static_cast<std::int16_t>(v)); }
  void int4(std::size_t col, long long v) { value<std::int32_t>(col, static_cast<std::int32_t>(v)); }
  void boolean(std::size_t col, bool v) { value<std::uint8_t>(col, v ? 1 : 0); }
  void text(std::size_t col, std::string_view s) {
    start(col, s.size());
    out_.append(s);
  }
  // inet_recv's form: family (PGSQL_AF_INET 2, PGSQL_AF_INET6 3), bits, is_cidr, length, bytes.
  void inet(std::size_t col, const std::string& address) {
    unsigned char bytes[16];
    unsigned char head[4] = {2, 32, 0, 4};
    if (::inet_pton(AF_INET, address.c_str(), bytes) != 1) {
      // classify() let only IP addresses through; family 0 would make the server refuse the row.
      head[0] = ::inet_pton(AF_INET6, address.c_str(), bytes) == 1 ? 3 : 0;
      head[1] = 128;
      head[3] = 16;
    }
    start(col, 4u + head[3]);
    out_.append(reinterpret_cast<const char*>(head), 4);
    out_.append(reinterpret_cast<const char*>(bytes), head[3]);
  }
  void finish() { nulls_until(kCheckColumns.size()); }

 private:
  template <typename T>
  void be(T v) {
    auto u = static_cast<std::make_unsigned_t<T>>(v);
    char b[sizeof(T)];
    for (std::size_t i = 0; i < sizeof(T); ++i) b[i] = static_cast<char>((u >> (8 * (sizeof(T) - 1 - i))) & 0xff);
    out_.append(b, sizeof(T));
  }
  void nulls_until(std::size_t col) {
    for (; next_ < col; ++next_) be<std::int32_t>(-1);
  }
  void start(std::size_t col, std::size_t length) {
    nulls_until(col);
    be<std::int32_t>(static_cast<std::int32_t>(length));
    next_ = col + 1;
  }
  template <typename T>
  void value(std::size_t col, T v) {
    start(col, sizeof(T));
    be<T>(v);
  }

  std::string& out_;
  std::size_t next_ = 0;
};

// Field I of the message into its column(s), through either writer (FieldWriter: COPY text,
// BinaryWriter: binary COPY); the column types (smallint, integer) are the table's.
template <std::size_t I, typename Writer>
void write_field(Writer& w, const CheckResult& r, int target_id, int checker_id, std::optional<int> location_id) {
  constexpr auto& f = std::get<I>(v1::kFields);
  constexpr std::size_t col = v1::kFirstColumn[I];
  [[maybe_unused]] const auto& m = f.member.of(r);
  if constexpr (f.sql == Sql::timestamptz) {
    unless_null(m, [&](auto t) { w.timestamp(col, t); });
  } else if constexpr (f.sql == Sql::real) {
    unless_null(m, [&](double v) { w.real(col, v); });
  } else if constexpr (f.sql == Sql::smallint) {
    unless_null(m, [&](auto v) { w.int2(col, static_cast<long long>(v)); });
  } else if constexpr (f.sql == Sql::integer) {
    unless_null(m, [&](auto v) { w.int4(col, static_cast<long long>(v)); });
  } else if constexpr (f.sql == Sql::boolean) {
    unless_null(m, [&](bool v) { w.boolean(col, v); });
  } else if constexpr (f.sql == Sql::text) {
    if (f.null == Null::no || !m.empty()) w.text(col, m);
  } else if constexpr (f.sql == Sql::inet) {
    if (!m.empty()) {
      if (auto peer = parse_peer(m)) {
        w.inet(col, peer->address);
        if (peer->port) w.int4(col + 1, *peer->port);  // peer_port integer
      }
    }
  } else if constexpr (f.sql == Sql::error_id) {
    if (auto id = error_class_id(m)) w.int2(col, *id);  // error smallint
  } else if constexpr (f.sql == Sql::target_id) {
    w.int4(col, target_id);  // integer
  } else if constexpr (f.sql == Sql::checker_id) {
    w.int4(col, checker_id);  // integer
  } else if constexpr (f.sql == Sql::location_id) {
    if (location_id) w.int2(col, *location_id);  // smallint
  } else {
    static_assert(f.sql == Sql::none || f.sql == Sql::target_url, "a storage the COPY row does not write");
  }
}

}  // namespace

void append_copy_binary_row(std::string& out, const CheckResult& r, int target_id, int checker_id,
                            std::optional<int> location_id) {
  BinaryWriter w(out);
  v1::for_each_field([&](auto i) { write_field<i>(w, r, target_id, checker_id, location_id); });
  w.finish();
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
  for (const auto& c : kErrorClasses) {
    if (c.value == e) return c.id;
  }
  return std::nullopt;
}

const CopyRow::Fields& CopyRow::format(const CheckResult& r, int target_id, int checker_id,
                                       std::optional<int> location_id) {
  FieldWriter w(buffer_);
  v1::for_each_field([&](auto i) { write_field<i>(w, r, target_id, checker_id, location_id); });
  w.finish(fields_);
  return fields_;
}

std::optional<std::string_view> CopyRow::operator[](std::size_t i) const {
  if (!fields_.at(i)) return std::nullopt;
  return std::string_view(fields_[i]);
}

}  // namespace webmon::writer
