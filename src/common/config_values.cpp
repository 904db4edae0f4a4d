#include "config_values.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <map>
#include <optional>
#include <sstream>

#include <arpa/inet.h>
#include <librdkafka/rdkafka.h>

#include "webmon/common/kafka.hpp"
#include "webmon/common/logging.hpp"
#include "webmon/common/text.hpp"

namespace webmon::config_detail {

using yaml::kind_name;

namespace {

bool is_ip(std::string_view text) {
  unsigned char buf[16];
  const std::string s(text);
  return ::inet_pton(AF_INET, s.c_str(), buf) == 1 || ::inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

bool is_secret_property(std::string_view name) {
  const auto n = ascii_lower(name);
  return n.find("password") != std::string::npos || n.find("secret") != std::string::npos ||
         n.find("token") != std::string::npos;
}

bool is_secret_header(std::string_view name) {
  const auto n = ascii_lower(name);
  return n == "authorization" || n == "proxy-authorization" || n == "cookie" || n.find("token") != std::string::npos ||
         n.find("api-key") != std::string::npos || n.find("secret") != std::string::npos;
}

}  // namespace

bool kafka_name_chars(std::string_view v) noexcept {
  return std::all_of(v.begin(), v.end(), [](unsigned char c) { return std::isalnum(c) || c == '.' || c == '_' || c == '-'; });
}

// ---------------------------------------------------------------------------------------------
// Keys with rules of their own

void parse_bootstrap(Reader& r, const Field& f, const std::string& path, KafkaConfig& k) {
  // The earlier tool wrote a string; a YAML list of host:port is accepted too.
  std::vector<std::string> servers;
  if (f.value.IsSequence()) {
    for (std::size_t i = 0; i < f.value.size(); ++i) {
      if (auto v = r.string_value(Field{f.key, f.value[i]}, path + "[" + std::to_string(i) + "]")) servers.push_back(*v);
    }
  } else if (auto v = r.string_value(f, path)) {
    std::stringstream ss(*v);
    for (std::string part; std::getline(ss, part, ',');) {
      part.erase(0, part.find_first_not_of(" \t"));
      part.erase(part.find_last_not_of(" \t") + 1);
      servers.push_back(part);
    }
  }
  if (servers.empty()) return r.error_at(f, path, "must not be empty");
  for (const auto& srv : servers) {
    const auto hp = parse_host_port(srv);
    if (!hp || hp->host.empty() || *hp->port == 0) {
      return r.error_at(f, path, "expected host:port[,host:port...], got " + show(srv));
    }
  }
  for (const auto& srv : servers) k.bootstrap_servers += (k.bootstrap_servers.empty() ? "" : ",") + srv;
}

namespace {

std::optional<std::string> topic_name(Reader& r, const Field& f, const std::string& path) {
  auto v = r.nonempty_string(f, path);
  if (!v) return std::nullopt;
  if (v->size() <= 249 && *v != "." && *v != ".." && kafka_name_chars(*v)) return v;
  r.error_at(f, path, "not a legal Kafka topic name (1..249 of a-z A-Z 0-9 . _ -): " + show(*v));
  return std::nullopt;
}

}  // namespace

void parse_topic(Reader& r, const Field& f, const std::string& path, KafkaConfig& k) {
  if (auto v = topic_name(r, f, path)) k.topic = *v;
}

void parse_coordination_topic(Reader& r, const Field& f, const std::string& path, KafkaConfig& k) {
  if (auto v = topic_name(r, f, path)) k.coordination_topic = *v;
}

void parse_properties(Reader& r, const Field& f, const std::string& path, KafkaConfig& k) {
  if (!f.value.IsMap()) return r.error_at(f, path, "expected a mapping of librdkafka properties, got " + kind_name(f.value));
  // librdkafka is the judge of its own properties: each is set on a scratch conf and its refusal,
  // in its own words, is reported at the property's line.
  kafka::ConfPtr scratch(rd_kafka_conf_new());
  std::map<std::string, int, std::less<>> seen;
  for (std::size_t i = 0; i < f.value.size(); ++i) {
    const Field item{f.value.key(i), f.value.value(i)};
    if (!item.key.IsScalar()) {
      r.add_error(item.key.Mark(), path, "a property name must be a string");
      continue;
    }
    const std::string name = item.key.Scalar();
    const std::string key = path + "." + name;
    if (auto [pos, inserted] = seen.emplace(name, item.key.Mark().line + 1); !inserted) {
      r.add_error(item.key.Mark(), key, "duplicate key (first given at line " + std::to_string(pos->second) + ")");
      continue;
    }
    if (item.value.IsNull()) {
      r.error_at(item, key, "needs a value");
      continue;
    }
    auto value = r.scalar(item, key, "a scalar value");
    if (!value) continue;
    std::array<char, 512> err{};
    if (rd_kafka_conf_set(scratch.get(), name.c_str(), value->c_str(), err.data(), err.size()) != RD_KAFKA_CONF_OK) {
      r.error_at(item, key, "librdkafka: " + std::string(err.data()));
      continue;
    }
    if (is_secret_property(name)) register_secret(*value);
    // The brokers given here satisfy kafka.bootstrap_servers (the row's required check).
    if ((name == "bootstrap.servers" || name == "metadata.broker.list") && k.bootstrap_servers.empty()) {
      k.bootstrap_servers = *value;
    }
    k.properties.emplace_back(name, *value);
  }
}

void parse_mechanism(Reader& r, const Field& f, const std::string& path, KafkaSasl& s) {
  static constexpr std::string_view kMechanisms[] = {"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER", "GSSAPI"};
  auto v = r.scalar(f, path, "a SASL mechanism");
  if (!v) return;
  const std::string upper = ascii_upper(*v);
  if (std::find(std::begin(kMechanisms), std::end(kMechanisms), upper) != std::end(kMechanisms)) s.mechanism = upper;
  else r.error_at(f, path, "expected one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER, GSSAPI, got " + show(*v));
}

void parse_password(Reader& r, const Field& f, const std::string& path, KafkaSasl& s) {
  if (auto v = r.string_value(f, path)) {
    s.password = *v;
    register_secret(*v);
  }
}

void parse_servers(Reader& r, const Field& f, const std::string& path, CheckerDns& d) {
  if (!f.value.IsSequence()) {
    return r.error_at(f, path, "expected a list of name server addresses like [\"10.0.0.2\", \"[::1]:5353\"], got " +
                                   kind_name(f.value));
  }
  for (std::size_t i = 0; i < f.value.size(); ++i) {
    const Field item{f.key, f.value[i]};
    const auto key = path + "[" + std::to_string(i) + "]";
    auto v = r.nonempty_string(item, key);
    if (!v) continue;
    // What c-ares takes for a name server: an IP address, optionally with a port (a host name
    // cannot be: it would need a resolver to find the resolver).
    const auto hp = parse_host_port(*v, true);
    if (!hp || !is_ip(hp->host) || (hp->port && *hp->port == 0) || (hp->port && !hp->bracketed && hp->host.find(':') != std::string_view::npos)) {
      r.error_at(item, key, "expected an IP address with an optional port (10.0.0.2, 10.0.0.2:5353, [::1]:5353), got " + show(*v));
      continue;
    }
    d.servers.push_back(*v);
  }
}

void parse_checker_id(Reader& r, const Field& f, const std::string& path, CheckerSection& c) {
  auto v = r.nonempty_string(f, path);
  if (v && v->size() > 255) r.error_at(f, path, "longer than 255 characters");
  else if (v) c.instance_id = *v;
}

void parse_writer_id(Reader& r, const Field& f, const std::string& path, WriterSection& w) {
  auto v = r.nonempty_string(f, path);
  if (!v) return;
  // Kafka's rule for group.instance.id (a host name always passes).
  if (v->size() > 249) r.error_at(f, path, "longer than 249 characters");
  else if (!kafka_name_chars(*v)) r.error_at(f, path, "only ASCII letters, digits, '.', '_' and '-' are allowed");
  else w.instance_id = *v;
}

void parse_location(Reader& r, const Field& f, const std::string& path, CheckerSection& c) {
  auto v = r.string_value(f, path);
  if (!v || v->empty()) return;  // empty: no location
  // A label in messages, tables and dashboards, and part of the default group id.
  if (v->size() > 64) r.error_at(f, path, "longer than 64 characters");
  else if (!kafka_name_chars(*v)) r.error_at(f, path, "only ASCII letters, digits, '.', '_' and '-' are allowed: " + show(*v));
  else c.location = *v;
}

void parse_group(Reader& r, const Field& f, const std::string& path, CheckerSection& c) {
  auto v = r.nonempty_string(f, path);
  if (!v) return;
  const bool printable = std::all_of(v->begin(), v->end(), [](unsigned char ch) { return ch > 0x20 && ch < 0x7f; });
  if (v->size() > 249) r.error_at(f, path, "longer than 249 characters");
  else if (!printable) r.error_at(f, path, "must be printable ASCII without spaces: " + show(*v));
  else c.group = *v;
}

void parse_name(Reader& r, const Field& f, const std::string& path, TargetConfig& t) {
  auto v = r.nonempty_string(f, path);
  if (!v) return;
  const bool ascii = std::all_of(v->begin(), v->end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u >= 0x20 && u < 0x7f;
  });
  if (v->size() > 128) {
    r.error_at(f, path, "longer than 128 characters (" + std::to_string(v->size()) + ")");
  } else if (!ascii) {
    r.error_at(f, path, "must be printable ASCII (it is the Kafka key and a label): " + show(*v));
  } else if (auto [pos, inserted] = r.target_names.emplace(*v, Reader::where(f).line + 1); !inserted) {
    r.error_at(f, path, "duplicate target name " + show(*v) + " (first at line " + std::to_string(pos->second) + ")");
  } else {
    t.name = *v;
  }
}

void parse_url(Reader& r, const Field& f, const std::string& path, TargetConfig& t) {
  auto v = r.nonempty_string(f, path);
  if (!v) return;
  std::string why;
  if (auto parsed = parse_http_url(*v, &why)) {
    t.url = *v;
    t.parsed_url = std::move(*parsed);
  } else {
    r.error_at(f, path, "not an http:// or https:// URL: " + why + ": " + show(*v));
  }
}

// JIT-compiled by the checker only: no other binary searches bodies (they check the pattern with
// the interpreter's compile, which is cheap).
void parse_regexp(Reader& r, const Field& f, const std::string& path, TargetConfig& t) {
  auto v = r.string_value(f, path);
  if (!v || v->empty()) return;
  t.regexp_source = *v;
  if (auto it = r.regexps.find(*v); it != r.regexps.end()) {
    t.regexp = it->second;
    return;
  }
  auto compiled = Regex::compile(*v, r.checker());
  if (auto* e = std::get_if<Regex::CompileError>(&compiled)) {
    r.error_at(f, path, "PCRE2 refuses " + show(*v) + ": " + e->message + " at offset " + std::to_string(e->offset));
  } else {
    t.regexp = std::get<std::shared_ptr<const Regex>>(compiled);
    r.regexps.emplace(*v, t.regexp);
  }
}

// Looked for by the checker only (it is the one that reads it).
void parse_ca_file(Reader& r, const Field& f, const std::string& path, TargetConfig& t) {
  auto v = r.nonempty_string(f, path);
  if (!v) return;
  if (!r.checker()) t.ca_file = *v;
  else if (auto resolved = r.existing_file(&f, {}, path, *v)) t.ca_file = *resolved;
}

void parse_headers(Reader& r, const Field& f, const std::string& path, TargetConfig& t) {
  if (!f.value.IsMap()) return r.error_at(f, path, "expected a mapping of header names to values, got " + kind_name(f.value));
  std::map<std::string, int, std::less<>> seen;
  for (std::size_t i = 0; i < f.value.size(); ++i) {
    const Field item{f.value.key(i), f.value.value(i)};
    if (!item.key.IsScalar()) {
      r.add_error(item.key.Mark(), path, "a header name must be a string");
      continue;
    }
    const std::string name = item.key.Scalar();
    const std::string key = path + "." + name;
    const bool token = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
    });
    const auto lname = ascii_lower(name);
    if (!token) {
      r.add_error(item.key.Mark(), key, "not a valid HTTP header name: " + show(name));
    } else if (lname == "content-length" || lname == "transfer-encoding" || lname == "connection") {
      r.add_error(item.key.Mark(), key, "set by the checker itself; it cannot be configured");
    } else if (auto [pos, inserted] = seen.emplace(lname, item.key.Mark().line + 1); !inserted) {
      r.add_error(item.key.Mark(), key, "duplicate header (first given at line " + std::to_string(pos->second) + ")");
    } else if (item.value.IsNull()) {
      t.headers.emplace_back(name, "");
    } else if (auto value = r.scalar(item, key, "a string")) {
      if (value->find_first_of("\r\n") != std::string::npos || value->find('\0') != std::string::npos) {
        r.error_at(item, key, "a header value must not contain CR, LF or NUL");
        continue;
      }
      if (is_secret_header(name)) register_secret(*value);
      t.headers.emplace_back(name, *value);
    }
  }
}

