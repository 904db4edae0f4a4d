// Probe tests against in-process servers on loopback (plain and TLS, with a CA made at test time),
// and, for name resolution, inside a private network namespace so no packet leaves the machine.
#include <fcntl.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <chrono>
#include <algorithm>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <variant>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "support/isolation.hpp"
#include "support/stack.hpp"
#include "test_certs.hpp"
#include "test_servers.hpp"
#include "webmon/checker/probe.hpp"
#include "webmon/common/http_url.hpp"
#include "webmon/common/regex.hpp"
#include "webmon/common/version.hpp"

namespace webmon::checker {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using test::http_response;
using test::respond_with;
using test::ServerConn;
using test::TestServer;
using ::testing::HasSubstr;

// (g++ 12 mishandles temporaries of co_await inside conditions, so results go to locals first.)

// Generous where a probe is expected to succeed: the machine may be loaded.
constexpr auto kGenerous = std::chrono::seconds(20);
constexpr auto kShort = std::chrono::milliseconds(500);

std::shared_ptr<TargetConfig> make_target(const std::string& url, std::chrono::nanoseconds timeout = kGenerous) {
  return test::make_target(url, timeout);
}

void set_regexp(TargetConfig& t, const std::string& pattern) {
  auto compiled = Regex::compile(pattern);
  t.regexp = std::get<std::shared_ptr<const Regex>>(compiled);
  t.regexp_source = pattern;
}

// Runs one probe on `io` (with the servers it serves) until the probe's result is in.
CheckResult probe_on(asio::io_context& io, std::shared_ptr<const TargetConfig> target,
                     std::shared_ptr<const ProbeContext> ctx = nullptr, std::shared_ptr<Resolver> resolver = nullptr) {
  if (!ctx) ctx = ProbeContext::for_targets({*target});
  if (!resolver) resolver = std::make_shared<Resolver>(io.get_executor(), CheckerDns{});
  std::optional<CheckResult> result;
  std::exception_ptr failure;
  bool abandoned = false;
  // Only a backstop against a hung probe, far beyond its deadline; not a speed assertion.
  asio::steady_timer backstop(io, target->timeout + std::chrono::seconds(60));
  backstop.async_wait([&](const boost::system::error_code& ec) {
    if (ec) return;
    abandoned = true;
    io.stop();
  });
  asio::co_spawn(io, run_probe(target, ctx, resolver), [&](std::exception_ptr e, CheckResult r) {
    failure = e;
    result = std::move(r);
    backstop.cancel();
    io.stop();
  });
  io.restart();
  io.run();
  if (failure) std::rethrow_exception(failure);
  if (abandoned || !result) throw std::runtime_error("the probe never finished");
  if (std::getenv("WEBMON_PROBE_TEST_VERBOSE")) {
    std::fprintf(stderr, "  probe %s: error=%d status=%s body_bytes=%llu total=%.3f detail=%s\n", target->url.c_str(),
                 static_cast<int>(result->error),
                 result->http_status ? std::to_string(*result->http_status).c_str() : "null",
                 static_cast<unsigned long long>(result->body_bytes), result->timings.total,
                 result->error_detail.c_str());
  }
  return *result;
}

class ProbeTest : public ::testing::Test {
 protected:
  CheckResult probe(std::shared_ptr<const TargetConfig> target, std::shared_ptr<const ProbeContext> ctx = nullptr) {
    return probe_on(io_, std::move(target), std::move(ctx));
  }
  asio::io_context io_;  // declared first: servers (below, in tests) go before it
};

// ---------------------------------------------------------------------------------------------
// Plain HTTP

TEST_F(ProbeTest, Status200IsOkWithEveryFieldFilled) {
  TestServer server(io_, respond_with(http_response(200, "hello", {{"Content-Type", "text/plain"}})));
  const auto target = make_target(server.url("/health?full=1"));
  const CheckResult r = probe(target);

  EXPECT_TRUE(r.ok);
  EXPECT_EQ(r.error, ErrorClass::none);
  EXPECT_EQ(r.error_detail, "");
  EXPECT_EQ(r.url, target->url);
  EXPECT_EQ(r.http_status, 200);
  EXPECT_TRUE(r.http_response_time.has_value());
  EXPECT_EQ(r.body_bytes, 5u);
  EXPECT_EQ(r.redirects, 0);
  EXPECT_EQ(r.regexp_match, std::nullopt);  // no regexp configured
  EXPECT_EQ(r.peer, "127.0.0.1:" + std::to_string(server.port()));
  EXPECT_EQ(r.tls_cert_not_after, std::nullopt);
  EXPECT_TRUE(r.timings.dns.has_value());
  EXPECT_TRUE(r.timings.connect.has_value());
  EXPECT_FALSE(r.timings.tls.has_value());
  EXPECT_TRUE(r.timings.ttfb.has_value());
  EXPECT_TRUE(r.timings.transfer.has_value());
  EXPECT_GE(r.timings.total, *r.http_response_time);

  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].method, "GET");
  EXPECT_EQ(requests[0].target, "/health?full=1");
  EXPECT_EQ(requests[0].header("Host"), "127.0.0.1:" + std::to_string(server.port()));
  EXPECT_EQ(requests[0].header("User-Agent"), "webmon/" + std::string(webmon::version()));
  EXPECT_EQ(requests[0].header("Connection"), "close");
}

