#include "webmon/checker/resolver.hpp"

#include <algorithm>
#include <charconv>
#include <deque>
#include <cstring>
#include <fstream>
#include <sstream>
#include <unordered_map>
#include <utility>

#include <ares.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "webmon/common/text.hpp"

namespace webmon::checker {
namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;
using boost::system::error_code;

std::string_view dns_status_label(DnsStatus s) noexcept {
  switch (s) {
    case DnsStatus::ok: return "ok";
    case DnsStatus::nxdomain: return "nxdomain";
    case DnsStatus::nodata: return "nodata";
    case DnsStatus::servfail: return "servfail";
    case DnsStatus::refused: return "refused";
    case DnsStatus::no_answer: return "no_answer";
    case DnsStatus::error: return "error";
  }
  return "error";
}

namespace {

// A shard's cache holds at most this many names; past it, expired entries are swept and, if
// that is not enough, new answers are simply not cached (redirects can name any host).
constexpr std::size_t kMaxCacheEntries = 1u << 17;
// Queries c-ares runs at once per shard; more wait their turn (inside their probes' deadlines).
// Ten thousand lookups sent at once would bring ten thousand answers at once, more than a UDP
// socket's default receive buffer (rmem_max, 208 KiB) holds: the dropped ones would wait for a
// retry seconds later. At 20 ms a lookup, 256 at a time still resolve 12,800 names a second.
constexpr std::size_t kMaxRunning = 256;
// The receive buffer asked for c-ares's sockets. 256 lookups are up to 512 queries (A and AAAA)
// whose answers can all arrive in one burst (one server, one delay), at about 1.3 KiB of buffer
// each on loopback: more than the default 208 KiB holds while the loop is busy elsewhere, and an
// answer dropped there is waited for until the next try or the probe's deadline. The kernel
// gives at most net.core.rmem_max (doubled); asking more is harmless.
constexpr int kSocketReceiveBuffer = 1 << 20;

void init_library() {
  static const int status = ares_library_init(ARES_LIB_INIT_ALL);
  if (status != ARES_SUCCESS) throw DnsSetupError(fmt::format("c-ares: {}", ares_strerror(status)));
}

// What c-ares 1.18 does not take from /etc/resolv.conf as glibc does: `options timeout:N` and
// `attempts:N` (it knows only BIND's retrans:/retry:), and the number of name servers.
struct ResolvConf {
  int nameservers = 0;
  int timeout_ms = 5000;  // glibc's defaults (resolv.conf(5))
  int attempts = 2;
};

ResolvConf read_resolv_conf(const char* path) {
  ResolvConf rc;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::string key;
    if (!(words >> key) || key[0] == '#' || key[0] == ';') continue;
    if (key == "nameserver") {
      ++rc.nameservers;
    } else if (key == "options") {
      std::string opt;
      while (words >> opt) {
        int v = 0;
        auto number = [&](std::string_view prefix) {
          if (opt.rfind(prefix, 0) != 0) return false;
          const auto text = std::string_view(opt).substr(prefix.size());
          const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
          return ec == std::errc{} && ptr == text.data() + text.size();
        };
        if (number("timeout:")) rc.timeout_ms = std::clamp(v, 1, 30) * 1000;
        else if (number("attempts:")) rc.attempts = std::clamp(v, 1, 5);
      }
    }
  }
  return rc;
}

struct ChannelDeleter {
  void operator()(ares_channeldata* c) const noexcept { ares_destroy(c); }
};
struct AddrinfoDeleter {
  void operator()(ares_addrinfo* a) const noexcept { ares_freeaddrinfo(a); }
};

std::string cache_key(std::string_view host, IpFamily family) {
  std::string key = ascii_lower(host);
  key += '\0';
  key += static_cast<char>('0' + static_cast<int>(family));
  return key;
}

// Someone waiting for a query: the answer is put here and the timer cancelled to wake them.
struct Waiter {
  explicit Waiter(const asio::any_io_executor& ex) : wake(ex) {}
  asio::steady_timer wake;
  std::optional<DnsAnswer> answer;
};

// A c-ares socket, watched for as long as c-ares wants it.
struct Watch {
  explicit Watch(const asio::any_io_executor& ex) : desc(ex) {}
  asio::posix::stream_descriptor desc;
  bool want_read = false;
  bool want_write = false;
  bool reading = false;
  bool writing = false;
  bool released = false;
};

struct CacheEntry {
  DnsAnswer answer;
  Clock::time_point expires;
};

DnsAnswer answer_from(int status, int timeouts, const ares_addrinfo* res, const std::string& host, IpFamily family) {
  DnsAnswer a;
  switch (status) {
    case ARES_SUCCESS:
      for (const ares_addrinfo_node* n = res ? res->nodes : nullptr; n; n = n->ai_next) {
        if (n->ai_family == AF_INET && n->ai_addrlen >= static_cast<int>(sizeof(sockaddr_in))) {
          sockaddr_in sin{};
          std::memcpy(&sin, n->ai_addr, sizeof sin);
          asio::ip::address_v4::bytes_type b;
          std::memcpy(b.data(), &sin.sin_addr, b.size());
          a.addresses.emplace_back(asio::ip::address_v4(b));
        } else if (n->ai_family == AF_INET6 && n->ai_addrlen >= static_cast<int>(sizeof(sockaddr_in6))) {
          sockaddr_in6 sin6{};
          std::memcpy(&sin6, n->ai_addr, sizeof sin6);
          asio::ip::address_v6::bytes_type b;
          std::memcpy(b.data(), &sin6.sin6_addr, b.size());
          a.addresses.emplace_back(asio::ip::address_v6(b, sin6.sin6_scope_id));
        }
      }
      if (!a.addresses.empty()) {
        a.status = DnsStatus::ok;
      } else {
        a.status = DnsStatus::nodata;
        a.detail = fmt::format("resolve {}: no address of ip_family {}", host, ip_family_name(family));
      }
      return a;
    case ARES_ENODATA:
      a.status = DnsStatus::nodata;
      a.detail = family == IpFamily::any
                     ? fmt::format("resolve {}: the name has no address (NODATA)", host)
                     : fmt::format("resolve {}: no address of ip_family {} (NODATA)", host, ip_family_name(family));
      return a;
    default:
      break;
  }
  // The other outcomes: one status and one text each.
  struct Failure {
    int ares;
    DnsStatus status;
    const char* text;
  };
  static constexpr Failure kFailures[] = {
      {ARES_ENOTFOUND, DnsStatus::nxdomain, "NXDOMAIN"},
      {ARES_ESERVFAIL, DnsStatus::servfail, "SERVFAIL from the name server"},
      {ARES_EREFUSED, DnsStatus::refused, "REFUSED by the name server"},
      // Every server was unreachable, or (with several) answered SERVFAIL or REFUSED.
      {ARES_ECONNREFUSED, DnsStatus::no_answer, "no name server gave an answer (unreachable, SERVFAIL or REFUSED)"},
      {ARES_EDESTRUCTION, DnsStatus::error, "the resolver was shut down (reload or stop)"},
  };
  if (status == ARES_ETIMEOUT) {
    a.status = DnsStatus::no_answer;
    a.detail = fmt::format("resolve {}: no answer from the name servers ({} tries timed out)", host, timeouts);
    return a;
  }
  for (const auto& f : kFailures) {
    if (f.ares == status) {
      a.status = f.status;
      a.detail = fmt::format("resolve {}: {}", host, f.text);
      return a;
    }
  }
  a.status = DnsStatus::error;
  a.detail = fmt::format("resolve {}: {}", host, ares_strerror(status));
  return a;
}

// The seconds an answer may be kept: the smallest TTL of its records and CNAMEs, capped.
int positive_ttl(const ares_addrinfo* res, int cap) {
  int ttl = cap;
  for (const ares_addrinfo_node* n = res ? res->nodes : nullptr; n; n = n->ai_next) ttl = std::min(ttl, n->ai_ttl);
  for (const ares_addrinfo_cname* c = res ? res->cnames : nullptr; c; c = c->next) ttl = std::min(ttl, c->ttl);
  return std::max(ttl, 0);
}

}  // namespace

