// The service contract of the real daemons, seen the way systemd and Prometheus see it: each runs
// as a process with NOTIFY_SOCKET and WATCHDOG_USEC pointing at this test, against the stack's
// real Kafka (and PostgreSQL for the writer). READY=1 once started, WATCHDOG=1 keep-alives,
// RELOADING=1 then READY=1 around SIGHUP (a bad file keeps the old config), STOPPING=1 and exit 0
// on SIGTERM; /healthz, /readyz and /metrics on metrics_listen.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <filesystem>
#include <iostream>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <pqxx/pqxx>

#include "support/database.hpp"
#include "support/http_client.hpp"
#include "support/process.hpp"
#include "support/stack.hpp"

namespace {

namespace fs = std::filesystem;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using namespace std::chrono_literals;

// systemd's side of sd_notify: an AF_UNIX datagram socket (abstract namespace: build paths are long).
class NotifySocket {
 public:
  NotifySocket() : name_("@" + webmon::test::unique_name("wmops-notify")) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::copy(name_.begin() + 1, name_.end(), addr.sun_path + 1);
    bound_ = ::bind(fd_, reinterpret_cast<sockaddr*>(&addr),
                    static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name_.size())) == 0;
  }
  ~NotifySocket() { ::close(fd_); }
  NotifySocket(const NotifySocket&) = delete;
  NotifySocket& operator=(const NotifySocket&) = delete;
  bool bound() const { return bound_; }
  const std::string& address() const { return name_; }

  // Waits for a notification starting with `prefix`; everything received is kept in seen().
  std::optional<std::string> wait_for(const std::string& prefix, std::chrono::milliseconds limit = 120s) {
    const auto until = std::chrono::steady_clock::now() + limit;
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
      if (left <= 0ms) return std::nullopt;
      pollfd pfd{fd_, POLLIN, 0};
      if (::poll(&pfd, 1, static_cast<int>(left.count())) != 1) continue;
      char buf[4096];
      const ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) continue;
      std::string msg(buf, static_cast<std::size_t>(n));
      seen_.push_back(msg);
      if (msg.rfind(prefix, 0) == 0) return msg;
    }
  }
  const std::vector<std::string>& seen() const { return seen_; }

 private:
  std::string name_;
  int fd_ = -1;
  bool bound_ = false;
  std::vector<std::string> seen_;
};

using webmon::test::http_get;

std::string checker_config(unsigned short metrics_port, const std::string& topic, const std::string& targets) {
  return "kafka:\n  bootstrap_servers: \"" + webmon::test::kafka_bootstrap() + "\"\n  topic: " + topic +
         "\n  topic_partitions: 1\n"
         "checker:\n  metrics_listen: \"127.0.0.1:" + std::to_string(metrics_port) + "\"\n  instance_id: ops-test\n" +
         "targets:" + targets;
}

