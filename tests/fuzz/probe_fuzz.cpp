// Fuzz target: the probe against a server that answers with the fuzzer's bytes. An in-process
// server on 127.0.0.1 (port 0) reads the request and sends the input as the response; the real
// probe (probe_fn, as the scheduler calls it) reads it. Whatever the bytes, the probe ends
// within its deadline with one result that keeps the promises of probe.hpp, gives back what it
// held of the body budget, and encodes into a message that decodes; a regexp's answer is the
// one a search of the whole body (parsed here independently) gives.
//
// Input: one byte of options, then the response.
//   bits 0-1  regexp: none, or one of three patterns (kPatterns)
//   bits 2-3  method: GET, HEAD, POST (with a body), GET
//   bit 4     follow redirects (at most 2; only with a private network namespace, see below)
//   bit 5     max_body_bytes 100 instead of 1 MiB
//   bit 6     max_header_bytes 256 instead of 64 KiB
//   bit 7     a body budget of 1 KiB instead of 64 MiB
//
// Redirects may point anywhere, so the process first moves into a network namespace of its own
// with only `lo` (as root, or through a user namespace): a Location then reaches nothing but
// this server, which listens on 127.0.0.1:18080 there. Without one, the server takes port 0 and
// redirects are not followed.
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include "fuzz_check.hpp"
#include "webmon/checker/probe.hpp"
#include "webmon/checker/resolver.hpp"
#include "webmon/common/check_result.hpp"
#include "webmon/common/http_url.hpp"
#include "webmon/common/regex.hpp"

namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using namespace webmon;
using namespace webmon::checker;
using boost::system::error_code;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr auto kUse = asio::as_tuple(asio::use_awaitable);
// The probe's deadline. Each input ends long before it (the server closes after its bytes), so
// it is generous: a loaded machine must not turn into findings.
constexpr auto kTimeout = 10s;
constexpr std::size_t kSmallHeaderLimit = 256;
constexpr std::size_t kSmallBodyCap = 100;
constexpr std::size_t kTinyBudget = 1024;
constexpr int kMaxRedirects = 2;
constexpr unsigned short kIsolatedPort = 18080;
constexpr int kMaxInformational = 8;  // as probe.cpp
// A match may straddle reads and chunks; one anchored at the body's start; one on UTF-8.
constexpr const char* kPatterns[] = {"status: *(ok|healthy)", "^<!doctype", "caf\xc3\xa9\\d+"};

// ---------------------------------------------------------------------------------------------
// A network namespace with only lo up.

std::string isolate_network() {
  if (::unshare(CLONE_NEWNET) != 0) {
    const int first = errno;
    // Not root: a user namespace of our own gives the right to make one.
    const uid_t uid = ::getuid();
    const gid_t gid = ::getgid();
    if (::unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0) {
      return std::string("unshare(CLONE_NEWNET): ") + std::strerror(first) + "; with CLONE_NEWUSER: " + std::strerror(errno);
    }
    std::ofstream("/proc/self/setgroups") << "deny";
    std::ofstream("/proc/self/uid_map") << uid << ' ' << uid << " 1";
    std::ofstream("/proc/self/gid_map") << gid << ' ' << gid << " 1";
  }
  const int s = ::socket(AF_INET, SOCK_DGRAM, 0);
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  std::string failure;
  if (s < 0 || ::ioctl(s, SIOCGIFFLAGS, &ifr) != 0) {
    failure = std::string("lo flags: ") + std::strerror(errno);
  } else {
    ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
    if (::ioctl(s, SIOCSIFFLAGS, &ifr) != 0) failure = std::string("lo up: ") + std::strerror(errno);
  }
  if (s >= 0) ::close(s);
  return failure;
}

// ---------------------------------------------------------------------------------------------
// The server: every connection gets `payload`, then is drained until the client closes, and
// reset (SO_LINGER 0), so that no TIME_WAIT is left behind by thousands of runs a second.