TEST_F(ProbeTest, Status404IsNotOkButNoError) {
  TestServer server(io_, respond_with(http_response(404, "not here")));
  const CheckResult r = probe(make_target(server.url("/missing")));
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error, ErrorClass::none);
  EXPECT_EQ(r.http_status, 404);
  EXPECT_EQ(r.body_bytes, 8u);
}

TEST_F(ProbeTest, Status500IsNotOkUnlessListedAsValid) {
  TestServer server(io_, respond_with(http_response(500, "boom")));
  auto target = make_target(server.url());
  CheckResult r = probe(target);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error, ErrorClass::none);
  EXPECT_EQ(r.http_status, 500);

  target->valid_status_codes = {{200, 299}, {500, 503}};
  r = probe(target);
  EXPECT_TRUE(r.ok);
  EXPECT_EQ(r.http_status, 500);
}

TEST_F(ProbeTest, RegexpMatchesOrNot) {
  TestServer server(io_, respond_with(http_response(200, "<p>status: healthy</p>")));
  auto target = make_target(server.url());
  set_regexp(*target, "status: heal+thy");
  CheckResult r = probe(target);
  EXPECT_EQ(r.regexp_match, true);
  EXPECT_TRUE(r.ok);

  set_regexp(*target, "status: sick");
  r = probe(target);
  EXPECT_EQ(r.regexp_match, false);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error, ErrorClass::none);
  EXPECT_EQ(r.http_status, 200);
}

TEST_F(ProbeTest, HeadReadsNoBodyDespiteContentLength) {
  // A HEAD answer announces the length of the GET body but carries none.
  TestServer server(io_, [](std::shared_ptr<ServerConn> conn) -> asio::awaitable<void> {
    const auto req = co_await conn->read_request();
    if (!req) co_return;
    co_await conn->write("HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nConnection: close\r\n\r\n");
    co_await conn->sleep(60s);  // keeps the connection open: the probe must not wait for 1234 bytes
  });
  auto target = make_target(server.url("/h"));
  target->method = HttpMethod::head;
  set_regexp(*target, "anything");
  const CheckResult r = probe(target);
  EXPECT_EQ(r.error, ErrorClass::none) << r.error_detail;
  EXPECT_EQ(r.http_status, 200);
  EXPECT_EQ(r.body_bytes, 0u);
  EXPECT_EQ(r.regexp_match, std::nullopt);  // no body to search
  ASSERT_EQ(server.requests().size(), 1u);
  EXPECT_EQ(server.requests()[0].method, "HEAD");
}

TEST_F(ProbeTest, PostSendsBodyAndHeaders) {
  TestServer server(io_, respond_with(http_response(201, "created")));
  auto target = make_target(server.url("/api/ping"));
  target->method = HttpMethod::post;
  target->body = R"({"ping":true})";
  target->headers = {{"Content-Type", "application/json"}, {"X-Webmon-Test", "42"}, {"User-Agent", "custom-agent"}};
  const CheckResult r = probe(target);
  EXPECT_TRUE(r.ok) << r.error_detail;
  EXPECT_EQ(r.http_status, 201);

  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].method, "POST");
  EXPECT_EQ(requests[0].target, "/api/ping");
  EXPECT_EQ(requests[0].body, R"({"ping":true})");
  EXPECT_EQ(requests[0].header("Content-Type"), "application/json");
  EXPECT_EQ(requests[0].header("Content-Length"), "13");
  EXPECT_EQ(requests[0].header("X-Webmon-Test"), "42");
  EXPECT_EQ(requests[0].header("User-Agent"), "custom-agent");  // the target's headers win
  EXPECT_EQ(requests[0].header("Connection"), "close");         // except this one
}

TEST_F(ProbeTest, HeadersGoInTheOrderWrittenAndHostCanBeOverridden) {
  TestServer server(io_, respond_with(http_response(200, "ok")));
  auto target = make_target(server.url("/"));
  target->headers = {{"X-Zulu", "first"}, {"Host", "status.example.test"}, {"X-Alpha", "second"}};
  const CheckResult r = probe(target);
  EXPECT_TRUE(r.ok) << r.error_detail;

  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].header("Host"), "status.example.test");
  std::vector<std::string> names;
  for (const auto& [name, value] : requests[0].headers) names.push_back(name);
  EXPECT_EQ(std::count(names.begin(), names.end(), "Host"), 1) << "one Host header, the target's";
  const auto at = [&](const std::string& name) { return std::find(names.begin(), names.end(), name) - names.begin(); };
  EXPECT_LT(at("X-Zulu"), at("Host"));
  EXPECT_LT(at("Host"), at("X-Alpha"));
}

// The fields in the order and with the framing Beast gives the message (the probe writes this
// plain case itself): its own three, the target's in file order, Connection, then the length.
TEST_F(ProbeTest, TargetHeadersAndBodyGoOutInBeastsOrderWithTheLength) {
  TestServer server(io_, respond_with(http_response(200, "ok")));
  auto target = make_target(server.url("/submit?x=1"));
  target->method = HttpMethod::post;
  target->body = "a=1&b=2";
  target->headers = {{"X-Zulu", "first"}, {"content-type", "application/x-www-form-urlencoded"}, {"X-Alpha", ""}};
  auto get = make_target(server.url("/plain"));
  get->headers = {{"X-Only", "one"}};
  const CheckResult r = probe(target);
  EXPECT_TRUE(r.ok) << r.error_detail;
  const CheckResult g = probe(get);
  EXPECT_TRUE(g.ok) << g.error_detail;

  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 2u);
  const std::string host = "127.0.0.1:" + std::to_string(server.port());
  const std::string agent = "webmon/" + std::string(webmon::version());
  using Fields = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(requests[0].method, "POST");
  EXPECT_EQ(requests[0].target, "/submit?x=1");
  EXPECT_EQ(requests[0].headers, (Fields{{"Host", host},
                                         {"User-Agent", agent},
                                         {"Accept", "*/*"},
                                         {"X-Zulu", "first"},
                                         {"content-type", "application/x-www-form-urlencoded"},
                                         {"X-Alpha", ""},
                                         {"Connection", "close"},
                                         {"Content-Length", "7"}}));
  EXPECT_EQ(requests[0].body, "a=1&b=2");
  EXPECT_EQ(requests[1].method, "GET");
  EXPECT_EQ(requests[1].headers, (Fields{{"Host", host},
                                         {"User-Agent", agent},
                                         {"Accept", "*/*"},
                                         {"X-Only", "one"},
                                         {"Connection", "close"}}));
  EXPECT_EQ(requests[1].body, "");
}

