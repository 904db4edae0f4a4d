#include "webmon/writer/pg_format.hpp"

#include <charconv>
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

// Field I of the message into its column(s).
template <std::size_t I>
void format_field(FieldWriter& w, const CheckResult& r, int target_id, int checker_id,
                  std::optional<int> location_id) {
  constexpr auto& f = std::get<I>(v1::kFields);
  constexpr std::size_t col = v1::kFirstColumn[I];
  [[maybe_unused]] const auto& m = f.member.of(r);
  if constexpr (f.sql == Sql::timestamptz) {
    unless_null(m, [&](auto t) { w.timestamp(col, t); });
  } else if constexpr (f.sql == Sql::real) {
    unless_null(m, [&](double v) { w.real(col, v); });
  } else if constexpr (f.sql == Sql::smallint || f.sql == Sql::integer) {
    unless_null(m, [&](auto v) { w.integer(col, v); });
  } else if constexpr (f.sql == Sql::boolean) {
    unless_null(m, [&](bool v) { w.boolean(col, v); });
  } else if constexpr (f.sql == Sql::text) {
    if (f.null == Null::no || !m.empty()) w.text(col, m);
  } else if constexpr (f.sql == Sql::inet) {
    if (!m.empty()) {
      if (auto peer = parse_peer(m)) {
        w.text(col, peer->address);
        if (peer->port) w.integer(col + 1, *peer->port);
      }
    }
  } else if constexpr (f.sql == Sql::error_id) {
    if (auto id = error_class_id(m)) w.integer(col, *id);
  } else if constexpr (f.sql == Sql::target_id) {
    w.integer(col, target_id);
  } else if constexpr (f.sql == Sql::checker_id) {
    w.integer(col, checker_id);
  } else if constexpr (f.sql == Sql::location_id) {
    if (location_id) w.integer(col, *location_id);
  } else {
    static_assert(f.sql == Sql::none || f.sql == Sql::target_url, "a storage the COPY row does not write");
  }
}

}  // namespace

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
  v1::for_each_field([&](auto i) { format_field<i>(w, r, target_id, checker_id, location_id); });
  w.finish(fields_);
  return fields_;
}

std::optional<std::string_view> CopyRow::operator[](std::size_t i) const {
  if (!fields_.at(i)) return std::nullopt;
  return std::string_view(fields_[i]);
}

}  // namespace webmon::writer
