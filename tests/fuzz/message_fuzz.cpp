// Fuzz target: the v1 message codec. The input is a Kafka message value as the writer receives
// it. Whatever the bytes, decode_check_result returns a result or a reason; a result encodes
// (as the checker would write it) into a message that decodes to the same result. The input is
// also used as the text of every string field a checker fills, whose encoding must always
// decode (a server's bytes end up in error_detail).
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <variant>

#include "fuzz_check.hpp"
#include "webmon/common/check_result.hpp"

namespace {

using namespace webmon;
using namespace std::chrono;

constexpr std::size_t kNoLimit = std::numeric_limits<std::size_t>::max();

CheckResult decode_or_die(const std::string& json, std::string_view what) {
  auto decoded = decode_check_result(json, kNoLimit);
  if (auto* e = std::get_if<DecodeError>(&decoded)) {
    webmon::fuzz::property_failed("an encoded message decodes", std::string(what) + ": " + e->reason + "\n" + json,
                                  __FILE__, __LINE__);
  }
  return std::get<CheckResult>(std::move(decoded));
}

// decode(x) == r  =>  decode(encode(r)) == r.
void round_trip(const CheckResult& r) {
  const std::string again = encode_check_result(r);
  const CheckResult back = decode_or_die(again, "re-encoding of a decoded message");
  WEBMON_FUZZ_CHECK(back == r, "decoded, encoded and decoded again, the result differs:\n" + again);
  WEBMON_FUZZ_CHECK(encode_check_result(back) == again, "encoding is not stable:\n" + again);
}

// The checker's strings may hold any bytes; what it encodes must decode, as valid UTF-8.
void encode_any_text(std::string_view text) {
  CheckResult r;
  r.target = text.empty() ? std::string("t") : std::string(text);
  r.url = std::string(text);
  r.scheduled_at = SysMillis{sys_days{2024y / 5 / 1} + 12h};
  r.started_at = r.scheduled_at + 3ms;
  r.error = ErrorClass::protocol;
  r.error_detail = std::string(text);
  r.peer = std::string(text);
  r.checker = std::string(text);
  r.location = std::string(text);  // written only when not empty
  r.timings.total = 0.5;
  const std::string json = encode_check_result(r);
  const CheckResult back = decode_or_die(json, "a result whose strings are the input");
  // Valid UTF-8 is kept, any other byte replaced (not dropped), and the result is stable.
  WEBMON_FUZZ_CHECK(back.error_detail.empty() == text.empty(), json);
  WEBMON_FUZZ_CHECK(encode_check_result(back) == json, "sanitised strings change when encoded again:\n" + json);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input = webmon::fuzz::as_text(data, size);
  auto decoded = decode_check_result(input);
  if (auto* r = std::get_if<CheckResult>(&decoded)) {
    WEBMON_FUZZ_CHECK(!r->target.empty(), "decoded a message without a target");
    round_trip(*r);
  } else {
    WEBMON_FUZZ_CHECK(!std::get<DecodeError>(decoded).reason.empty(), "a refusal without a reason");
  }
  // The size limit refuses before parsing, whatever the bytes.
  if (size > 0) {
    auto limited = decode_check_result(input, size - 1);
    WEBMON_FUZZ_CHECK(std::holds_alternative<DecodeError>(limited), "a message over max_bytes was decoded");
  }
  encode_any_text(input);
  return 0;
}
