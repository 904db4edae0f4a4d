#include "support/dns_server.hpp"

#include <array>
#include <charconv>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <unordered_map>
#include <vector>

#include <sys/socket.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/steady_timer.hpp>

#include "webmon/common/text.hpp"

namespace webmon::test {
namespace {

namespace asio = boost::asio;
using udp = asio::ip::udp;

constexpr std::uint16_t kTypeA = 1;
constexpr std::uint16_t kTypeCname = 5;
constexpr std::uint16_t kTypeAaaa = 28;
constexpr std::uint8_t kNoError = 0, kServFail = 2, kNxDomain = 3, kRefused = 5;

enum class Behaviour { answer, nxdomain, servfail, refused, blackhole };

struct Record {
  std::uint16_t type = 0;
  std::uint32_t ttl = 60;
  std::vector<std::uint8_t> rdata;  // A: 4 bytes, AAAA: 16, CNAME: the encoded target name
  std::string cname;                // CNAME: the target, for following the chain
};

struct Entry {
  Behaviour behaviour = Behaviour::answer;
  std::vector<Record> records;
  std::chrono::milliseconds delay{0};
};

std::vector<std::uint8_t> encode_name(const std::string& name) {
  std::vector<std::uint8_t> out;
  std::size_t start = 0;
  while (start < name.size()) {
    auto dot = name.find('.', start);
    if (dot == std::string::npos) dot = name.size();
    const auto len = dot - start;
    if (len == 0 || len > 63) throw std::invalid_argument("bad DNS name " + name);
    out.push_back(static_cast<std::uint8_t>(len));
    out.insert(out.end(), name.begin() + static_cast<std::ptrdiff_t>(start), name.begin() + static_cast<std::ptrdiff_t>(dot));
    start = dot + 1;
  }
  out.push_back(0);
  return out;
}

class Zone {
 public:
  explicit Zone(const std::string& text) {
    std::istringstream in(text);
    std::string line;
    int n = 0;
    while (std::getline(in, line)) {
      ++n;
      if (auto hash = line.find('#'); hash != std::string::npos) line.resize(hash);
      std::istringstream words(line);
      std::string name, kind;
      if (!(words >> name)) continue;
      if (!(words >> kind)) throw std::invalid_argument("zone line " + std::to_string(n) + ": no type");
      name = canonical(name);
      kind = ascii_lower(kind);
      Entry& e = entries_[name];
      std::string value;
      if (kind == "nxdomain") e.behaviour = Behaviour::nxdomain;
      else if (kind == "servfail") e.behaviour = Behaviour::servfail;
      else if (kind == "refused") e.behaviour = Behaviour::refused;
      else if (kind == "blackhole") e.behaviour = Behaviour::blackhole;
      else if (kind == "delay") {
        int ms = 0;
        if (!(words >> ms) || ms < 0) throw std::invalid_argument("zone line " + std::to_string(n) + ": DELAY ms");
        e.delay = std::chrono::milliseconds(ms);
      } else if (kind == "a" || kind == "aaaa" || kind == "cname") {
        if (!(words >> value)) throw std::invalid_argument("zone line " + std::to_string(n) + ": no value");
        Record r;
        std::string opt;
        while (words >> opt) {
          if (opt.rfind("ttl=", 0) == 0) r.ttl = static_cast<std::uint32_t>(std::stoul(opt.substr(4)));
          else throw std::invalid_argument("zone line " + std::to_string(n) + ": unknown option " + opt);
        }
        if (kind == "cname") {
          r.type = kTypeCname;
          r.cname = canonical(value);
          r.rdata = encode_name(r.cname);
        } else {
          const auto addr = asio::ip::make_address(value);
          if (kind == "a") {
            if (!addr.is_v4()) throw std::invalid_argument("zone line " + std::to_string(n) + ": A needs IPv4");
            r.type = kTypeA;
            const auto b = addr.to_v4().to_bytes();
            r.rdata.assign(b.begin(), b.end());
          } else {
            if (!addr.is_v6()) throw std::invalid_argument("zone line " + std::to_string(n) + ": AAAA needs IPv6");
            r.type = kTypeAaaa;
            const auto b = addr.to_v6().to_bytes();
            r.rdata.assign(b.begin(), b.end());
          }
        }
        e.records.push_back(std::move(r));
      } else {
        throw std::invalid_argument("zone line " + std::to_string(n) + ": unknown type " + kind);
      }
    }
  }