// Everything the handlers of the channel's sockets and timer need; they hold it as weak_ptr, so
// one that runs after the resolver is gone does nothing.
struct Resolver::Impl : std::enable_shared_from_this<Resolver::Impl> {
  struct Query {
    Impl* owner = nullptr;  // c-ares calls back only inside calls this Impl makes
    std::string key;
    std::string host;
    IpFamily family = IpFamily::any;
    Clock::time_point started;
    Clock::time_point latest_deadline;  // of its waiters: past it, nobody waits any more
    bool running = false;
    std::vector<std::shared_ptr<Waiter>> waiters;
  };

  Impl(asio::any_io_executor e, const CheckerDns& c) : ex(std::move(e)), config(c), timer(ex) {}

  ~Impl() {
    destroying = true;
    channel.reset();  // running queries end with ARES_EDESTRUCTION; sockets are closed (and released)
    for (auto& [fd, w] : watches) release(*w);
    for (Query* q : queued) {
      for (auto& w : q->waiters) {
        w->answer = answer_from(ARES_EDESTRUCTION, 0, nullptr, q->host, q->family);
        w->wake.cancel();
      }
    }
  }

  // Starts `q` now, or when a running query ends.
  void submit(Query& q) {
    queued.push_back(&q);
    start_queued();
  }

