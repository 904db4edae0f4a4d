#include "support/stack.hpp"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <random>
#include <stdexcept>
#include <thread>

namespace webmon::test {
namespace {

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}

std::string kafka_port_plus(int offset) {
  return std::to_string(std::stoi(env_or("KAFKA_PORT", "9092")) + offset);
}

std::string first_line_of(const std::filesystem::path& file) {
  std::ifstream in(file);
  std::string line;
  if (!in || !std::getline(in, line) || line.empty()) {
    throw std::runtime_error(file.string() + " is missing or empty: start the stack with scripts/stack up");
  }
  return line;
}

}  // namespace

std::string kafka_bootstrap() {
  return env_or("WEBMON_TEST_KAFKA", "127.0.0.1:" + env_or("KAFKA_PORT", "9092"));
}

std::string kafka_ssl_bootstrap() {
  return env_or("WEBMON_TEST_KAFKA_SSL", "127.0.0.1:" + env_or("KAFKA_SSL_PORT", kafka_port_plus(2)));
}

std::string kafka_sasl_bootstrap() {
  return env_or("WEBMON_TEST_KAFKA_SASL", "127.0.0.1:" + env_or("KAFKA_SASL_PORT", kafka_port_plus(3)));
}

std::string kafka_sasl_plaintext_bootstrap() {
  return env_or("WEBMON_TEST_KAFKA_SASL_PLAINTEXT",
                "127.0.0.1:" + env_or("KAFKA_SASL_PLAINTEXT_PORT", kafka_port_plus(4)));
}

std::filesystem::path stack_dir() {
  return env_or("WEBMON_STACK_DIR", std::string(WEBMON_SOURCE_DIR) + "/.stack");
}

std::filesystem::path kafka_tls_dir() { return stack_dir() / "kafka" / "tls"; }

std::string kafka_sasl_username() { return first_line_of(stack_dir() / "kafka" / "sasl" / "username"); }

std::string kafka_sasl_password() { return first_line_of(stack_dir() / "kafka" / "sasl" / "password"); }

std::string postgres_uri() {
  return env_or("WEBMON_TEST_PG_URI",
                "postgresql://webmon:webmon@127.0.0.1:" + env_or("PG_PORT", "5432") + "/webmon");
}

std::string unique_name(const std::string& prefix) {
  static std::atomic<int> counter{0};
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  return prefix + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++) + "_" +
         std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(now).count() % 100000000);
}

TempDir::TempDir() {
  std::random_device rd;
  const auto base = std::filesystem::temp_directory_path();
  for (int attempt = 0; attempt < 100; ++attempt) {
    auto p = base / ("webmon-test-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
    if (std::filesystem::create_directory(p)) {
      path_ = p;
      return;
    }
  }
  throw std::runtime_error("cannot create a temporary directory");
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::filesystem::path TempDir::write(const std::string& name, const std::string& content) const {
  auto p = path_ / name;
  std::filesystem::create_directories(p.parent_path());
  std::ofstream out(p, std::ios::binary);
  out << content;
  if (!out) throw std::runtime_error("cannot write " + p.string());
  return p;
}

bool eventually(const std::function<bool()>& done, std::chrono::milliseconds limit,
                std::chrono::milliseconds every) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (true) {
    if (done()) return true;
    if (std::chrono::steady_clock::now() >= until) return done();
    std::this_thread::sleep_for(every);
  }
}

unsigned short free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    throw std::runtime_error("bind 127.0.0.1:0");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

std::size_t occurrences(std::string_view text, std::string_view needle) {
  std::size_t n = 0;
  for (auto at = text.find(needle); at != std::string_view::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

}  // namespace webmon::test