  // The entry for `name`: exact, else the closest "*." entry above it.
  const Entry* find(const std::string& name) const {
    if (auto it = entries_.find(name); it != entries_.end()) return &it->second;
    std::string wildcard;
    for (std::size_t dot = name.find('.'); dot != std::string::npos; dot = name.find('.', dot + 1)) {
      wildcard.assign(1, '*');
      wildcard.append(name, dot, std::string::npos);  // not "*" + substr: g++ 12 -O3 warns falsely
      if (auto it = entries_.find(wildcard); it != entries_.end()) return &it->second;
    }
    return nullptr;
  }

  static std::string canonical(std::string name) {
    name = ascii_lower(name);
    if (!name.empty() && name.back() == '.') name.pop_back();
    return name;
  }

 private:
  std::unordered_map<std::string, Entry> entries_;
};

void put16(std::vector<std::uint8_t>& out, std::uint16_t v) {
  out.push_back(static_cast<std::uint8_t>(v >> 8));
  out.push_back(static_cast<std::uint8_t>(v & 0xff));
}

void put32(std::vector<std::uint8_t>& out, std::uint32_t v) {
  put16(out, static_cast<std::uint16_t>(v >> 16));
  put16(out, static_cast<std::uint16_t>(v & 0xffff));
}

std::uint16_t get16(const std::uint8_t* p) { return static_cast<std::uint16_t>((p[0] << 8) | p[1]); }

struct Question {
  std::uint16_t id = 0;
  std::uint16_t flags = 0;
  std::string name;           // canonical
  std::uint16_t type = 0;
  std::size_t question_end = 0;  // offset just past QTYPE/QCLASS
};

std::optional<Question> parse_query(const std::uint8_t* buf, std::size_t len) {
  if (len < 12) return std::nullopt;
  Question q;
  q.id = get16(buf);
  q.flags = get16(buf + 2);
  if ((q.flags & 0x8000) != 0 || get16(buf + 4) != 1) return std::nullopt;  // a response, or not one question
  std::size_t i = 12;
  std::string name;
  while (true) {
    if (i >= len) return std::nullopt;
    const std::uint8_t l = buf[i++];
    if (l == 0) break;
    if (l > 63 || i + l > len) return std::nullopt;
    if (!name.empty()) name += '.';
    name.append(reinterpret_cast<const char*>(buf + i), l);
    i += l;
  }
  if (i + 4 > len) return std::nullopt;
  q.type = get16(buf + i);
  q.question_end = i + 4;
  q.name = Zone::canonical(name);
  return q;
}

}  // namespace

struct DnsServer::Impl {
  Impl(const std::string& zone_text, const std::string& address, unsigned short port, std::chrono::milliseconds d)
      : zone(zone_text), socket(io, udp::endpoint(asio::ip::make_address(address), port)), delay(d) {
    boost::system::error_code ignored;
    socket.set_option(asio::socket_base::receive_buffer_size(4 << 20), ignored);
    socket.set_option(asio::socket_base::send_buffer_size(4 << 20), ignored);
    // As root, past net.core.rmem_max: a benchmark's burst of queries must not be dropped here.
    const int size = 4 << 20;
    ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size);
  }

  void receive() {
    socket.async_receive_from(asio::buffer(buf), from, [this](const boost::system::error_code& ec, std::size_t n) {
      if (ec == asio::error::operation_aborted) return;
      if (!ec) handle(n);
      receive();
    });
  }

  void handle(std::size_t n) {
    const auto q = parse_query(buf.data(), n);
    if (!q) return;
    {
      std::lock_guard lock(mutex);
      ++counts[q->name];
    }
    total.fetch_add(1, std::memory_order_relaxed);
    const Entry* e = zone.find(q->name);
    std::chrono::milliseconds wait = delay + (e ? e->delay : std::chrono::milliseconds(0));
    if (e && e->behaviour == Behaviour::blackhole) return;
    auto reply = std::make_shared<std::vector<std::uint8_t>>(build_reply(*q, e, buf.data()));
    auto to = from;
    if (wait.count() == 0) {
      socket.async_send_to(asio::buffer(*reply), to, [reply](const boost::system::error_code&, std::size_t) {});
      return;
    }
    auto timer = std::make_shared<asio::steady_timer>(io, wait);
    const auto now_pending = ++pending;
    if (now_pending > max_pending.load(std::memory_order_relaxed)) max_pending.store(now_pending, std::memory_order_relaxed);
    timer->async_wait([this, timer, reply, to](const boost::system::error_code& ec) {
      --pending;
      if (ec) return;
      socket.async_send_to(asio::buffer(*reply), to, [reply](const boost::system::error_code&, std::size_t) {});
    });
  }