TEST_F(ProbeTest, ChunkedBodyIsCountedDecoded) {
  TestServer server(io_, respond_with("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                                      "5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n"));
  auto target = make_target(server.url());
  set_regexp(*target, "hello, world");
  const CheckResult r = probe(target);
  EXPECT_TRUE(r.ok) << r.error_detail;
  EXPECT_EQ(r.body_bytes, 12u);
  EXPECT_EQ(r.regexp_match, true);
}

TEST_F(ProbeTest, BodyEndedByCloseIsComplete) {
  TestServer server(io_, respond_with("HTTP/1.0 200 OK\r\n\r\nno length, the end of the connection ends it"));
  const CheckResult r = probe(make_target(server.url()));
  EXPECT_TRUE(r.ok) << r.error_detail;
  EXPECT_EQ(r.body_bytes, 44u);
}

// ---------------------------------------------------------------------------------------------
// Redirects

TEST_F(ProbeTest, RedirectsAreFollowedRelativeAndAbsoluteEachOnANewConnection) {
  TestServer other(io_, respond_with(http_response(200, "landed")));
  const std::string absolute = other.url("/final");
  TestServer server(io_, [absolute](std::shared_ptr<ServerConn> conn) -> asio::awaitable<void> {
    auto req = co_await conn->read_request();
    if (!req) co_return;
    // (Built outside co_await: g++ 12 miscompiles braced lists of string literals inside it.)
    const std::string reply = req->target == "/old" ? http_response(301, "moved", {{"Location", "/new"}})
                                                    : http_response(302, "found", {{"Location", absolute}});
    co_await conn->write(reply);
    co_await conn->shutdown();
  });
  auto target = make_target(server.url("/old"));
  set_regexp(*target, "landed");
  const CheckResult r = probe(target);
  EXPECT_TRUE(r.ok) << r.error_detail;
  EXPECT_EQ(r.http_status, 200);
  EXPECT_EQ(r.redirects, 2);
  EXPECT_EQ(r.regexp_match, true);  // searched in the final body
  EXPECT_EQ(r.url, target->url);    // the configured URL
  EXPECT_EQ(r.peer, "127.0.0.1:" + std::to_string(other.port()));
  EXPECT_EQ(server.connections(), 2u);
  EXPECT_EQ(other.connections(), 1u);
  ASSERT_EQ(server.requests().size(), 2u);
  EXPECT_EQ(server.requests()[1].target, "/new");
  ASSERT_EQ(other.requests().size(), 1u);
  EXPECT_EQ(other.requests()[0].target, "/final");
  EXPECT_EQ(other.requests()[0].header("Host"), "127.0.0.1:" + std::to_string(other.port()));
}

TEST_F(ProbeTest, RedirectNotFollowedIsTheFinalStatus) {
  TestServer server(io_, respond_with(http_response(301, "moved", {{"Location", "/elsewhere"}})));
  auto target = make_target(server.url("/old"));
  target->follow_redirects = false;
  const CheckResult r = probe(target);
  EXPECT_EQ(r.error, ErrorClass::none);
  EXPECT_EQ(r.http_status, 301);
  EXPECT_EQ(r.redirects, 0);
  EXPECT_FALSE(r.ok);  // 301 is outside the default 200-299
  EXPECT_EQ(r.body_bytes, 5u);
  EXPECT_EQ(server.requests().size(), 1u);
}

TEST_F(ProbeTest, RedirectToAnUnusableLocationIsAProtocolError) {
  TestServer server(io_, respond_with(http_response(302, "", {{"Location", "ftp://files.example.test/x"}})));
  const CheckResult r = probe(make_target(server.url("/old")));
  EXPECT_EQ(r.error, ErrorClass::protocol);
  EXPECT_THAT(r.error_detail, HasSubstr("redirect 302 to unusable Location 'ftp://files.example.test/x'"));
  EXPECT_EQ(r.http_status, 302);
  EXPECT_EQ(r.redirects, 0);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(server.requests().size(), 1u);
}

TEST_F(ProbeTest, RedirectLoopIsTooManyRedirects) {
  TestServer server(io_, respond_with(http_response(302, "again", {{"Location", "/loop"}})));
  auto target = make_target(server.url("/loop"));
  target->max_redirects = 3;
  const CheckResult r = probe(target);
  EXPECT_EQ(r.error, ErrorClass::too_many_redirects);
  EXPECT_THAT(r.error_detail, HasSubstr("more than 3 redirects"));
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.redirects, 3);
  EXPECT_EQ(r.http_status, 302);
  EXPECT_EQ(server.requests().size(), 4u);  // the first request and three redirects
}

// A form at /form that answers `status` with a Location of `to`; every other path says thanks.
auto form_redirecting_with(int status, std::string to) {
  return [status, to](std::shared_ptr<ServerConn> conn) -> asio::awaitable<void> {
    auto req = co_await conn->read_request();
    if (!req) co_return;
    const std::string reply =
        req->target == "/form" ? http_response(status, "", {{"Location", to}}) : http_response(200, "thanks");
    co_await conn->write(reply);
    co_await conn->shutdown();
  };
}

TEST_F(ProbeTest, SeeOtherTurnsPostIntoGet) {
  TestServer server(io_, form_redirecting_with(303, "/done"));
  auto target = make_target(server.url("/form"));
  target->method = HttpMethod::post;
  target->body = "a=1";
  const CheckResult r = probe(target);
  EXPECT_TRUE(r.ok) << r.error_detail;
  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].method, "POST");
  EXPECT_EQ(requests[1].method, "GET");
  EXPECT_EQ(requests[1].body, "");
}