  void start_queued() {
    if (draining || destroying) return;  // a query that ends inside start() comes back here
    draining = true;
    const auto now = Clock::now();
    while (running_count < kMaxRunning && !queued.empty()) {
      Query* q = queued.front();
      queued.pop_front();
      if (q->latest_deadline <= now) {
        queries.erase(q->key);  // every waiter has given up already
        continue;
      }
      start(*q);  // `q` may be gone on return
    }
    draining = false;
  }

  void open() {
    init_library();
    const ResolvConf rc = read_resolv_conf("/etc/resolv.conf");
    const int servers = config.servers.empty() ? rc.nameservers : static_cast<int>(config.servers.size());
    ares_options opts{};
    int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_FLAGS | ARES_OPT_SOCK_RCVBUF;
    opts.socket_receive_buffer_size = kSocketReceiveBuffer;
    opts.sock_state_cb = &Impl::on_sock_state;
    opts.sock_state_cb_data = this;
    opts.timeout = config.timeout_ms > 0 ? config.timeout_ms : rc.timeout_ms;
    opts.tries = config.attempts > 0 ? config.attempts : rc.attempts;
    // With one name server, its SERVFAIL or REFUSED is the answer: take it as such (c-ares 1.18
    // would otherwise ask the same server again and report "could not contact DNS servers").
    // With several, c-ares moves on to the next one on either, as glibc does.
    opts.flags = servers <= 1 ? ARES_FLAG_NOCHECKRESP : 0;
    ares_channel ch = nullptr;
    if (const int st = ares_init_options(&ch, &opts, mask); st != ARES_SUCCESS) {
      throw DnsSetupError(fmt::format("c-ares: cannot set up a resolver: {}", ares_strerror(st)));
    }
    channel.reset(ch);
    if (!config.servers.empty()) {
      std::string csv;
      for (const auto& s : config.servers) csv += (csv.empty() ? "" : ",") + s;
      if (const int st = ares_set_servers_ports_csv(ch, csv.c_str()); st != ARES_SUCCESS) {
        throw DnsSetupError(fmt::format("checker.dns.servers {}: {}", csv, ares_strerror(st)));
      }
    }
  }

  void start(Query& q) {
    ares_addrinfo_hints hints{};
    hints.ai_family = q.family == IpFamily::v4 ? AF_INET : q.family == IpFamily::v6 ? AF_INET6 : AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    q.started = Clock::now();
    q.running = true;
    ++running_count;
    // May call back at once (an /etc/hosts entry, a bad name): `q` may be gone on return.
    ares_getaddrinfo(channel.get(), q.host.c_str(), nullptr, &hints, &Impl::on_addrinfo, &q);
    rearm_timer();
  }

