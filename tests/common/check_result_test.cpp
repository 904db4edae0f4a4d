#include "webmon/common/check_result.hpp"

#include <chrono>
#include <string>

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include "check_result_samples.hpp"

namespace webmon {
namespace {

using namespace std::chrono;
namespace json = boost::json;

std::string decode_error(std::string_view text, std::size_t max = 1024 * 1024) {
  auto r = decode_check_result(text, max);
  if (std::holds_alternative<CheckResult>(r)) {
    ADD_FAILURE() << "decoded: " << text;
    return {};
  }
  return std::get<DecodeError>(r).reason;
}

CheckResult decode_ok(std::string_view text) {
  auto r = decode_check_result(text);
  if (auto* e = std::get_if<DecodeError>(&r)) {
    ADD_FAILURE() << e->reason << "\n" << text;
    return {};
  }
  return std::get<CheckResult>(r);
}

// The encoded sample with one field's JSON replaced (or removed when `value` is empty).
std::string with_field(std::string_view name, std::string_view value) {
  json::object o = json::parse(encode_check_result(test::sample_success())).as_object();
  if (value.empty()) o.erase(name);
  else o[name] = json::parse(value);
  return json::serialize(o);
}

TEST(Rfc3339, FormatsUtcWithMilliseconds) {
  EXPECT_EQ(format_rfc3339_ms(SysMillis{}), "1970-01-01T00:00:00.000Z");
  const SysMillis t = sys_days{2024y / 5 / 1} + 12h + 3min + 4s + 5ms;
  EXPECT_EQ(format_rfc3339_ms(t), "2024-05-01T12:03:04.005Z");
  EXPECT_EQ(format_rfc3339_ms(sys_days{2024y / 12 / 31} + 23h + 59min + 59s + 999ms), "2024-12-31T23:59:59.999Z");
  EXPECT_EQ(format_rfc3339_ms(SysMillis{} - 1ms), "1969-12-31T23:59:59.999Z");
}

TEST(Rfc3339, ParsesWhatItFormatsAndOtherOffsets) {
  const SysMillis t = sys_days{2024y / 2 / 29} + 1h + 2min + 3s + 40ms;
  EXPECT_EQ(parse_rfc3339(format_rfc3339_ms(t)), t);
  EXPECT_EQ(parse_rfc3339("2024-02-29T01:02:03.04Z"), t);
  EXPECT_EQ(parse_rfc3339("2024-02-29T01:02:03.040999Z"), t);  // finer than ms is truncated
  EXPECT_EQ(parse_rfc3339("2024-02-29T03:02:03.040+02:00"), t);
  EXPECT_EQ(parse_rfc3339("2024-02-28T23:32:03.040-01:30"), t);
  EXPECT_EQ(parse_rfc3339("2024-02-29t01:02:03.040z"), t);
  EXPECT_EQ(parse_rfc3339("2024-02-29T01:02:03Z"), t - 40ms);
}

TEST(Rfc3339, RefusesWhatIsNotRfc3339) {
  for (const char* s : {"", "2024-02-29", "2024-02-30T00:00:00Z", "2023-02-29T00:00:00Z", "2024-13-01T00:00:00Z",
                        "2024-01-01T24:00:00Z", "2024-01-01T00:60:00Z", "2024-01-01T00:00:00", "2024-01-01T00:00:00.Z",
                        "2024-01-01T00:00:00Zjunk", "2024-01-01T00:00:00+0100", "2024/01/01T00:00:00Z",
                        "1714564800"}) {
    EXPECT_FALSE(parse_rfc3339(s).has_value()) << s;
  }
}

TEST(CheckResultCodec, RoundTripsEveryShape) {
  for (const auto& r : test::sample_results()) {
    const auto text = encode_check_result(r);
    EXPECT_EQ(decode_ok(text), r) << text;
  }
}

TEST(CheckResultCodec, EncodesTheDocumentedFields) {
  const auto v = json::parse(encode_check_result(test::sample_success())).as_object();
  EXPECT_EQ(v.at("schema_version").as_int64(), 1);
  EXPECT_EQ(v.at("target").as_string(), "example");
  EXPECT_EQ(v.at("scheduled_at").as_string(), "2024-05-01T12:00:00.000Z");
  EXPECT_EQ(v.at("started_at").as_string(), "2024-05-01T12:00:00.002Z");
  EXPECT_EQ(v.at("http_status").as_int64(), 200);
  EXPECT_TRUE(v.at("error").is_null());
  EXPECT_TRUE(v.at("error_detail").is_null());
  EXPECT_EQ(v.at("timings").as_object().size(), 6u);
  EXPECT_EQ(v.size(), 18u);
  EXPECT_EQ(v.at("dns_cached").as_bool(), false);
  // Durations are plain decimals people can read in kcat, not 2.5E-1.
  EXPECT_NE(encode_check_result(test::sample_success()).find("\"total\":0.25"), std::string::npos);

  const auto dns = json::parse(encode_check_result(test::sample_dns_error())).as_object();
  EXPECT_EQ(dns.at("error").as_string(), "dns");
  EXPECT_TRUE(dns.at("http_status").is_null());
  EXPECT_TRUE(dns.at("http_response_time").is_null());
  EXPECT_TRUE(dns.at("peer").is_null());
  EXPECT_TRUE(dns.at("timings").as_object().at("connect").is_null());
}

TEST(CheckResultCodec, DnsCachedIsAnAddedFieldThatOlderMessagesLack) {
  // A message from a checker older than dns_cached: the field is absent and reads as null.
  auto old = json::parse(encode_check_result(test::sample_success())).as_object();
  old.erase("dns_cached");
  const CheckResult r = decode_ok(json::serialize(old));
  EXPECT_FALSE(r.dns_cached.has_value());
  EXPECT_EQ(r.target, "example");
  // Present, it is a boolean or null, and nothing else.
  auto bad = json::parse(encode_check_result(test::sample_success())).as_object();
  bad["dns_cached"] = "yes";
  const auto refused = decode_check_result(json::serialize(bad));
  ASSERT_TRUE(std::holds_alternative<DecodeError>(refused));
  EXPECT_EQ(std::get<DecodeError>(refused).reason, "field dns_cached: expected boolean or null");
  auto literal = test::sample_success();  // an IP literal: no lookup was made
  literal.dns_cached.reset();
  EXPECT_TRUE(json::parse(encode_check_result(literal)).as_object().at("dns_cached").is_null());
}

TEST(CheckResultCodec, LocationIsWrittenOnlyWhenSet) {
  // With a location: the last field, and it reads back.
  const auto located = test::sample_located();
  const auto text = encode_check_result(located);
  EXPECT_NE(text.find(",\"location\":\"eu-west\"}"), std::string::npos) << text;
  EXPECT_EQ(decode_ok(text).location, "eu-west");
  EXPECT_EQ(decode_ok(text), located);
  // Without one (the default), the message is what it was before the field existed: no key at all.
  auto plain = located;
  plain.location.clear();
  const auto plain_text = encode_check_result(plain);
  EXPECT_EQ(plain_text.find("location"), std::string::npos) << plain_text;
  EXPECT_EQ(json::parse(plain_text).as_object().size(), 18u);
  EXPECT_EQ(plain_text.substr(plain_text.size() - 18), "\"dns_cached\":true}");
  EXPECT_EQ(decode_ok(plain_text), plain);
  // A location with characters JSON must escape survives the round trip.
  auto odd = located;
  odd.location = "r\xc3\xa9gion \"1\"\\";
  EXPECT_EQ(decode_ok(encode_check_result(odd)).location, odd.location);
}

TEST(CheckResultCodec, LocationAbsentNullOrEmptyIsNoLocation) {
  // Messages of checkers older than the field have no key "location": they still decode.
  const auto old = with_field("location", "");
  EXPECT_EQ(old.find("location"), std::string::npos);
  const CheckResult r = decode_ok(old);
  EXPECT_EQ(r.location, "");
  EXPECT_EQ(r, test::sample_success());
  EXPECT_EQ(decode_ok(with_field("location", "null")).location, "");
  EXPECT_EQ(decode_ok(with_field("location", "\"\"")).location, "");
  EXPECT_EQ(decode_ok(with_field("location", "\"ap-south\"")).location, "ap-south");
  // Present, it is a string or null, and nothing else.
  EXPECT_EQ(decode_error(with_field("location", "3")), "field location: expected string or null");
  EXPECT_EQ(decode_error(with_field("location", "[\"eu\"]")), "field location: expected string or null");
  EXPECT_EQ(decode_error(with_field("location", "{}")), "field location: expected string or null");
}

TEST(CheckResultCodec, StringsAreEscapedAndMadeValidUtf8) {
  CheckResult r = test::sample_success();
  r.error = ErrorClass::protocol;
  r.error_detail = std::string("bad \"status\" line: \x01\\\n\xff\xc3(", 25) + "caf\xc3\xa9";
  const auto text = encode_check_result(r);
  const auto back = decode_ok(text);  // Boost.JSON refuses invalid UTF-8, so this proves validity
  EXPECT_EQ(back.error_detail, "bad \"status\" line: \x01\\\n\xef\xbf\xbd\xef\xbf\xbd(caf\xc3\xa9");
}

TEST(CheckResultCodec, UnknownFieldsAreIgnored) {
  json::object o = json::parse(encode_check_result(test::sample_success())).as_object();
  o["added_in_a_later_v1"] = json::parse(R"({"nested":[1,2,3]})");
  o["timings"].as_object()["queue"] = 0.5;
  EXPECT_EQ(decode_ok(json::serialize(o)), test::sample_success());
}

TEST(CheckResultCodec, EscapedKeysAndStringsAreReadAsTheirText) {
  // \u0065 is "e": the key is "target" and the value "ex\"ample", however they are written.
  std::string text = encode_check_result(test::sample_success());
  const auto key = text.find("\"target\":\"example\"");
  ASSERT_NE(key, std::string::npos);
  text.replace(key, 18, R"("targ\u0065t":"ex\"ampl\u0065")");
  EXPECT_EQ(decode_ok(text).target, "ex\"ample");
}

TEST(CheckResultCodec, ARepeatedKeyKeepsItsLastValue) {
  const auto text = encode_check_result(test::sample_success());
  // A second "http_status" and a second, whole "timings" after the first ones.
  const auto decoded = decode_ok(text.substr(0, text.size() - 1) +
                                 R"(,"http_status":503,"timings":{"dns":null,"connect":null,"tls":null,)"
                                 R"("ttfb":null,"transfer":null,"total":2}})");
  EXPECT_EQ(decoded.http_status, 503);
  EXPECT_EQ(decoded.timings.total, 2.0);
  EXPECT_EQ(decoded.timings.dns, std::nullopt);
  // A later "timings" replaces the earlier one as a whole: a field only the first had is gone.
  EXPECT_EQ(decode_error(text.substr(0, text.size() - 1) + R"(,"timings":{"total":2}})"), "missing field dns");
}

TEST(CheckResultCodec, NestedValuesOfUnknownFieldsCannotPoseAsFields) {
  json::object o = json::parse(encode_check_result(test::sample_success())).as_object();
  o["extra"] = json::parse(R"({"target":"not this","timings":{"total":99},"http_status":[500]})");
  o["timings"].as_object()["detail"] = json::parse(R"({"total":99,"dns":[1,2]})");
  EXPECT_EQ(decode_ok(json::serialize(o)), test::sample_success());
}

TEST(CheckResultCodec, RefusesTrailingDataAndDeepNesting) {
  const auto text = encode_check_result(test::sample_success());
  EXPECT_EQ(decode_error(text + " {}").rfind("not JSON: ", 0), 0u);
  EXPECT_EQ(decode_error(std::string(100, '[') + std::string(100, ']')).rfind("not JSON: ", 0), 0u);
}

TEST(CheckResultCodec, IntegralDurationsAreNumbersToo) {
  auto r = decode_ok(with_field("http_response_time", "1"));
  EXPECT_EQ(r.http_response_time, 1.0);
}

TEST(CheckResultCodec, RefusesTruncatedAndNonObjects) {
  const auto text = encode_check_result(test::sample_success());
  for (std::size_t cut : {std::size_t{0}, std::size_t{1}, text.size() / 2, text.size() - 1}) {
    EXPECT_EQ(decode_error(text.substr(0, cut)).rfind("not JSON: ", 0), 0u) << cut;
  }
  EXPECT_EQ(decode_error("[1,2]"), "not a JSON object");
  EXPECT_EQ(decode_error("\"x\""), "not a JSON object");
  EXPECT_EQ(decode_error(std::string("\xff\xfe{}", 4)).rfind("not JSON: ", 0), 0u);
}

TEST(CheckResultCodec, RefusesOversizeWithoutParsing) {
  const std::string big(2000, '{');  // not even JSON: refused for its size first
  EXPECT_EQ(decode_error(big, 1000), "message of 2000 bytes exceeds the limit of 1000 bytes");
  const auto text = encode_check_result(test::sample_success());
  EXPECT_NE(decode_error(text, text.size() - 1).find("exceeds the limit"), std::string::npos);
  EXPECT_TRUE(std::holds_alternative<CheckResult>(decode_check_result(text, text.size())));  // at the limit
}

TEST(CheckResultCodec, RefusesUnknownSchemaVersion) {
  EXPECT_EQ(decode_error(with_field("schema_version", "2")), "unknown schema_version 2");
  EXPECT_EQ(decode_error(with_field("schema_version", "0")), "unknown schema_version 0");
  EXPECT_EQ(decode_error(with_field("schema_version", "\"1\"")), "field schema_version: expected integer");
  EXPECT_EQ(decode_error(with_field("schema_version", "1.0")), "field schema_version: expected integer");
  EXPECT_EQ(decode_error(with_field("schema_version", "")), "missing field schema_version");
  // The version is judged before anything else in the message.
  json::object o = json::parse(with_field("schema_version", "2")).as_object();
  o.erase("target");
  EXPECT_EQ(decode_error(json::serialize(o)), "unknown schema_version 2");
}

TEST(CheckResultCodec, RefusesMissingRequiredFields) {
  for (const char* f : {"target", "url", "scheduled_at", "started_at", "http_response_time", "http_status",
                        "regexp_match", "ok", "error", "error_detail", "timings", "body_bytes", "redirects",
                        "tls_cert_not_after", "peer", "checker"}) {
    EXPECT_EQ(decode_error(with_field(f, "")), std::string("missing field ") + f);
  }
  json::object o = json::parse(encode_check_result(test::sample_success())).as_object();
  o["timings"].as_object().erase("total");
  EXPECT_EQ(decode_error(json::serialize(o)), "missing field total");
}

TEST(CheckResultCodec, RefusesWrongTypes) {
  EXPECT_EQ(decode_error(with_field("target", "42")), "field target: expected string");
  EXPECT_EQ(decode_error(with_field("target", "\"\"")), "field target: empty");
  EXPECT_EQ(decode_error(with_field("url", "null")), "field url: expected string");
  EXPECT_EQ(decode_error(with_field("scheduled_at", "1714564800")), "field scheduled_at: expected RFC 3339 time string");
  EXPECT_EQ(decode_error(with_field("started_at", "\"yesterday\"")), "field started_at: not an RFC 3339 time");
  EXPECT_EQ(decode_error(with_field("http_response_time", "\"0.1\"")),
            "field http_response_time: expected number or null");
  EXPECT_EQ(decode_error(with_field("http_response_time", "-0.5")), "field http_response_time: negative duration");
  EXPECT_EQ(decode_error(with_field("http_status", "\"200\"")), "field http_status: expected integer or null");
  EXPECT_EQ(decode_error(with_field("http_status", "200.5")), "field http_status: expected integer or null");
  EXPECT_EQ(decode_error(with_field("http_status", "1000")), "field http_status: 1000 out of range");
  EXPECT_EQ(decode_error(with_field("regexp_match", "1")), "field regexp_match: expected boolean or null");
  EXPECT_EQ(decode_error(with_field("ok", "null")), "field ok: expected boolean");
  EXPECT_EQ(decode_error(with_field("ok", "\"true\"")), "field ok: expected boolean");
  EXPECT_EQ(decode_error(with_field("error", "\"bogus\"")), "field error: unknown class \"bogus\"");
  EXPECT_EQ(decode_error(with_field("error", "\"\"")), "field error: unknown class \"\"");
  EXPECT_EQ(decode_error(with_field("error", "3")), "field error: expected string or null");
  EXPECT_EQ(decode_error(with_field("error_detail", "[]")), "field error_detail: expected string or null");
  EXPECT_EQ(decode_error(with_field("timings", "[]")), "field timings: expected object");
  EXPECT_EQ(decode_error(with_field("timings", R"({"dns":null,"connect":null,"tls":null,"ttfb":null,"transfer":null,"total":null})")),
            "field total: expected number");
  EXPECT_EQ(decode_error(with_field("timings", R"({"dns":"x","connect":null,"tls":null,"ttfb":null,"transfer":null,"total":1})")),
            "field dns: expected number or null");
  EXPECT_EQ(decode_error(with_field("body_bytes", "-1")), "field body_bytes: negative");
  EXPECT_EQ(decode_error(with_field("body_bytes", "1.5")), "field body_bytes: expected non-negative integer");
  EXPECT_EQ(decode_error(with_field("redirects", "-1")), "field redirects: -1 out of range");
  EXPECT_EQ(decode_error(with_field("redirects", "true")), "field redirects: expected non-negative integer");
  EXPECT_EQ(decode_error(with_field("tls_cert_not_after", "0")),
            "field tls_cert_not_after: expected RFC 3339 time string or null");
  EXPECT_EQ(decode_error(with_field("peer", "false")), "field peer: expected string or null");
  EXPECT_EQ(decode_error(with_field("checker", "null")), "field checker: expected string");
}

TEST(CheckResultCodec, ErrorClassNames) {
  for (auto e : {ErrorClass::dns, ErrorClass::connect, ErrorClass::tls, ErrorClass::timeout, ErrorClass::protocol,
                 ErrorClass::too_many_redirects}) {
    EXPECT_EQ(error_class_from_string(to_string(e)), e);
  }
  EXPECT_EQ(to_string(ErrorClass::none), "");
  EXPECT_FALSE(error_class_from_string("none"));
  EXPECT_FALSE(error_class_from_string("DNS"));
}

}  // namespace
}  // namespace webmon