  std::vector<std::uint8_t> build_reply(const Question& q, const Entry* e, const std::uint8_t* query) const {
    std::uint8_t rcode = kNoError;
    std::vector<const Record*> answers;
    if (!e || e->behaviour == Behaviour::nxdomain) {
      rcode = kNxDomain;
    } else if (e->behaviour == Behaviour::servfail) {
      rcode = kServFail;
    } else if (e->behaviour == Behaviour::refused) {
      rcode = kRefused;
    } else {
      // Follow the CNAME chain within the zone, as a recursive resolver would answer it.
      const Entry* at = e;
      for (int hops = 0; at && hops < 16; ++hops) {
        const Record* cname = nullptr;
        for (const auto& r : at->records) {
          if (r.type == kTypeCname) cname = &r;
        }
        if (cname && q.type != kTypeCname) {
          answers.push_back(cname);
          at = zone.find(cname->cname);
          if (!at || at->behaviour != Behaviour::answer) {
            if (!at || at->behaviour == Behaviour::nxdomain) rcode = kNxDomain;
            break;
          }
          continue;
        }
        for (const auto& r : at->records) {
          if (r.type == q.type) answers.push_back(&r);
        }
        break;
      }
    }
    std::vector<std::uint8_t> out;
    put16(out, q.id);
    // QR, the query's opcode and RD, AA and RA, the rcode.
    put16(out, static_cast<std::uint16_t>(0x8000 | (q.flags & 0x7900) | 0x0400 | 0x0080 | rcode));
    put16(out, 1);
    put16(out, static_cast<std::uint16_t>(answers.size()));
    put16(out, 0);
    put16(out, 0);
    out.insert(out.end(), query + 12, query + q.question_end);
    // Owner names: the first is the question's (a pointer to offset 12); a CNAME's target owns
    // the next record, written out in full.
    std::vector<std::uint8_t> owner = {0xc0, 0x0c};
    for (const Record* r : answers) {
      out.insert(out.end(), owner.begin(), owner.end());
      put16(out, r->type);
      put16(out, 1);
      put32(out, r->ttl);
      put16(out, static_cast<std::uint16_t>(r->rdata.size()));
      out.insert(out.end(), r->rdata.begin(), r->rdata.end());
      if (r->type == kTypeCname) owner = r->rdata;
    }
    return out;
  }

  asio::io_context io{1};
  Zone zone;
  udp::socket socket;
  std::chrono::milliseconds delay;
  std::array<std::uint8_t, 4096> buf{};
  udp::endpoint from;
  mutable std::mutex mutex;
  std::map<std::string, std::uint64_t> counts;
  std::atomic<std::uint64_t> total{0};
  std::uint64_t pending = 0;  // delayed answers not sent yet (the server's thread only)
  std::atomic<std::uint64_t> max_pending{0};
  std::thread thread;
};

DnsServer::DnsServer(const std::string& zone_text, const std::string& address, unsigned short port,
                     std::chrono::milliseconds delay)
    : impl_(std::make_unique<Impl>(zone_text, address, port, delay)) {
  impl_->receive();
  impl_->thread = std::thread([impl = impl_.get()] { impl->io.run(); });
}

DnsServer::~DnsServer() {
  impl_->io.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

unsigned short DnsServer::port() const noexcept { return impl_->socket.local_endpoint().port(); }

std::uint64_t DnsServer::queries(std::string_view name) const {
  std::lock_guard lock(impl_->mutex);
  auto it = impl_->counts.find(std::string(name));
  return it == impl_->counts.end() ? 0 : it->second;
}

std::uint64_t DnsServer::total_queries() const noexcept { return impl_->total.load(std::memory_order_relaxed); }

std::uint64_t DnsServer::max_pending() const noexcept { return impl_->max_pending.load(std::memory_order_relaxed); }

std::string DnsServer::counts_text() const {
  std::lock_guard lock(impl_->mutex);
  std::string out;
  for (const auto& [name, n] : impl_->counts) out += name + " " + std::to_string(n) + "\n";
  return out;
}

}  // namespace webmon::test