TEST_F(ProbeTest, TemporaryAndPermanentRedirectsKeepTheMethodAndTheBody) {
  for (const int status : {307, 308}) {
    TestServer server(io_, form_redirecting_with(status, "/again"));
    auto target = make_target(server.url("/form"));
    target->method = HttpMethod::post;
    target->body = "a=1";
    const CheckResult r = probe(target);
    EXPECT_TRUE(r.ok) << status << ": " << r.error_detail;
    EXPECT_EQ(r.redirects, 1);
    const auto requests = server.requests();
    ASSERT_EQ(requests.size(), 2u) << status;
    EXPECT_EQ(requests[1].target, "/again");
    EXPECT_EQ(requests[1].method, "POST") << status;
    EXPECT_EQ(requests[1].body, "a=1") << status;
  }
}

TEST_F(ProbeTest, MaxRedirectsZeroRefusesTheFirstRedirect) {
  TestServer server(io_, respond_with(http_response(302, "moved", {{"Location", "/elsewhere"}})));
  auto target = make_target(server.url("/old"));
  target->max_redirects = 0;
  const CheckResult r = probe(target);
  EXPECT_EQ(r.error, ErrorClass::too_many_redirects);
  EXPECT_THAT(r.error_detail, HasSubstr("more than 0 redirects"));
  EXPECT_EQ(r.http_status, 302);
  EXPECT_EQ(r.redirects, 0);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(server.requests().size(), 1u) << "the redirect was not followed";
}

// ---------------------------------------------------------------------------------------------
// Deadlines and caps

TEST_F(ProbeTest, SlowHeadersTimeOut) {
  TestServer server(io_, [](std::shared_ptr<ServerConn> conn) -> asio::awaitable<void> {
    const auto req = co_await conn->read_request();
    if (req) co_await conn->sleep(120s);
  });
  const auto target = make_target(server.url(), kShort);
  const CheckResult r = probe(target);
  EXPECT_EQ(r.error, ErrorClass::timeout);
  EXPECT_THAT(r.error_detail, HasSubstr("timeout after 0.500 s"));
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.http_status, std::nullopt);
  EXPECT_EQ(r.http_response_time, std::nullopt);
  EXPECT_TRUE(r.timings.connect.has_value());
  EXPECT_FALSE(r.timings.ttfb.has_value());
  EXPECT_GE(r.timings.total, 0.5);  // a timeout is only declared once the deadline has passed
}

TEST_F(ProbeTest, SlowBodyTimesOutWithTheStatusKnown) {
  TestServer server(io_, [](std::shared_ptr<ServerConn> conn) -> asio::awaitable<void> {
    const auto req = co_await conn->read_request();
    if (!req) co_return;
    co_await conn->write("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789");
    co_await conn->sleep(120s);
  });
  const CheckResult r = probe(make_target(server.url(), kShort));
  EXPECT_EQ(r.error, ErrorClass::timeout);
  EXPECT_THAT(r.error_detail, HasSubstr("reading the body"));
  EXPECT_EQ(r.http_status, 200);
  EXPECT_TRUE(r.http_response_time.has_value());
  EXPECT_EQ(r.body_bytes, 10u);
  EXPECT_FALSE(r.ok);
}

TEST_F(ProbeTest, ServerThatNeverReadsTimesOut) {
  // Accepts and then ignores the connection entirely (not even reading the request).
  TestServer server(io_, [](std::shared_ptr<ServerConn> conn) -> asio::awaitable<void> { co_await conn->sleep(120s); });
  const CheckResult r = probe(make_target(server.url(), kShort));
  EXPECT_EQ(r.error, ErrorClass::timeout);
}