void parse_status_codes(Reader& r, const Field& f, const std::string& path, TargetConfig& t) {
  if (!f.value.IsSequence()) {
    return r.error_at(f, path, "expected a list of status codes and ranges like [200, \"300-399\"], got " + kind_name(f.value));
  }
  if (f.value.size() == 0) return r.error_at(f, path, "must not be empty (leave it out for the default 200-299)");
  auto parse_code = [](std::string_view s) -> std::optional<int> {
    while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
    while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
    int code = 0;
    const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), code);
    if (s.empty() || ec != std::errc{} || ptr != s.data() + s.size() || code < 100 || code > 599) return std::nullopt;
    return code;
  };
  std::vector<StatusRange> ranges;
  bool ok = true;
  for (std::size_t i = 0; i < f.value.size(); ++i) {
    const Field item{f.key, f.value[i]};
    const auto key = path + "[" + std::to_string(i) + "]";
    auto v = r.scalar(item, key, "a status code or a range like 200-299");
    if (!v) {
      ok = false;
      continue;
    }
    const auto dash = v->find('-');
    const auto lo = parse_code(std::string_view(*v).substr(0, dash));
    const auto hi = dash == std::string::npos ? lo : parse_code(std::string_view(*v).substr(dash + 1));
    if (!lo || !hi || *lo > *hi) {
      r.error_at(item, key, "expected a status code (100-599) or a range like \"200-299\", got " + show(*v));
      ok = false;
      continue;
    }
    ranges.push_back({*lo, *hi});
  }
  if (ok) t.valid_status_codes = std::move(ranges);
}

}  // namespace webmon::config_detail