  static void on_addrinfo(void* arg, int status, int timeouts, ares_addrinfo* res) noexcept {
    std::unique_ptr<ares_addrinfo, AddrinfoDeleter> owned_res(res);
    auto* q = static_cast<Query*>(arg);
    Impl* self = q->owner;
    std::unique_ptr<Query> owned;
    if (auto it = self->queries.find(q->key); it != self->queries.end() && it->second.get() == q) {
      owned = std::move(it->second);
      self->queries.erase(it);
    }
    if (q->running) --self->running_count;
    DnsAnswer answer;
    try {
      answer = answer_from(status, timeouts, res, q->host, q->family);
      if (status != ARES_EDESTRUCTION) self->finished(*q, answer, positive_ttl(res, self->config.max_ttl_seconds));
    } catch (const std::exception& e) {
      // Only allocation can fail here; the waiters still get an answer rather than their deadline.
      answer.status = DnsStatus::error;
      answer.detail = fmt::format("resolve {}: {}", q->host, e.what());
    }
    for (auto& w : q->waiters) {
      w->answer = answer;
      w->wake.cancel();
    }
    try {
      self->start_queued();
    } catch (const std::exception& e) {
      spdlog::error("dns: cannot start a queued lookup: {}", e.what());
    }
  }

  void finished(const Query& q, const DnsAnswer& answer, int ttl) {
    ++stats.by_status[static_cast<int>(answer.status)];
    stats.query_seconds.push_back(std::chrono::duration<double>(Clock::now() - q.started).count());
    if (!config.cache) return;
    int keep = 0;
    if (answer.status == DnsStatus::ok) keep = ttl;
    else if (answer.status == DnsStatus::nxdomain || answer.status == DnsStatus::nodata) keep = config.negative_ttl_seconds;
    if (keep <= 0) return;
    const auto now = Clock::now();
    if (cache.size() >= kMaxCacheEntries) {
      std::erase_if(cache, [now](const auto& kv) { return kv.second.expires <= now; });
      if (cache.size() >= kMaxCacheEntries) return;
    }
    cache.insert_or_assign(q.key, CacheEntry{answer, now + std::chrono::seconds(keep)});
  }

  static void on_sock_state(void* data, ares_socket_t fd, int readable, int writable) noexcept {
    auto* self = static_cast<Impl*>(data);
    try {
      self->sock_state(fd, readable != 0, writable != 0);
    } catch (const std::exception& e) {
      // Without a watch the query ends by c-ares's own timeout: a late answer, not a lost one.
      spdlog::error("dns: cannot watch a c-ares socket: {}", e.what());
    }
  }

  void sock_state(int fd, bool readable, bool writable) {
    auto it = watches.find(fd);
    if (!readable && !writable) {
      if (it != watches.end()) {
        release(*it->second);
        watches.erase(it);
      }
      return;
    }
    if (it == watches.end()) {
      auto w = std::make_shared<Watch>(ex);
      error_code ec;
      w->desc.assign(fd, ec);
      if (ec) throw std::runtime_error(ec.message());
      it = watches.emplace(fd, std::move(w)).first;
    }
    it->second->want_read = readable;
    it->second->want_write = writable;
    if (!destroying) arm(it->second);
  }

  void arm(const std::shared_ptr<Watch>& w) {
    if (w->want_read && !w->reading) {
      w->reading = true;
      w->desc.async_wait(asio::posix::descriptor_base::wait_read, [weak = weak_from_this(), w](const error_code& ec) {
        w->reading = false;
        if (ec || w->released) return;
        if (auto self = weak.lock()) self->ready(w, true);
      });
    }
    if (w->want_write && !w->writing) {
      w->writing = true;
      w->desc.async_wait(asio::posix::descriptor_base::wait_write, [weak = weak_from_this(), w](const error_code& ec) {
        w->writing = false;
        if (ec || w->released) return;
        if (auto self = weak.lock()) self->ready(w, false);
      });
    }
  }

  void ready(const std::shared_ptr<Watch>& w, bool readable) {
    const int fd = w->desc.native_handle();
    // Wait again before c-ares reads: Asio's epoll is edge-triggered and a wait is not tried
    // speculatively, so a packet that arrived between c-ares's last read and a later wait would
    // go unnoticed until its query timed out. Queued first, the wait sees every later packet;
    // c-ares reads everything that came before.
    arm(w);
    ares_process_fd(channel.get(), readable ? fd : ARES_SOCKET_BAD, readable ? ARES_SOCKET_BAD : fd);
    rearm_timer();
  }