TEST_F(ProbeTest, HugeBodyIsCutAtTheCapAndTheRegexpOnlySeesWhatWasRead) {
  constexpr std::size_t kBody = 20 * 1024 * 1024;
  auto body = std::make_shared<std::string>(kBody, 'a');
  body->replace(0, 5, "START");
  body->replace(2 * 1024 * 1024, 6, "NEEDLE");  // beyond the 1 MiB cap
  TestServer server(io_, [body](std::shared_ptr<ServerConn> conn) -> asio::awaitable<void> {
    const auto req = co_await conn->read_request();
    if (!req) co_return;
    co_await conn->write(http_response(200, *body));
    co_await conn->shutdown();
  });
  auto target = make_target(server.url());
  ASSERT_EQ(target->max_body_bytes, 1024u * 1024u);  // the default cap

  set_regexp(*target, "NEEDLE");
  CheckResult r = probe(target);
  EXPECT_EQ(r.error, ErrorClass::none) << r.error_detail;  // a long body is not an error
  EXPECT_EQ(r.http_status, 200);
  EXPECT_EQ(r.body_bytes, 1024u * 1024u);
  EXPECT_EQ(r.regexp_match, false);
  EXPECT_FALSE(r.ok);

  set_regexp(*target, "^START");
  r = probe(target);
  EXPECT_EQ(r.body_bytes, 1024u * 1024u);
  EXPECT_EQ(r.regexp_match, true);
  EXPECT_TRUE(r.ok);

  target->regexp.reset();
  target->max_body_bytes = 3 * 1024 * 1024;
  r = probe(target);
  EXPECT_EQ(r.body_bytes, 3u * 1024u * 1024u);
  EXPECT_TRUE(r.ok);
}

TEST_F(ProbeTest, OversizedHeadersAreAProtocolError) {
  TestServer server(io_, respond_with(http_response(200, "x", {{"X-Big", std::string(200 * 1024, 'h')}})));
  const CheckResult r = probe(make_target(server.url()));
  EXPECT_EQ(r.error, ErrorClass::protocol);
  EXPECT_THAT(r.error_detail, HasSubstr("exceed"));
}

// ---------------------------------------------------------------------------------------------
// Broken servers

TEST_F(ProbeTest, ConnectionRefused) {
  const unsigned short port = webmon::test::free_port();
  const CheckResult r = probe(make_target("http://127.0.0.1:" + std::to_string(port) + "/"));
  EXPECT_EQ(r.error, ErrorClass::connect);
  EXPECT_EQ(r.error_detail, "connect 127.0.0.1:" + std::to_string(port) + ": Connection refused");
  EXPECT_EQ(r.http_status, std::nullopt);
  EXPECT_EQ(r.peer, "");
  EXPECT_FALSE(r.timings.connect.has_value());
  EXPECT_FALSE(r.ok);
}

TEST_F(ProbeTest, ConnectionClosedMidBodyIsAProtocolError) {
  TestServer server(io_, [](std::shared_ptr<ServerConn> conn) -> asio::awaitable<void> {
    const auto req = co_await conn->read_request();
    if (!req) co_return;
    co_await conn->write("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789");
    co_await conn->shutdown();
  });
  const CheckResult r = probe(make_target(server.url()));
  EXPECT_EQ(r.error, ErrorClass::protocol);
  EXPECT_THAT(r.error_detail, HasSubstr("after 10 of 1000 body bytes"));
  EXPECT_EQ(r.http_status, 200);
  EXPECT_EQ(r.body_bytes, 10u);
  EXPECT_FALSE(r.ok);
}

TEST_F(ProbeTest, ConnectionClosedBeforeAnyResponseIsAProtocolError) {
  TestServer server(io_, [](std::shared_ptr<ServerConn> conn) -> asio::awaitable<void> {
    const auto req = co_await conn->read_request();
    if (req) co_await conn->shutdown();
  });
  const CheckResult r = probe(make_target(server.url()));
  EXPECT_EQ(r.error, ErrorClass::protocol);
  EXPECT_THAT(r.error_detail, HasSubstr("before any response"));
  EXPECT_EQ(r.http_status, std::nullopt);
}

TEST_F(ProbeTest, ConnectionClosedInTheHeadersIsAProtocolError) {
  TestServer server(io_, [](std::shared_ptr<ServerConn> conn) -> asio::awaitable<void> {
    const auto req = co_await conn->read_request();
    if (!req) co_return;
    co_await conn->write("HTTP/1.1 200 OK\r\nContent-Le");
    co_await conn->shutdown();
  });
  const CheckResult r = probe(make_target(server.url()));
  EXPECT_EQ(r.error, ErrorClass::protocol);
  EXPECT_EQ(r.http_status, std::nullopt);
}

TEST_F(ProbeTest, ResponseThatIsNotHttpIsAProtocolError) {
  TestServer server(io_, [](std::shared_ptr<ServerConn> conn) -> asio::awaitable<void> {
    co_await conn->write("SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n");
    co_await conn->sleep(100ms);
    co_await conn->shutdown();
  });
  const CheckResult r = probe(make_target(server.url()));
  EXPECT_EQ(r.error, ErrorClass::protocol);
  EXPECT_THAT(r.error_detail, HasSubstr("invalid HTTP response"));
  EXPECT_EQ(r.http_status, std::nullopt);
}

TEST_F(ProbeTest, InformationalResponsesAreSkipped) {
  TestServer server(io_, respond_with("HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n" + http_response(200, "ok")));
  const CheckResult r = probe(make_target(server.url()));
  EXPECT_TRUE(r.ok) << r.error_detail;
  EXPECT_EQ(r.http_status, 200);
}

// ---------------------------------------------------------------------------------------------
// TLS

class TlsProbeTest : public ProbeTest {
 protected:
  TlsProbeTest() : ca_("webmon test CA"), ca_file_(dir_.write("ca.pem", ca_.cert_pem())) {}

  std::shared_ptr<TargetConfig> tls_target(const TestServer& server, std::string_view path = "/",
                                           std::chrono::nanoseconds timeout = kGenerous) {
    auto t = make_target(server.url(path), timeout);
    t->ca_file = ca_file_.string();
    return t;
  }

  webmon::test::TempDir dir_;
  test::TestCa ca_;
  std::filesystem::path ca_file_;
};

