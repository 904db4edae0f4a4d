#include "webmon/checker/probe.hpp"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <exception>
#include <limits>
#include <optional>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/read_size.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <fmt/format.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "webmon/common/http_url.hpp"
#include "webmon/common/text.hpp"
#include "webmon/common/version.hpp"

namespace webmon::checker {
namespace {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
namespace http = boost::beast::http;
using boost::system::error_code;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using TlsStream = ssl::stream<tcp::socket>;
using asio::awaitable;

constexpr auto kUse = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kReadChunk = 64 * 1024;  // body bytes asked for per read
constexpr std::size_t kFirstRead = 16 * 1024;
constexpr int kMaxInformational = 8;  // 1xx responses skipped before the real one
constexpr std::size_t kMaxQuoted = 200;  // of a Location value quoted in error_detail

// What one probe holds of the body budget; given back when the probe's body is done.
class BodyHold {
 public:
  explicit BodyHold(BodyBudget* budget) noexcept : budget_(budget) {}
  ~BodyHold() {
    if (budget_) budget_->give_back(taken_);
  }
  BodyHold(const BodyHold&) = delete;
  BodyHold& operator=(const BodyHold&) = delete;
  // Holds at least `bytes` in all; false (holding what it held) when the budget has no room.
  bool cover(std::size_t bytes) noexcept {
    if (!budget_ || bytes <= taken_) return true;
    if (!budget_->try_take(bytes - taken_)) return false;
    taken_ = bytes;
    return true;
  }

 private:
  BodyBudget* budget_;
  std::size_t taken_ = 0;
};

// Where a body without a regexp is read to: its bytes are only counted, so every probe of the
// thread shares one buffer (reads on one io_context thread never run at the same time).
char* discard_buffer() {
  thread_local std::vector<char> buffer(kReadChunk);
  return buffer.data();
}

// Buffers a probe holds for one step and then gives back, kept per thread for the next probe
// (the probes of one io_context thread interleave, so each takes its own, and a burst of slow
// probes leaves at most kKeep behind, none larger than kMaxBytes). Saves a malloc/free pair of a
// 16 KiB read buffer and of the request's text per probe.
template <class Buffer>
class BufferPool {
 public:
  static constexpr std::size_t kKeep = 32;
  static constexpr std::size_t kMaxBytes = 64 * 1024;

  Buffer take() {
    if (free_.empty()) return Buffer{};
    Buffer b = std::move(free_.back());
    free_.pop_back();
    return b;
  }
  void give_back(Buffer&& b, std::size_t capacity) {
    if (free_.size() < kKeep && capacity <= kMaxBytes) free_.push_back(std::move(b));
  }

 private:
  std::vector<Buffer> free_;
};

// One pooled buffer, given back (emptied) when the holder goes.
template <class Buffer>
class Pooled {
 public:
  Pooled() : b_(pool().take()) {}
  ~Pooled() {
    clear(b_);
    const std::size_t capacity = b_.capacity();
    pool().give_back(std::move(b_), capacity);
  }
  Pooled(const Pooled&) = delete;
  Pooled& operator=(const Pooled&) = delete;
  Buffer& operator*() noexcept { return b_; }
  Buffer* operator->() noexcept { return &b_; }