TEST(DaemonLifecycle, CheckerNotifiesReloadsAndStops) {
  NotifySocket notify;
  ASSERT_TRUE(notify.bound());
  webmon::test::TempDir dir;
  const auto port = webmon::test::free_port();
  const std::string topic = webmon::test::unique_name("wmops-checks");
  const auto config = dir.write("config.yml", checker_config(port, topic, " []\n"));

  webmon::test::ChildProcess checker({WEBMON_CHECKER_BIN, "--config", config.string()}, dir.path() / "checker.log",
                                     {"NOTIFY_SOCKET=" + notify.address(), "WATCHDOG_USEC=2000000"});
  ASSERT_TRUE(notify.wait_for("READY=1")) << checker.log();
  EXPECT_EQ(http_get(port, "/healthz").status, 200);
  EXPECT_TRUE(webmon::test::eventually([&] { return http_get(port, "/readyz").status == 200; }))
      << http_get(port, "/readyz").body << checker.log();
  EXPECT_TRUE(notify.wait_for("WATCHDOG=1")) << "no keep-alive within the watchdog interval";

  // A good reload: one target more (on a loopback port where nothing listens).
  const auto closed_port = webmon::test::free_port();
  dir.write("config.yml", checker_config(port, topic,
                                         "\n  - name: ops-closed\n    url: http://127.0.0.1:" +
                                             std::to_string(closed_port) + "/\n    check_interval_seconds: 1\n"));
  checker.signal(SIGHUP);
  const auto reloading = notify.wait_for("RELOADING=1");
  ASSERT_TRUE(reloading) << checker.log();
  EXPECT_NE(reloading->find("MONOTONIC_USEC="), std::string::npos) << *reloading;
  ASSERT_TRUE(notify.wait_for("READY=1")) << checker.log();
  std::string metrics;
  EXPECT_TRUE(webmon::test::eventually([&] {
    metrics = "\n" + http_get(port, "/metrics").body;
    return webmon::test::metric_value(metrics, "webmon_checker_config_reloads_total{result=\"ok\"}") == 1.0 &&
           webmon::test::metric_value(metrics, "webmon_checker_targets") == 1.0;
  })) << metrics;

  // A bad reload: RELOADING=1, READY=1 again, still running on the old config, counted.
  dir.write("config.yml", "kafka: [this is not a mapping\n");
  checker.signal(SIGHUP);
  ASSERT_TRUE(notify.wait_for("RELOADING=1"));
  ASSERT_TRUE(notify.wait_for("READY=1"));
  EXPECT_TRUE(checker.running()) << checker.log();
  EXPECT_TRUE(webmon::test::eventually([&] {
    metrics = "\n" + http_get(port, "/metrics").body;
    return webmon::test::metric_value(metrics, "webmon_checker_config_reloads_total{result=\"failed\"}") == 1.0;
  })) << metrics;
  EXPECT_EQ(webmon::test::metric_value(metrics, "webmon_checker_targets"), 1.0);
  // The old config keeps probing: the closed port gives connect errors.
  EXPECT_TRUE(webmon::test::eventually([&] {
    metrics = "\n" + http_get(port, "/metrics").body;
    const auto connect = webmon::test::metric_value(metrics, "webmon_checker_probes_total{outcome=\"connect\"}");
    return connect && *connect >= 2.0;
  })) << metrics;

  checker.signal(SIGTERM);
  EXPECT_TRUE(notify.wait_for("STOPPING=1")) << checker.log();
  EXPECT_EQ(checker.wait_for_exit(120s), 0) << checker.log();
  EXPECT_NE(http_get(port, "/healthz").status, 200);
}

TEST(DaemonLifecycle, WriterNotifiesAfterMigratingAndStops) {
  webmon::test::TestDatabase db;
  const std::string& uri = db.uri();

  NotifySocket notify;
  ASSERT_TRUE(notify.bound());
  webmon::test::TempDir dir;
  const auto port = webmon::test::free_port();
  const auto config = dir.write(
      "config.yml", "kafka:\n  bootstrap_servers: \"" + webmon::test::kafka_bootstrap() + "\"\n  topic: " +
                        webmon::test::unique_name("wmops-writer") + "\n  topic_partitions: 1\n" +
                        "postgres:\n  uri: " + uri + "\n" + "writer:\n  group_id: " +
                        webmon::test::unique_name("wmops-group") + "\n  metrics_listen: \"127.0.0.1:" +
                        std::to_string(port) + "\"\n");

  webmon::test::ChildProcess writer({WEBMON_WRITER_BIN, "--config", config.string()}, dir.path() / "writer.log",
                                    {"NOTIFY_SOCKET=" + notify.address(), "WATCHDOG_USEC=2000000"});
  ASSERT_TRUE(notify.wait_for("READY=1")) << writer.log();
  // READY=1 comes after the migrations: the schema is there.
  {
    pqxx::connection c(uri);
    pqxx::nontransaction nt(c);
    EXPECT_EQ(nt.exec("SELECT count(*) FROM check_results")[0][0].as<int>(), 0);
  }
  EXPECT_EQ(http_get(port, "/healthz").status, 200);
  EXPECT_TRUE(webmon::test::eventually([&] { return http_get(port, "/readyz").status == 200; }))
      << http_get(port, "/readyz").body << writer.log();
  const std::string metrics = "\n" + http_get(port, "/metrics").body;
  EXPECT_NE(metrics.find("# TYPE webmon_writer_rows_written_total counter"), std::string::npos) << metrics;
  // A value that changes with the state (0 until the writer has a connection), not only a name.
  EXPECT_EQ(webmon::test::metric_value(metrics, "webmon_writer_postgres_up"), std::optional<double>(1)) << metrics;
  EXPECT_TRUE(notify.wait_for("WATCHDOG=1")) << "no keep-alive within the watchdog interval";

  writer.signal(SIGHUP);
  ASSERT_TRUE(notify.wait_for("RELOADING=1")) << writer.log();
  ASSERT_TRUE(notify.wait_for("READY=1")) << writer.log();
  EXPECT_TRUE(writer.running());

  writer.signal(SIGTERM);
  EXPECT_TRUE(notify.wait_for("STOPPING=1")) << writer.log();
  EXPECT_EQ(writer.wait_for_exit(120s), 0) << writer.log();
}

}  // namespace