  // c-ares's next timeout (a retry, or giving up on a server) on one steady_timer.
  void rearm_timer() {
    if (destroying) return;
    timeval tv{};
    if (running_count == 0 || ares_timeout(channel.get(), nullptr, &tv) == nullptr) {
      if (timer_at) {
        timer.cancel();
        timer_at.reset();
      }
      return;
    }
    const auto at = Clock::now() + std::chrono::seconds(tv.tv_sec) + std::chrono::microseconds(tv.tv_usec);
    if (timer_at && *timer_at <= at) return;  // already due no later
    timer_at = at;
    timer.expires_at(at);
    timer.async_wait([weak = weak_from_this()](const error_code& ec) {
      if (ec) return;
      if (auto self = weak.lock()) {
        self->timer_at.reset();
        ares_process_fd(self->channel.get(), ARES_SOCKET_BAD, ARES_SOCKET_BAD);
        self->rearm_timer();
      }
    });
  }

  static void release(Watch& w) {
    w.released = true;
    // Deregisters from the reactor (its waits end as aborted); the descriptor is c-ares's to close.
    (void)w.desc.release();
  }

  asio::any_io_executor ex;
  CheckerDns config;
  std::unique_ptr<ares_channeldata, ChannelDeleter> channel;
  asio::steady_timer timer;
  std::optional<Clock::time_point> timer_at;
  std::unordered_map<int, std::shared_ptr<Watch>> watches;
  std::unordered_map<std::string, std::unique_ptr<Query>> queries;  // by cache_key, running or queued
  std::deque<Query*> queued;                                         // owned by `queries`
  std::size_t running_count = 0;
  bool draining = false;
  std::unordered_map<std::string, CacheEntry> cache;                // by cache_key
  ResolverStats stats;
  bool destroying = false;
};

Resolver::Resolver(asio::any_io_executor ex, const CheckerDns& config)
    : impl_(std::make_shared<Impl>(std::move(ex), config)) {
  impl_->open();
}

Resolver::~Resolver() = default;

asio::awaitable<std::optional<DnsAnswer>> Resolver::resolve(std::string host, IpFamily family,
                                                            Clock::time_point deadline) {
  const std::shared_ptr<Impl> impl = impl_;
  std::string key = cache_key(host, family);
  if (impl->config.cache) {
    if (auto it = impl->cache.find(key); it != impl->cache.end()) {
      if (it->second.expires > Clock::now()) {
        ++impl->stats.cache_hits;
        DnsAnswer a = it->second.answer;
        a.cached = true;
        co_return a;
      }
      impl->cache.erase(it);
    }
  }
  auto waiter = std::make_shared<Waiter>(impl->ex);
  waiter->wake.expires_at(deadline);
  auto [it, fresh] = impl->queries.try_emplace(key);
  if (fresh) {
    it->second = std::make_unique<Impl::Query>();
    Impl::Query& q = *it->second;
    q.owner = impl.get();
    q.key = std::move(key);
    q.host = std::move(host);
    q.family = family;
    q.latest_deadline = deadline;
    q.waiters.push_back(waiter);
    impl->submit(q);  // `it` and `q` may be gone now
  } else {
    ++impl->stats.shared;
    it->second->latest_deadline = std::max(it->second->latest_deadline, deadline);
    it->second->waiters.push_back(waiter);
  }
  if (!waiter->answer) (void)co_await waiter->wake.async_wait(asio::as_tuple(asio::use_awaitable));
  if (!waiter->answer) co_return std::nullopt;  // the deadline came first
  co_return std::move(*waiter->answer);
}

void Resolver::adopt_cache(Resolver& older) {
  if (!impl_->config.cache || &older == this) return;
  const auto now = Clock::now();
  const auto cap_pos = now + std::chrono::seconds(impl_->config.max_ttl_seconds);
  const auto cap_neg = now + std::chrono::seconds(impl_->config.negative_ttl_seconds);
  for (auto& [key, entry] : older.impl_->cache) {
    const auto cap = entry.answer.status == DnsStatus::ok ? cap_pos : cap_neg;
    entry.expires = std::min(entry.expires, cap);
    if (entry.expires > now && impl_->cache.size() < kMaxCacheEntries) impl_->cache.emplace(key, std::move(entry));
  }
  older.impl_->cache.clear();
}

ResolverStats Resolver::take_stats() { return std::exchange(impl_->stats, ResolverStats{}); }

}  // namespace webmon::checker