 private:
  static BufferPool<Buffer>& pool() {
    thread_local BufferPool<Buffer> p;
    return p;
  }
  static void clear(std::string& s) noexcept { s.clear(); }
  static void clear(boost::beast::flat_buffer& b) noexcept { b.clear(); }
  Buffer b_;
};

enum class Phase { dns, connect, tls, request, response, body };

std::string_view phase_text(Phase p) {
  switch (p) {
    case Phase::dns: return "resolving";
    case Phase::connect: return "connecting";
    case Phase::tls: return "in the TLS handshake";
    case Phase::request: return "sending the request";
    case Phase::response: return "waiting for the response headers";
    case Phase::body: return "reading the body";
  }
  return "probing";
}

double seconds_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

void add_seconds(std::optional<double>& slot, Clock::time_point from, Clock::time_point to) {
  slot = slot.value_or(0.0) + seconds_between(from, to);
}

// "a.b.c.d:port" or "[v6]:port". IPv4, every probe's usual case, is written by hand: the same text
// as address_v4::to_string, without its temporary string and fmt's parsing.
std::string endpoint_text(const tcp::endpoint& ep) {
  const auto a = ep.address();
  if (a.is_v6()) return fmt::format("[{}]:{}", a.to_string(), ep.port());
  std::string out;  // "127.0.0.2:8080" fits in the string itself (no allocation)
  char digits[8];
  for (const unsigned char octet : a.to_v4().to_bytes()) {
    if (!out.empty()) out += '.';
    out.append(digits, std::to_chars(digits, std::end(digits), octet).ptr);
  }
  out += ':';
  out.append(digits, std::to_chars(digits, std::end(digits), ep.port()).ptr);
  return out;
}

std::string quote_text(std::string_view s) {
  return s.size() <= kMaxQuoted ? fmt::format("'{}'", s) : fmt::format("'{}...'", s.substr(0, kMaxQuoted));
}

bool is_redirect(int status) {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

http::verb to_verb(HttpMethod m) {
  switch (m) {
    case HttpMethod::get: return http::verb::get;
    case HttpMethod::head: return http::verb::head;
    case HttpMethod::post: return http::verb::post;
  }
  return http::verb::get;
}

bool is_ip_literal(const std::string& host) {
  error_code ec;
  (void)asio::ip::make_address(host, ec);
  return !ec;
}

tcp::socket& lowest_socket(tcp::socket& s) { return s; }
tcp::socket& lowest_socket(TlsStream& s) { return s.next_layer(); }

// Everything one probe carries from hop to hop (a hop: one request on one connection).
struct Probe {
  Probe(const TargetConfig& t, const ProbeContext& c, Resolver& r, const asio::any_io_executor& e,
        Clock::time_point not_after)
      : target(t), ctx(c), resolver(r), ex(e), start(Clock::now()),
        deadline(start < not_after - t.timeout ? start + t.timeout : not_after), watchdog(e),
        url(t.parsed_url), method(t.method) {}

  const TargetConfig& target;
  const ProbeContext& ctx;
  Resolver& resolver;
  asio::any_io_executor ex;
  Clock::time_point start;
  Clock::time_point deadline;
  // Closes the current hop's socket at the deadline, which makes the operation the probe waits
  // on finish at once with an error; the probe then reports a timeout.
  asio::steady_timer watchdog;
  CheckResult result;

  HttpUrl url;  // of the current hop
  HttpMethod method;
  bool send_body = true;  // false once a redirect turned the request into a GET
  std::string location;   // the current hop's Location header
  std::optional<bool> regexp_match;  // the final hop's body searched as it arrived
  bool budget_refused = false;       // checker.max_body_memory_bytes had no room for the search

  bool expired() const { return Clock::now() >= deadline; }

  void start_hop() {
    result.http_status.reset();
    result.http_response_time.reset();
    result.peer.clear();
    result.tls_cert_not_after.reset();
    result.body_bytes = 0;
    location.clear();
    regexp_match.reset();
    budget_refused = false;
  }

  bool follows_redirect() const {
    return target.follow_redirects && result.http_status && is_redirect(*result.http_status) && !location.empty();
  }

  bool fail(ErrorClass e, std::string detail) {
    result.error = e;
    result.error_detail = std::move(detail);
    return false;
  }

  bool fail_timeout(Phase phase) {
    std::string detail = fmt::format("timeout after {:.3f} s {}", std::chrono::duration<double>(deadline - start).count(),
                                     phase_text(phase));
    if (phase == Phase::dns) {
      detail += " " + url.host;
    } else if (!result.peer.empty()) {
      detail += (phase == Phase::request ? " to " : " from ") + result.peer;
    }
    return fail(ErrorClass::timeout, std::move(detail));
  }

  // An I/O error after the deadline is the watchdog's doing (or came too late anyway).
  bool fail_io(Phase phase, ErrorClass e, std::string detail) {
    return expired() ? fail_timeout(phase) : fail(e, std::move(detail));
  }
};

// (Re)arms the watchdog for `stream`. The handler owns the stream, not the probe: it may run after
// the probe has finished, and then only drops its reference.
template <class Stream>
void arm_watchdog(Probe& p, const std::shared_ptr<Stream>& stream, Clock::time_point at) {
  p.watchdog.expires_at(at);
  p.watchdog.async_wait([stream](const error_code& ec) {
    if (ec) return;  // disarmed
    error_code ignored;
    lowest_socket(*stream).close(ignored);
  });
}

bool family_allows(IpFamily family, const asio::ip::address& a) {
  return family == IpFamily::any || (family == IpFamily::v4 && a.is_v4()) || (family == IpFamily::v6 && a.is_v6());
}

// The port of p.url; 0 with p's error set when it is not one.
unsigned short url_port(Probe& p) {
  const std::string& port_text = p.url.port;
  unsigned short port = 0;
  const auto [end, perr] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (perr != std::errc{} || end != port_text.data() + port_text.size() || port == 0) {
    p.fail(ErrorClass::connect, fmt::format("invalid port {}", quote_text(port_text)));
    return 0;
  }
  return port;
}

// An address literal needs no resolver: its endpoint (empty with p's error set when the family
// does not allow it). nullopt: the host is a name to look up. A plain function, not a coroutine:
// the usual probe of an address costs no coroutine frame here.
std::optional<std::vector<tcp::endpoint>> literal_endpoints(Probe& p, unsigned short port) {
  error_code ec;
  const auto literal = asio::ip::make_address(p.url.host, ec);
  if (ec) return std::nullopt;
  std::vector<tcp::endpoint> out;
  const IpFamily family = p.target.ip_family;
  p.result.timings.dns = p.result.timings.dns.value_or(0.0);
  if (!family_allows(family, literal)) {
    p.fail(ErrorClass::dns, fmt::format("{} is not an address of ip_family {}", p.url.host, ip_family_name(family)));
  } else {
    out.emplace_back(literal, port);
  }
  return out;
}

// The endpoints of a host name, in the resolver's order (RFC 6724); empty with p's error set on
// failure. The lookup runs on this shard's event loop (c-ares) and ends at the probe's deadline at
// the latest, so a slow or dead name server costs only the probes of its own names.
awaitable<std::vector<tcp::endpoint>> lookup(Probe& p, unsigned short port) {
  std::vector<tcp::endpoint> out;
  const IpFamily family = p.target.ip_family;
  const auto t0 = Clock::now();
  auto answer = co_await p.resolver.resolve(p.url.host, family, p.deadline);
  if (!answer) {
    p.fail_timeout(Phase::dns);
    co_return out;
  }
  add_seconds(p.result.timings.dns, t0, Clock::now());
  p.result.dns_cached = p.result.dns_cached.value_or(true) && answer->cached;
  if (answer->status != DnsStatus::ok) {
    p.fail(ErrorClass::dns, std::move(answer->detail));
    co_return out;
  }
  for (const auto& a : answer->addresses) {
    if (family_allows(family, a)) out.emplace_back(a, port);
  }
  if (out.empty()) {
    p.fail(ErrorClass::dns, fmt::format("resolve {}: no address of ip_family {}", p.url.host, ip_family_name(family)));
  }
  co_return out;
}

// Tries the endpoints in order; the first that accepts is the peer.
awaitable<bool> connect(Probe& p, tcp::socket& socket, const std::vector<tcp::endpoint>& endpoints) {
  const auto t0 = Clock::now();
  std::string failures;
  for (const auto& ep : endpoints) {
    if (socket.is_open()) {
      error_code ignored;
      socket.close(ignored);
    }
    const auto [ec] = co_await socket.async_connect(ep, kUse);
    if (!ec) {
      add_seconds(p.result.timings.connect, t0, Clock::now());
      p.result.peer = endpoint_text(ep);
      co_return true;
    }
    if (p.expired()) {
      p.result.peer = endpoint_text(ep);  // named in the timeout's detail, then dropped
      p.fail_timeout(Phase::connect);
      p.result.peer.clear();
      co_return false;
    }
    if (!failures.empty()) failures += "; ";
    failures += fmt::format("connect {}: {}", endpoint_text(ep), ec.message());
  }
  co_return p.fail(ErrorClass::connect, std::move(failures));
}

// What the certificate check found, for error_detail, and the leaf's expiry even when the
// handshake is refused (an expired certificate is exactly when someone wants to see it).
struct VerifyNote {
  std::string reason;
  std::optional<std::chrono::sys_seconds> leaf_not_after;
};

// Chain verification (OpenSSL's, as configured on the context) plus RFC 6125 host name
// verification of the leaf (Asio's host_name_verification, which also handles IP addresses).
class Verifier {
 public:
  Verifier(std::string host, std::shared_ptr<VerifyNote> note)
      : check_(host), host_(std::move(host)), note_(std::move(note)) {}

  bool operator()(bool preverified, ssl::verify_context& vctx) const {
    X509_STORE_CTX* store = vctx.native_handle();
    const int depth = X509_STORE_CTX_get_error_depth(store);
    if (depth == 0) note_->leaf_not_after = certificate_not_after(X509_STORE_CTX_get_current_cert(store));
    if (!preverified) {
      if (note_->reason.empty()) {
        note_->reason = fmt::format("certificate verify failed at depth {}: {}", depth,
                                    X509_verify_cert_error_string(X509_STORE_CTX_get_error(store)));
      }
      return false;
    }
    if (!check_(preverified, vctx)) {
      if (note_->reason.empty()) note_->reason = fmt::format("certificate does not match host name {}", host_);
      return false;
    }
    return true;
  }

 private:
  ssl::host_name_verification check_;
  std::string host_;
  std::shared_ptr<VerifyNote> note_;
};

// SSL_set_tlsext_host_name, without the macro's C-style cast.
bool set_sni(SSL* ssl, const std::string& host) {
  return SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                  static_cast<void*>(const_cast<char*>(host.c_str()))) == 1;
}

awaitable<bool> handshake(Probe& p, TlsStream& stream) {
  const auto t0 = Clock::now();
  const std::string& host = p.url.host;
  // SNI carries host names only (RFC 6066).
  if (!is_ip_literal(host) && !set_sni(stream.native_handle(), host)) {
    co_return p.fail(ErrorClass::tls, fmt::format("cannot send {} as TLS SNI", host));
  }
  auto note = std::make_shared<VerifyNote>();
  if (p.target.tls_verify) {
    error_code ec;
    stream.set_verify_mode(ssl::verify_peer, ec);
    if (!ec) stream.set_verify_callback(Verifier(host, note), ec);
    if (ec) co_return p.fail(ErrorClass::tls, fmt::format("TLS verification setup: {}", ec.message()));
  }
  const auto [ec] = co_await stream.async_handshake(ssl::stream_base::client, kUse);
  if (ec) {
    p.result.tls_cert_not_after = note->leaf_not_after;
    std::string why = note->reason;
    if (why.empty()) {
      const long verify = SSL_get_verify_result(stream.native_handle());
      if (verify != X509_V_OK) {
        why = fmt::format("certificate verify failed: {}", X509_verify_cert_error_string(verify));
      } else if (ec == asio::error::eof || ec == ssl::error::stream_truncated) {
        why = "connection closed by the server";
      } else {
        why = ec.message();
      }
    }
    co_return p.fail_io(Phase::tls, ErrorClass::tls,
                        fmt::format("TLS handshake with {} (host {}): {}", p.result.peer, host, why));
  }
  add_seconds(p.result.timings.tls, t0, Clock::now());
  p.result.tls_cert_not_after = certificate_not_after(SSL_get0_peer_certificate(stream.native_handle()));
  co_return true;
}

// The fields the checker sets itself, or that frame the message: a target header of one of these
// names replaces or changes them, which the hand-written request below does not do.
bool checker_field(std::string_view name) noexcept {
  for (const std::string_view f : {"host", "user-agent", "accept", "connection", "content-length",
                                   "transfer-encoding"}) {
    if (ascii_iequals(name, f)) return true;
  }
  return false;
}

bool blank(char c) noexcept { return c == ' ' || c == '\t'; }

// The request's bytes as Beast writes the message send_request would otherwise build (start line;
// Host, User-Agent, Accept, the target's headers in file order, Connection: close; Content-Length
// where prepare_payload puts one; the body), written straight into `out`. Only for the plain case,
// where Beast's set() just appends: the target's header names distinct, none of the fields above,
// no value with blanks at either end (Beast trims them), nothing near Beast's 64 KiB field limit.
// False otherwise, and Beast builds the message.
bool render_request(const Probe& p, const std::string& user_agent, std::string& out) {
  const auto& headers = p.target.headers;
  for (auto it = headers.begin(); it != headers.end(); ++it) {
    const auto& [name, value] = *it;
    if (checker_field(name) || name.size() > 1024 || value.size() > 8192) return false;
    if (!value.empty() && (blank(value.front()) || blank(value.back()))) return false;
    for (auto prev = headers.begin(); prev != it; ++prev) {
      if (ascii_iequals(prev->first, name)) return false;
    }
  }
  const std::string_view body = p.send_body ? std::string_view(p.target.body) : std::string_view();
  const http::verb verb = to_verb(p.method);
  out.clear();
  out += http::to_string(verb);
  out += ' ';
  out += p.url.target;
  out += " HTTP/1.1\r\nHost: ";
  out += p.url.host_header();
  out += "\r\nUser-Agent: ";
  out += user_agent;
  out += "\r\nAccept: */*\r\n";
  for (const auto& [name, value] : headers) {
    out += name;
    out += ": ";
    out += value;
    out += "\r\n";
  }
  out += "Connection: close\r\n";
  // Beast's prepare_payload: a length for a non-empty body, and for POST always.
  if (!body.empty() || verb == http::verb::post) {
    char digits[24];
    const auto end = std::to_chars(digits, digits + sizeof digits, body.size()).ptr;
    out += "Content-Length: ";
    out.append(digits, end);
    out += "\r\n";
  }
  out += "\r\n";
  out += body;
  return true;
}

template <class Stream>
awaitable<bool> send_request(Probe& p, Stream& stream) {
  Pooled<std::string> text;
  if (render_request(p, p.ctx.user_agent(), *text)) {
    const auto [ec, n] = co_await asio::async_write(stream, asio::buffer(*text), kUse);
    if (ec) {
      co_return p.fail_io(Phase::request, ErrorClass::protocol,
                          fmt::format("send request to {}: {}", p.result.peer, ec.message()));
    }
    co_return true;
  }
  http::request<http::string_body> req{to_verb(p.method), p.url.target, 11};
  req.set(http::field::host, p.url.host_header());
  req.set(http::field::user_agent, p.ctx.user_agent());
  req.set(http::field::accept, "*/*");
  for (const auto& [name, value] : p.target.headers) req.set(name, value);  // the target's win...
  req.set(http::field::connection, "close");                                // ...but this one
  if (p.send_body) req.body() = p.target.body;
  req.prepare_payload();
  const auto [ec, n] = co_await http::async_write(stream, req, kUse);
  if (ec) {
    co_return p.fail_io(Phase::request, ErrorClass::protocol,
                        fmt::format("send request to {}: {}", p.result.peer, ec.message()));
  }
  co_return true;
}

bool closed_early(const error_code& ec) {
  return ec == asio::error::eof || ec == ssl::error::stream_truncated || ec == http::error::end_of_stream ||
         ec == http::error::partial_message || ec == asio::error::connection_reset;
}

using Parser = http::response_parser<http::buffer_body>;

// What http::async_read_header (`header_only`) or http::async_read does, step for step (Beast
// 1.81's read_op around read_some_op: parse what the buffer holds, read at most 64 KiB more when
// the parser needs it, end of stream as Beast reports it), in one coroutine of ours: Beast's
// composed operations copy the executor and a work guard at every layer, about 50 times a probe.
// The same error codes come out (need_more is never returned; need_buffer is, as Beast returns it).
template <class Stream>
awaitable<error_code> read_message(Stream& stream, boost::beast::flat_buffer& b, Parser& parser, bool header_only) {
  parser.eager(!header_only);
  const auto done = [&] { return header_only ? parser.is_header_done() : parser.is_done(); };
  error_code ec;
  while (!done()) {
    // read_some_op
    bool read = b.size() == 0;
    for (;;) {
      if (!read) {
        const auto used = parser.put(b.data(), ec);
        b.consume(used);
        if (ec != http::error::need_more) break;
      }
      read = false;
      const auto size = boost::beast::read_size(b, 65536);
      if (size == 0) co_return http::error::buffer_overflow;
      const auto [rec, n] = co_await stream.async_read_some(b.prepare(size), kUse);
      b.commit(n);
      ec = rec;
      if (ec == asio::error::eof) {
        if (parser.got_some()) {
          ec = {};
          parser.put_eof(ec);
          break;  // done, or put_eof's error
        }
        ec = http::error::end_of_stream;
        break;
      }
      if (ec) break;
    }
    if (ec) co_return ec;
  }
  co_return ec;
}

// Reads the status line and headers (skipping 1xx), and then, unless the response is a redirect
// the probe will follow, the body up to the cap. `complete`: the whole message was read.
template <class Stream>
awaitable<bool> read_response(Probe& p, Stream& stream, bool& complete) {
  complete = false;
  Pooled<boost::beast::flat_buffer> pooled;
  boost::beast::flat_buffer& buffer = *pooled;
  const auto t_sent = Clock::now();
  {
    const auto [ec, n] = co_await stream.async_read_some(buffer.prepare(kFirstRead), kUse);
    if (ec) {
      co_return p.fail_io(Phase::response, ErrorClass::protocol,
                          closed_early(ec)
                              ? fmt::format("connection closed by {} before any response", p.result.peer)
                              : fmt::format("read response from {}: {}", p.result.peer, ec.message()));
    }
    buffer.commit(n);
  }
  const auto t_first = Clock::now();
  add_seconds(p.result.timings.ttfb, t_sent, t_first);

  const std::size_t header_limit = p.ctx.limits().max_header_bytes;
  std::optional<Parser> parser;
  for (int informational = 0;; ++informational) {
    parser.emplace();
    parser->header_limit(static_cast<std::uint32_t>(std::min<std::size_t>(header_limit, UINT32_MAX)));
    parser->body_limit(std::numeric_limits<std::uint64_t>::max());  // the cap is applied below
    if (p.method == HttpMethod::head) parser->skip(true);
    const error_code ec = co_await read_message(stream, buffer, *parser, true);
    if (ec) {
      std::string detail;
      if (ec == http::error::header_limit) {
        detail = fmt::format("response headers from {} exceed {} bytes", p.result.peer, header_limit);
      } else if (closed_early(ec)) {
        detail = fmt::format("connection closed by {} in the response headers", p.result.peer);
      } else {
        detail = fmt::format("invalid HTTP response from {}: {}", p.result.peer, ec.message());
      }
      co_return p.fail_io(Phase::response, ErrorClass::protocol, std::move(detail));
    }
    const int status = parser->get().result_int();
    if (status / 100 != 1 || status == 101 || informational >= kMaxInformational) break;
  }
  auto& res = parser->get();
  p.result.http_status = res.result_int();
  p.result.http_response_time = seconds_between(p.start, Clock::now());
  if (const auto loc = res.find(http::field::location); loc != res.end()) p.location = std::string(loc->value());
  if (p.follows_redirect()) co_return true;  // its body is of no interest

  // The body, up to the cap: a longer one is not an error, it is cut. With a regexp it is searched
  // piece by piece as it arrives, holding only what a match may still need, within the process's
  // body budget; without one the bytes are only counted, through the thread's discard buffer.
  const std::uint64_t cap = p.target.max_body_bytes;
  std::optional<Regex::Stream> search;
  if (p.target.regexp) search.emplace(*p.target.regexp);
  BodyHold hold(p.ctx.limits().body_budget.get());
  std::uint64_t got = 0;
  bool ended_by_close = false;
  error_code body_ec;
  while (!parser->is_done() && got < cap) {
    // Each read makes progress or fails, but a read served from the buffer never meets the
    // watchdog; checking here keeps the deadline absolute whatever the parser does.
    if (p.expired()) {
      body_ec = asio::error::timed_out;
      break;
    }
    const auto room = static_cast<std::size_t>(std::min<std::uint64_t>(cap - got, kReadChunk));
    char* dst = nullptr;
    if (search) {
      // Read straight into the search's buffer, after the tail it keeps.
      if (!hold.cover(search->needs(room))) {
        p.budget_refused = true;
        break;
      }
      dst = search->prepare(room);
    } else {
      dst = discard_buffer();
    }
    parser->get().body().data = dst;
    parser->get().body().size = room;
    const error_code ec = co_await read_message(stream, buffer, *parser, false);
    const auto arrived = room - parser->get().body().size;
    got += arrived;
    if (search) search->commit(arrived);
    if (!ec || ec == http::error::need_buffer) continue;
    // A body delimited by the end of the connection, over TLS without close_notify: HTTP/1.1's
    // framing says the message is complete; the missing alert is the server's sloppiness.
    if (ec == ssl::error::stream_truncated && !parser->content_length() && !parser->chunked()) {
      ended_by_close = true;
      break;
    }
    body_ec = ec;
    break;
  }
  if (search && got > 0 && !p.budget_refused) p.regexp_match = search->finish();
  p.result.body_bytes = got;
  if (body_ec) {
    std::string detail;
    if (closed_early(body_ec)) {
      const auto length = parser->content_length();
      detail = length ? fmt::format("connection closed by {} after {} of {} body bytes", p.result.peer, got, *length)
                      : fmt::format("connection closed by {} after {} body bytes (chunked body incomplete)",
                                    p.result.peer, got);
    } else {
      detail = fmt::format("read body from {}: {}", p.result.peer, body_ec.message());
    }
    co_return p.fail_io(Phase::body, ErrorClass::protocol, std::move(detail));
  }
  add_seconds(p.result.timings.transfer, t_first, Clock::now());
  complete = parser->is_done() || ended_by_close;
  co_return true;
}

// After a complete TLS response: close_notify both ways, briefly; its outcome changes nothing.
awaitable<void> tls_close_notify(Probe& p, const std::shared_ptr<TlsStream>& stream) {
  arm_watchdog(p, stream, std::min(p.deadline, Clock::now() + p.ctx.limits().tls_shutdown_grace));
  co_await stream->async_shutdown(kUse);
}

// close() alone: with no other descriptor for the socket it does what shutdown + close did (a FIN,
// or a reset if bytes are left unread), one system call fewer per probe.
void close_socket(tcp::socket& socket) {
  error_code ignored;
  socket.close(ignored);
}

// One request on one fresh connection to p.url.
template <class Stream>
awaitable<bool> run_hop(Probe& p, std::vector<tcp::endpoint> endpoints) {
  std::shared_ptr<Stream> stream;
  if constexpr (std::is_same_v<Stream, TlsStream>) {
    ssl::context* tls = p.ctx.tls().find(p.target);
    if (tls == nullptr) {
      co_return p.fail(ErrorClass::tls, "no TLS context for this target's tls_verify/ca_file (checker bug)");
    }
    stream = std::make_shared<TlsStream>(p.ex, *tls);
  } else {
    stream = std::make_shared<tcp::socket>(p.ex);
  }
  arm_watchdog(p, stream, p.deadline);
  bool ok = co_await connect(p, lowest_socket(*stream), endpoints);
  if constexpr (std::is_same_v<Stream, TlsStream>) {
    if (ok) ok = co_await handshake(p, *stream);
  }
  if (ok) ok = co_await send_request(p, *stream);
  bool complete = false;
  if (ok) ok = co_await read_response(p, *stream, complete);
  if constexpr (std::is_same_v<Stream, TlsStream>) {
    if (complete && !p.expired()) co_await tls_close_notify(p, stream);
  }
  close_socket(lowest_socket(*stream));  // after anything else the socket is just closed
  p.watchdog.cancel();
  co_return ok;
}

awaitable<void> follow_hops(Probe& p) {
  for (;;) {
    p.start_hop();
    std::vector<tcp::endpoint> endpoints;
    if (const unsigned short port = url_port(p); port != 0) {
      if (auto literal = literal_endpoints(p, port)) {
        endpoints = std::move(*literal);
      } else {
        endpoints = co_await lookup(p, port);
      }
    }
    if (endpoints.empty()) co_return;
    bool ok = false;
    if (p.url.https) {
      ok = co_await run_hop<TlsStream>(p, std::move(endpoints));
    } else {
      ok = co_await run_hop<tcp::socket>(p, std::move(endpoints));
    }
    if (!ok || !p.follows_redirect()) co_return;
    const int status = *p.result.http_status;
    if (p.result.redirects >= p.target.max_redirects) {
      p.fail(ErrorClass::too_many_redirects,
             fmt::format("more than {} redirects; the last, {}, to {}", p.target.max_redirects, status,
                         quote_text(p.location)));
      co_return;
    }
    std::string why;
    auto next = resolve_redirect(p.url, p.location, &why);
    if (!next) {
      p.fail(ErrorClass::protocol, fmt::format("redirect {} to unusable Location {}: {}", status, quote_text(p.location), why));
      co_return;
    }
    ++p.result.redirects;
    // What browsers do: 303 turns anything but HEAD into GET, 301/302 turn POST into GET;
    // 307/308 repeat the request as it was.
    if ((status == 303 && p.method != HttpMethod::head) ||
        ((status == 301 || status == 302) && p.method == HttpMethod::post)) {
      p.method = HttpMethod::get;
      p.send_body = false;
    }
    p.url = std::move(*next);
  }
}

}  // namespace

bool BodyBudget::try_take(std::size_t n) noexcept {
  std::size_t used = used_.load(std::memory_order_relaxed);
  do {
    if (used + n > limit_.load(std::memory_order_relaxed)) return false;
  } while (!used_.compare_exchange_weak(used, used + n, std::memory_order_relaxed));
  return true;
}

ProbeContext::ProbeContext(TlsContextCache tls, ProbeLimits limits)
    : tls_(std::move(tls)), limits_(limits), user_agent_(fmt::format("webmon/{}", webmon::version())) {}

std::shared_ptr<const ProbeContext> ProbeContext::for_targets(const std::vector<TargetConfig>& targets,
                                                              ProbeLimits limits) {
  return std::make_shared<const ProbeContext>(TlsContextCache::for_targets(targets), limits);
}

ProbeFn probe_fn(std::shared_ptr<const ProbeContext> ctx) {
  return [ctx = std::move(ctx)](std::shared_ptr<const TargetConfig> target, ProbeRun run) {
    return run_probe(std::move(target), ctx, std::move(run.resolver), run.not_after);
  };
}

awaitable<CheckResult> run_probe(std::shared_ptr<const TargetConfig> target, std::shared_ptr<const ProbeContext> ctx,
                                 std::shared_ptr<Resolver> resolver, Clock::time_point not_after) {
  const auto ex = co_await asio::this_coro::executor;
  Probe p(*target, *ctx, *resolver, ex, not_after);
  try {
    co_await follow_hops(p);
  } catch (const std::exception& e) {
    // Nothing a server sends should get here (errors are values); if something does, the probe
    // still yields its one result rather than a gap.
    p.fail(ErrorClass::protocol, fmt::format("internal error: {}", e.what()));
  }
  CheckResult& r = p.result;
  r.url = target->url;
  r.regexp_match = p.regexp_match;
  if (p.budget_refused && r.error == ErrorClass::none) {
    const std::size_t limit = ctx->limits().body_budget->limit();
    r.error_detail = fmt::format(
        "regexp not searched past {} body bytes: checker.max_body_memory_bytes ({}) is held by other probes",
        r.body_bytes, limit % (1u << 20) == 0 ? fmt::format("{} MiB", limit >> 20) : fmt::format("{} bytes", limit));
  }
  r.ok = r.error == ErrorClass::none && r.http_status && target->status_is_valid(*r.http_status) &&
         (!target->regexp || r.regexp_match == true);
  r.timings.total = seconds_between(p.start, Clock::now());
  co_return std::move(r);
}

}  // namespace webmon::checker