TEST_F(TlsProbeTest, HttpsWithTheTargetsCaIsOk) {
  auto spec = test::valid_leaf({"localhost"}, {"127.0.0.1"});
  TestServer server(io_, respond_with(http_response(200, "secure")), test::server_context(ca_.issue(spec)));
  auto target = tls_target(server, "/tls");
  set_regexp(*target, "secure");
  const CheckResult r = probe(target);
  EXPECT_TRUE(r.ok) << r.error_detail;
  EXPECT_EQ(r.http_status, 200);
  EXPECT_EQ(r.regexp_match, true);
  EXPECT_TRUE(r.timings.tls.has_value());
  EXPECT_EQ(r.tls_cert_not_after, spec.not_after);
  EXPECT_EQ(r.peer, "127.0.0.1:" + std::to_string(server.port()));
  ASSERT_EQ(server.requests().size(), 1u);
  EXPECT_EQ(server.requests()[0].sni, "");  // no SNI for an IP address (RFC 6066)
}

TEST_F(TlsProbeTest, HostNameIsSentAsSniAndVerified) {
  // "localhost" resolves from /etc/hosts (the files source), so no DNS query is made.
  auto spec = test::valid_leaf({"localhost"}, {});
  TestServer server(io_, respond_with(http_response(200, "hi")), test::server_context(ca_.issue(spec)));
  auto target = make_target("https://localhost:" + std::to_string(server.port()) + "/");
  target->ca_file = ca_file_.string();
  target->ip_family = IpFamily::v4;
  const CheckResult r = probe(target);
  EXPECT_TRUE(r.ok) << r.error_detail;
  EXPECT_EQ(r.peer, "127.0.0.1:" + std::to_string(server.port()));
  ASSERT_EQ(server.requests().size(), 1u);
  EXPECT_EQ(server.requests()[0].sni, "localhost");
  EXPECT_EQ(server.requests()[0].header("Host"), "localhost:" + std::to_string(server.port()));
}

TEST_F(TlsProbeTest, UntrustedCaIsATlsError) {
  test::TestCa stranger("some other CA");
  TestServer server(io_, respond_with(http_response(200, "hi")),
                    test::server_context(stranger.issue(test::valid_leaf({"localhost"}, {"127.0.0.1"}))));
  auto target = tls_target(server);
  CheckResult r = probe(target);
  EXPECT_EQ(r.error, ErrorClass::tls);
  EXPECT_THAT(r.error_detail, HasSubstr("certificate verify failed"));
  EXPECT_EQ(r.http_status, std::nullopt);
  EXPECT_FALSE(r.ok);
  EXPECT_TRUE(server.requests().empty());

  // The system CAs do not know it either.
  target->ca_file.clear();
  r = probe(target);
  EXPECT_EQ(r.error, ErrorClass::tls);

  // tls_verify: false accepts it.
  target->tls_verify = false;
  r = probe(target);
  EXPECT_TRUE(r.ok) << r.error_detail;
  EXPECT_TRUE(r.tls_cert_not_after.has_value());
}

TEST_F(TlsProbeTest, HostNameMismatchIsATlsError) {
  TestServer server(io_, respond_with(http_response(200, "hi")),
                    test::server_context(ca_.issue(test::valid_leaf({"other.example"}, {"10.1.2.3"}))));
  CheckResult r = probe(tls_target(server));
  EXPECT_EQ(r.error, ErrorClass::tls);
  EXPECT_THAT(r.error_detail, HasSubstr("does not match host name 127.0.0.1"));
  EXPECT_TRUE(server.requests().empty());

  auto target = make_target("https://localhost:" + std::to_string(server.port()) + "/");
  target->ca_file = ca_file_.string();
  target->ip_family = IpFamily::v4;
  r = probe(target);
  EXPECT_EQ(r.error, ErrorClass::tls);
  EXPECT_THAT(r.error_detail, HasSubstr("does not match host name localhost"));
}

TEST_F(TlsProbeTest, ExpiredCertificateIsATlsErrorThatStillReportsTheExpiry) {
  const auto now = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
  test::LeafSpec spec{{"localhost"}, {"127.0.0.1"}, now - std::chrono::days(10), now - std::chrono::days(1)};
  TestServer server(io_, respond_with(http_response(200, "hi")), test::server_context(ca_.issue(spec)));
  const CheckResult r = probe(tls_target(server));
  EXPECT_EQ(r.error, ErrorClass::tls);
  EXPECT_THAT(r.error_detail, HasSubstr("expired"));
  EXPECT_EQ(r.tls_cert_not_after, spec.not_after);
  EXPECT_FALSE(r.ok);
}

TEST_F(TlsProbeTest, TlsVerifyFalseAcceptsAnExpiredOrMismatchedCertificate) {
  const auto now = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
  const test::LeafSpec expired{{"localhost"}, {"127.0.0.1"}, now - std::chrono::days(10), now - std::chrono::days(1)};
  const test::LeafSpec mismatched = test::valid_leaf({"other.example"}, {"10.1.2.3"});
  for (const auto& spec : {expired, mismatched}) {
    TestServer server(io_, respond_with(http_response(200, "hi")), test::server_context(ca_.issue(spec)));
    auto target = tls_target(server);
    CheckResult r = probe(target);
    EXPECT_EQ(r.error, ErrorClass::tls) << "verified, it is refused";
    target->tls_verify = false;
    r = probe(target);
    EXPECT_TRUE(r.ok) << r.error_detail;
    EXPECT_EQ(r.http_status, 200);
    EXPECT_EQ(r.tls_cert_not_after, spec.not_after) << "the expiry is still reported";
    EXPECT_EQ(server.requests().size(), 1u);
  }
}