struct Server {
  explicit Server(asio::io_context& io) : acceptor(io) {}
  tcp::acceptor acceptor;
  std::string payload;
  int active = 0;      // connections being served
  int accepted = 0;    // in this run
};

bool request_complete(std::string_view got) {
  // A TLS ClientHello (a redirect to https) waits for us to speak first.
  return got.find("\r\n\r\n") != std::string_view::npos || (!got.empty() && got.front() == '\x16');
}

asio::awaitable<void> serve(Server& server, tcp::socket socket) {
  std::string got;
  char buf[4096];
  while (!request_complete(got) && got.size() < 64 * 1024) {
    const auto [ec, n] = co_await socket.async_read_some(asio::buffer(buf), kUse);
    if (ec) break;
    got.append(buf, n);
  }
  const std::string response = server.payload;
  const auto [wec, written] = co_await asio::async_write(socket, asio::buffer(response), kUse);
  (void)written;
  error_code ignored;
  if (!wec) {
    socket.shutdown(tcp::socket::shutdown_send, ignored);
    for (std::size_t drained = 0; drained < 1024 * 1024;) {
      const auto [ec, n] = co_await socket.async_read_some(asio::buffer(buf), kUse);
      if (ec) break;
      drained += n;
    }
  }
  socket.set_option(asio::socket_base::linger(true, 0), ignored);
  socket.close(ignored);
  --server.active;
}

asio::awaitable<void> accept_loop(Server& server) {
  for (;;) {
    auto [ec, socket] = co_await server.acceptor.async_accept(kUse);
    if (ec) {
      if (!server.acceptor.is_open()) co_return;
      continue;
    }
    ++server.active;
    ++server.accepted;
    asio::co_spawn(server.acceptor.get_executor(), serve(server, std::move(socket)), asio::detached);
  }
}

// ---------------------------------------------------------------------------------------------
// The whole body, as a reference: the same bytes parsed here with Beast in one go (1xx skipped
// as the probe does), or nullopt when they are not one complete response.

struct Reference {
  int status = 0;
  std::string body;
};

std::optional<Reference> parse_whole(std::string_view bytes, std::size_t header_limit) {
  for (int informational = 0;; ++informational) {
    http::response_parser<http::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(header_limit));
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());
    parser.eager(false);
    error_code ec;
    std::size_t used = 0;
    while (!parser.is_header_done()) {
      const auto n = parser.put(asio::buffer(bytes.data() + used, bytes.size() - used), ec);
      used += n;
      if (ec || n == 0) return std::nullopt;
    }
    const int status = parser.get().result_int();
    if (status / 100 == 1 && status != 101 && informational < kMaxInformational) {
      bytes.remove_prefix(used);
      continue;
    }
    parser.eager(true);
    while (!parser.is_done()) {
      const auto n = parser.put(asio::buffer(bytes.data() + used, bytes.size() - used), ec);
      used += n;
      if (ec == http::error::need_more || (!ec && n == 0)) {
        parser.put_eof(ec);
        if (ec) return std::nullopt;
        break;
      }
      if (ec) return std::nullopt;
    }
    return Reference{status, std::move(parser.get().body())};
  }
}

// ---------------------------------------------------------------------------------------------