TEST_F(TlsProbeTest, PlainHttpServerOnAnHttpsUrlIsATlsError) {
  TestServer plain(io_, respond_with(http_response(200, "plain")));
  auto target = make_target("https://127.0.0.1:" + std::to_string(plain.port()) + "/");
  target->ca_file = ca_file_.string();
  const CheckResult r = probe(target);
  EXPECT_EQ(r.error, ErrorClass::tls);
}

TEST_F(TlsProbeTest, TlsServerThatStallsTimesOut) {
  auto leaf = ca_.issue(test::valid_leaf({"localhost"}, {"127.0.0.1"}));
  TestServer server(io_, [](std::shared_ptr<ServerConn> conn) -> asio::awaitable<void> {
    const auto req = co_await conn->read_request();
    if (req) co_await conn->sleep(120s);
  }, test::server_context(leaf));
  const CheckResult r = probe(tls_target(server, "/", kShort));
  EXPECT_EQ(r.error, ErrorClass::timeout);
  EXPECT_TRUE(r.timings.tls.has_value());
}

TEST_F(TlsProbeTest, HugeBodyOverTlsIsCutAtTheCap) {
  auto body = std::make_shared<std::string>(20 * 1024 * 1024, 'b');
  TestServer server(io_, [body](std::shared_ptr<ServerConn> conn) -> asio::awaitable<void> {
    const auto req = co_await conn->read_request();
    if (!req) co_return;
    co_await conn->write(http_response(200, *body));
    conn->close();
  }, test::server_context(ca_.issue(test::valid_leaf({}, {"127.0.0.1"}))));
  auto target = tls_target(server);
  target->max_body_bytes = 100000;
  const CheckResult r = probe(target);
  EXPECT_EQ(r.error, ErrorClass::none) << r.error_detail;
  EXPECT_EQ(r.body_bytes, 100000u);
  EXPECT_TRUE(r.ok);
}

TEST_F(TlsProbeTest, RedirectFromHttpToHttps) {
  TestServer secure(io_, respond_with(http_response(200, "secure")),
                    test::server_context(ca_.issue(test::valid_leaf({}, {"127.0.0.1"}))));
  TestServer plain(io_, respond_with(http_response(308, "", {{"Location", secure.url("/")}})));
  auto target = make_target(plain.url());
  target->ca_file = ca_file_.string();
  const CheckResult r = probe(target);
  EXPECT_TRUE(r.ok) << r.error_detail;
  EXPECT_EQ(r.redirects, 1);
  EXPECT_TRUE(r.tls_cert_not_after.has_value());
  EXPECT_EQ(r.peer, "127.0.0.1:" + std::to_string(secure.port()));
}

// ---------------------------------------------------------------------------------------------
// Address families

TEST_F(ProbeTest, IpFamilyMustMatchAnAddressLiteral) {
  TestServer server(io_, respond_with(http_response(200, "v4")));
  auto target = make_target(server.url());
  target->ip_family = IpFamily::v6;
  CheckResult r = probe(target);
  EXPECT_EQ(r.error, ErrorClass::dns);
  EXPECT_THAT(r.error_detail, HasSubstr("ipv6"));
  EXPECT_EQ(server.connections(), 0u);

  target->ip_family = IpFamily::v4;
  r = probe(target);
  EXPECT_TRUE(r.ok) << r.error_detail;
}

TEST_F(ProbeTest, Ipv6Loopback) {
  std::unique_ptr<TestServer> server;
  try {
    server = std::make_unique<TestServer>(io_, respond_with(http_response(200, "v6")), nullptr,
                                          asio::ip::make_address("::1"));
  } catch (const std::exception& e) {
    GTEST_SKIP() << "no IPv6 loopback here: " << e.what();
  }
  auto target = make_target(server->url());
  target->ip_family = IpFamily::v6;
  const CheckResult r = probe(target);
  EXPECT_TRUE(r.ok) << r.error_detail;
  EXPECT_EQ(r.peer, "[::1]:" + std::to_string(server->port()));
}

// ---------------------------------------------------------------------------------------------
// Name resolution, in a private network namespace (only `lo`, and its own /etc/hosts and
// /etc/resolv.conf) so that no query can leave the machine.

using webmon::test::Isolated;
using webmon::test::run_isolated;

// The result fields the parent asserts on, one per line.
std::string summarize(const CheckResult& r) {
  std::ostringstream os;
  os << static_cast<int>(r.error) << '\n'
     << (r.http_status ? std::to_string(*r.http_status) : "-") << '\n'
     << r.peer << '\n'
     << r.error_detail;
  return os.str();
}

struct Summary {
  ErrorClass error;
  std::string status, peer, detail;
};

Summary parse_summary(const std::string& text) {
  std::istringstream is(text);
  Summary s{};
  int e = 0;
  is >> e;
  is.ignore();
  s.error = static_cast<ErrorClass>(e);
  std::getline(is, s.status);
  std::getline(is, s.peer);
  std::getline(is, s.detail, '\0');
  return s;
}