struct Fixture {
  Fixture() : server(io) {
    if (const std::string why = isolate_network(); why.empty()) {
      isolated = true;
    } else {
      std::fprintf(stderr, "probe fuzz: no private network namespace (%s): redirects are not followed\n", why.c_str());
    }
    // In a namespace of its own the port is free for sure, and fixed, so that seeds can redirect
    // to it by number (https://127.0.0.1:18080/ reaches the TLS handshake); otherwise port 0.
    server.acceptor.open(tcp::v4());
    server.acceptor.set_option(tcp::acceptor::reuse_address(true));
    server.acceptor.bind(tcp::endpoint(asio::ip::make_address("127.0.0.1"), isolated ? kIsolatedPort : 0));
    server.acceptor.listen();
    asio::co_spawn(io, accept_loop(server), asio::detached);
    url = "http://127.0.0.1:" + std::to_string(server.acceptor.local_endpoint().port()) + "/fuzz?probe=1";
    CheckerDns dns;
    dns.cache = false;  // every run the same
    dns.timeout_ms = 200;
    dns.attempts = 1;
    resolver = std::make_shared<Resolver>(io.get_executor(), dns);
    for (const auto* pattern : kPatterns) regexps.push_back(std::get<std::shared_ptr<const Regex>>(Regex::compile(pattern)));
    TargetConfig t = base_target();
    for (int small_headers = 0; small_headers < 2; ++small_headers) {
      for (int tiny_budget = 0; tiny_budget < 2; ++tiny_budget) {
        ProbeLimits limits;
        if (small_headers) limits.max_header_bytes = kSmallHeaderLimit;
        limits.body_budget = std::make_shared<BodyBudget>(tiny_budget ? kTinyBudget : 64u * 1024 * 1024);
        budgets[small_headers][tiny_budget] = limits.body_budget;
        contexts[small_headers][tiny_budget] = ProbeContext::for_targets({t}, limits);
        probes[small_headers][tiny_budget] = probe_fn(contexts[small_headers][tiny_budget]);
      }
    }
  }

  TargetConfig base_target() const {
    TargetConfig t;
    t.name = "fuzz";
    t.url = url;
    t.parsed_url = *parse_http_url(url);
    t.interval = std::chrono::minutes(1);
    t.timeout = kTimeout;
    return t;
  }

  asio::io_context io;
  Server server;
  bool isolated = false;
  std::string url;
  std::shared_ptr<Resolver> resolver;
  std::vector<std::shared_ptr<const Regex>> regexps;
  std::shared_ptr<BodyBudget> budgets[2][2];
  std::shared_ptr<const ProbeContext> contexts[2][2];
  ProbeFn probes[2][2];
};

Fixture& fixture() {
  static Fixture f;
  return f;
}