class IsolatedProbeTest : public ::testing::Test {
 protected:
  // Probes `url_template` ("PORT" replaced by the server's port) in the namespace, where
  // `serve_on` ("127.0.0.1", "::1" or "" for none) gets a server. The namespace's resolv.conf
  // names 127.0.0.1 (its own loopback); with `silent_dns` a UDP socket there takes the queries
  // and never answers, else nothing listens and queries are refused at once.
  Isolated probe_isolated(const std::string& url_template, IpFamily family, const std::string& serve_on,
                          std::chrono::nanoseconds timeout = kGenerous, bool silent_dns = false) {
    const auto hosts = dir_.write("hosts", "127.0.0.1 localhost\n127.0.0.1 dual.test\n::1 dual.test\n");
    // c-ares gives up after 2 s (one try): longer than kShort, far shorter than kGenerous.
    const auto resolv = dir_.write("resolv.conf", "nameserver 127.0.0.1\noptions timeout:2 attempts:1\n");
    return run_isolated(
        [&]() {
          // Left to the child's _exit: it reports and exits right after the probe.
          auto* io = new asio::io_context;
          if (silent_dns) {
            auto* dns = new asio::ip::udp::socket(*io, asio::ip::udp::endpoint(asio::ip::make_address("127.0.0.1"), 53));
            (void)dns;
          }
          std::string url = url_template;
          if (!serve_on.empty()) {
            auto* server = new TestServer(*io, respond_with(http_response(200, "isolated")), nullptr,
                                          asio::ip::make_address(serve_on));
            url.replace(url.find("PORT"), 4, std::to_string(server->port()));
          }
          auto target = make_target(url, timeout);
          target->ip_family = family;
          return summarize(probe_on(*io, target));
        },
        hosts, resolv);
  }

  webmon::test::TempDir dir_;
};

TEST_F(IsolatedProbeTest, UnknownHostIsADnsError) {
  const auto out = probe_isolated("http://no-such-host.invalid/", IpFamily::any, "");
  WEBMON_REQUIRE_ISOLATED(out);
  const Summary s = parse_summary(out.text);
  EXPECT_EQ(s.error, ErrorClass::dns) << s.detail;
  EXPECT_THAT(s.detail, HasSubstr("no-such-host.invalid"));
  EXPECT_EQ(s.status, "-");
}

TEST_F(IsolatedProbeTest, SilentNameServerIsATimeoutWithinTheProbesDeadline) {
  // c-ares would wait 2 s for the silent name server; the probe's 500 ms deadline covers DNS too.
  const auto out = probe_isolated("http://slow-dns.invalid/", IpFamily::any, "", kShort, true);
  WEBMON_REQUIRE_ISOLATED(out);
  const Summary s = parse_summary(out.text);
  EXPECT_EQ(s.error, ErrorClass::timeout) << s.detail;
  EXPECT_THAT(s.detail, HasSubstr("resolving slow-dns.invalid"));
}

TEST_F(IsolatedProbeTest, AnUnreachableNetworkIsAConnectErrorAtOnce) {
  // The namespace has only `lo`: no route to 10.1.2.3, so connect() fails with ENETUNREACH at
  // once. Not "refused" (nothing answered) and not a timeout at the probe's 20 s deadline.
  const auto out = probe_isolated("http://10.1.2.3:8080/", IpFamily::any, "");
  WEBMON_REQUIRE_ISOLATED(out);
  const Summary s = parse_summary(out.text);
  EXPECT_EQ(s.error, ErrorClass::connect) << s.detail;
  EXPECT_EQ(s.detail, "connect 10.1.2.3:8080: Network is unreachable");
  EXPECT_EQ(s.status, "-");
}

TEST_F(IsolatedProbeTest, IpFamilyPicksTheAddressesOfAName) {
  {
    const auto out = probe_isolated("http://dual.test:PORT/", IpFamily::v4, "127.0.0.1");
    WEBMON_REQUIRE_ISOLATED(out);
    const Summary s = parse_summary(out.text);
    EXPECT_EQ(s.error, ErrorClass::none) << s.detail;
    EXPECT_THAT(s.peer, ::testing::StartsWith("127.0.0.1:"));
  }
  {
    // Only ::1 is tried, and nothing listens there.
    const auto out = probe_isolated("http://dual.test:PORT/", IpFamily::v6, "127.0.0.1");
    const Summary s = parse_summary(out.text);
    EXPECT_EQ(s.error, ErrorClass::connect) << s.detail;
    EXPECT_THAT(s.detail, HasSubstr("connect [::1]:"));
    EXPECT_THAT(s.detail, ::testing::Not(HasSubstr("127.0.0.1")));
  }
  {
    const auto out = probe_isolated("http://dual.test:PORT/", IpFamily::v6, "::1");
    const Summary s = parse_summary(out.text);
    EXPECT_EQ(s.error, ErrorClass::none) << s.detail;
    EXPECT_THAT(s.peer, ::testing::StartsWith("[::1]:"));
  }
  {
    // auto: every address is tried in turn until one accepts.
    const auto out = probe_isolated("http://dual.test:PORT/", IpFamily::any, "::1");
    const Summary s = parse_summary(out.text);
    EXPECT_EQ(s.error, ErrorClass::none) << s.detail;
    EXPECT_THAT(s.peer, ::testing::StartsWith("[::1]:"));
    const auto out4 = probe_isolated("http://dual.test:PORT/", IpFamily::any, "127.0.0.1");
    const Summary s4 = parse_summary(out4.text);
    EXPECT_EQ(s4.error, ErrorClass::none) << s4.detail;
    EXPECT_THAT(s4.peer, ::testing::StartsWith("127.0.0.1:"));
  }
}

}  // namespace
}  // namespace webmon::checker