std::string describe(const CheckResult& r) {
  return "error=" + std::string(to_string(r.error)) + " status=" + (r.http_status ? std::to_string(*r.http_status) : "null") +
         " ok=" + (r.ok ? "true" : "false") + " body_bytes=" + std::to_string(r.body_bytes) +
         " redirects=" + std::to_string(r.redirects) +
         " regexp_match=" + (r.regexp_match ? (*r.regexp_match ? "true" : "false") : "null") + " detail=" + r.error_detail;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  (void)fixture();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  Fixture& f = fixture();
  const unsigned options = data[0];
  const std::string_view response = webmon::fuzz::as_text(data + 1, size - 1);

  auto target = std::make_shared<TargetConfig>(f.base_target());
  if (const unsigned re = options & 3u; re != 0) {
    target->regexp = f.regexps[re - 1];
    target->regexp_source = kPatterns[re - 1];
  }
  switch ((options >> 2) & 3u) {
    case 1: target->method = HttpMethod::head; break;
    case 2:
      target->method = HttpMethod::post;
      target->body = "{\"fuzz\":true}";
      break;
    default: target->method = HttpMethod::get;
  }
  target->follow_redirects = f.isolated && (options & 16u) != 0;
  target->max_redirects = kMaxRedirects;
  if (options & 32u) target->max_body_bytes = kSmallBodyCap;
  const int small_headers = (options & 64u) ? 1 : 0;
  const int tiny_budget = (options & 128u) ? 1 : 0;
  const auto& budget = f.budgets[small_headers][tiny_budget];

  f.server.payload.assign(response);
  f.server.accepted = 0;
  std::optional<CheckResult> result;
  std::exception_ptr failure;
  const auto not_after = Clock::now() + kTimeout + 1s;
  asio::co_spawn(f.io, f.probes[small_headers][tiny_budget](target, ProbeRun{f.resolver, not_after}),
                 [&](std::exception_ptr e, CheckResult r) {
                   failure = e;
                   result = std::move(r);
                 });
  // Until the probe has its result and the server has let go of every connection.
  const auto backstop = Clock::now() + kTimeout + 10s;
  while (!result || f.server.active > 0) {
    f.io.run_one_for(100ms);
    WEBMON_FUZZ_CHECK(Clock::now() < backstop, "the probe or the server did not finish (probe done: " +
                                                   std::string(result ? "yes" : "no") + ")");
  }
  WEBMON_FUZZ_CHECK(!failure, "run_probe threw");
  const CheckResult& r = *result;
  const std::string what = describe(r);
  static const bool verbose = std::getenv("WEBMON_FUZZ_VERBOSE") != nullptr;
  if (verbose) std::fprintf(stderr, "probe: options 0x%02x: %s\n", options, what.c_str());

  WEBMON_FUZZ_CHECK(r.url == target->url, what);
  WEBMON_FUZZ_CHECK(r.error_detail.rfind("internal error", 0) == std::string::npos, what);
  WEBMON_FUZZ_CHECK(budget->in_use() == 0, what + " (body budget still holds " + std::to_string(budget->in_use()) + ")");
  WEBMON_FUZZ_CHECK(r.body_bytes <= target->max_body_bytes, what);
  WEBMON_FUZZ_CHECK(r.redirects >= 0 && r.redirects <= kMaxRedirects, what);
  WEBMON_FUZZ_CHECK(target->follow_redirects || r.redirects == 0, what);
  WEBMON_FUZZ_CHECK(f.server.accepted == r.redirects + 1 || r.error != ErrorClass::none, what);
  WEBMON_FUZZ_CHECK(target->regexp || !r.regexp_match, what);
  WEBMON_FUZZ_CHECK(r.timings.total >= 0 && r.timings.total < std::chrono::duration<double>(kTimeout + 5s).count(), what);
  if (r.error == ErrorClass::none) {
    WEBMON_FUZZ_CHECK(r.http_status && *r.http_status >= 0 && *r.http_status <= 999, what);
    WEBMON_FUZZ_CHECK(r.ok == (target->status_is_valid(*r.http_status) && (!target->regexp || r.regexp_match == true)),
                      what);
  } else {
    WEBMON_FUZZ_CHECK(!r.ok && !r.error_detail.empty(), what);
  }
  // A timeout here would be the probe waiting on a server that has said all it will say.
  WEBMON_FUZZ_CHECK(r.error != ErrorClass::timeout, what);

  // The regexp's answer, from a body searched as it arrived, is the answer for the whole body.
  if (r.regexp_match && r.error == ErrorClass::none && r.redirects == 0 && target->method != HttpMethod::head) {
    const std::size_t header_limit = f.contexts[small_headers][tiny_budget]->limits().max_header_bytes;
    if (const auto whole = parse_whole(response, header_limit); whole && whole->status == *r.http_status) {
      const std::string_view body = std::string_view(whole->body).substr(0, target->max_body_bytes);
      if (body.size() == r.body_bytes) {
        WEBMON_FUZZ_CHECK(*r.regexp_match == target->regexp->search(body),
                          what + "\nwhole-body search says " + (target->regexp->search(body) ? "match" : "no match"));
      }
    }
  }

  // What the checker would publish decodes at the writer.
  CheckResult published = r;
  published.target = target->name;
  published.checker = "fuzz";
  const std::string json = encode_check_result(published);
  const auto decoded = decode_check_result(json);
  WEBMON_FUZZ_CHECK(std::holds_alternative<CheckResult>(decoded),
                    "the result's message does not decode: " + std::get<DecodeError>(decoded).reason + "\n" + json);
  return 0;
}
