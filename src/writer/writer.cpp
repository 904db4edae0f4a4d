#include "webmon/writer/writer.hpp"

#include <csignal>
#include <ctime>

#include <atomic>
#include <memory>
#include <thread>

#include <pqxx/pqxx>
#include <spdlog/spdlog.h>

#include "webmon/common/config_keys.hpp"
#include "webmon/common/backoff.hpp"
#include "webmon/common/log_limit.hpp"
#include "webmon/common/logging.hpp"
#include "webmon/common/metrics_server.hpp"
#include "webmon/common/service.hpp"
#include "webmon/writer/compactor.hpp"
#include "webmon/writer/ingest.hpp"
#include "webmon/writer/metrics.hpp"
#include "webmon/writer/migrations.hpp"
#include "webmon/writer/pg_session.hpp"

namespace webmon::writer {
namespace {

sigset_t handled_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  return set;
}

// The sections of a config without its targets (which the writer does not use): what a reload is
// compared with, kept small when the file lists 100,000 targets.
Config sections_of(const Config& c) {
  Config out;
  out.source = c.source;
  out.kafka = c.kafka;
  out.postgres = c.postgres;
  out.checker = c.checker;
  out.writer = c.writer;
  out.log_format = c.log_format;
  return out;
}

// SIGHUP: the file is validated completely; log_format is applied, every other changed key the
// writer reads is logged as needing a restart, as the key tables say.
void reload(Config& current, const std::filesystem::path& path) {
  service::notify_reloading();
  if (path.empty()) {
    spdlog::info("SIGHUP: no config file to reload");
    service::notify_ready();
    return;
  }
  spdlog::info("SIGHUP: reloading {}", path.string());
  auto load = load_config(path, Component::writer);
  if (!load.ok()) {
    for (const auto& e : load.errors) spdlog::error("reload: {}", e.to_string());
    spdlog::error("reload failed: {} error(s); the previous config keeps running", load.errors.size());
  } else {
    const Config next = sections_of(*load.config);
    for (const auto& line : reload_lines(changed_keys(current, next), Component::writer)) {
      if (line.needs_restart) spdlog::warn("{}", line.text);
      else spdlog::info("{}", line.text);
    }
    current.log_format = next.log_format;
    set_log_format(next.log_format);
    spdlog::info("reloaded {}", path.string());
  }
  service::notify_ready();
}

// Waits for signals on a thread of its own: the real work (stopping) happens in the loops that
// read `stop`, never in a signal handler; a reload only reads the file and logs.
class SignalWatcher {
 public:
  SignalWatcher(std::atomic<bool>& stop, const Config& config, std::filesystem::path path)
      : current_(sections_of(config)), path_(std::move(path)), thread_([this, &stop] { watch(stop); }) {}
  ~SignalWatcher() {
    done_ = true;
    thread_.join();
  }
  SignalWatcher(const SignalWatcher&) = delete;
  SignalWatcher& operator=(const SignalWatcher&) = delete;

 private:
  void watch(std::atomic<bool>& stop) {
    const sigset_t set = handled_signals();
    const timespec tick{0, 200'000'000};
    while (!done_) {
      const int sig = sigtimedwait(&set, nullptr, &tick);
      if (sig == SIGINT || sig == SIGTERM) {
        spdlog::info("{} received: finishing the batch in flight and stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
        stop = true;
      } else if (sig == SIGHUP) {
        reload(current_, path_);
      }
    }
  }
  Config current_;
  std::filesystem::path path_;
  std::atomic<bool> done_{false};
  std::thread thread_;
};

// Applies pending migrations, waiting (with backoff) for PostgreSQL to come up.
bool migrate(const Config& config, const std::atomic<bool>& stop, WriterMetrics& metrics) {
  Backoff backoff(std::chrono::milliseconds(100), std::chrono::milliseconds(5000));
  LogLimit warning(1, 0);  // one warning until PostgreSQL answers
  while (!stop) {
    try {
      const auto report = apply_migrations(pg_session(config.postgres).conninfo);
      spdlog::info("schema: {} migration(s) applied now, {} already", report.applied.size(), report.already_applied);
      return true;
    } catch (const MigrationError&) {
      throw;
    } catch (const std::exception& e) {
      metrics.postgres_errors.Increment();
      if (warning.count()) spdlog::warn("postgresql {}: {}; retrying", redact_uri(config.postgres.uri), e.what());
    }
    const auto until = std::chrono::steady_clock::now() + backoff.next();
    while (!stop && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

}  // namespace

int run_writer(const Config& config, const std::filesystem::path& config_path) {
  const sigset_t set = handled_signals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);  // inherited by every thread started from here on
  std::atomic<bool> stop{false};
  SignalWatcher signals(stop, config, config_path);

  auto metrics = std::make_shared<WriterMetrics>(std::make_shared<prometheus::Registry>());
  try {
    Ingestor ingestor(config, metrics, stop);
    std::unique_ptr<MetricsServer> server;
    if (!config.writer.metrics_listen.empty()) {
      server = std::make_unique<MetricsServer>(metrics->registry(), [&ingestor] { return ingestor.ready(); });
      server->start(config.writer.metrics_listen);
      spdlog::info("metrics on http://{}/metrics", server->local_endpoint());
    }
    spdlog::info("webmon-writer: topic {}, group {}, postgresql {}", config.kafka.topic, config.writer.group_id,
                 redact_uri(config.postgres.uri));
    bool ok = true;
    if (migrate(config, stop, *metrics)) {
      service::notify_ready();
      // Closed days are compacted on a thread and connection of their own, yielding to ingest.
      BackgroundCompactor compactor(config, metrics->registry());
      ok = ingestor.run();
    }
    service::notify_stopping();
    if (server) server->stop();
    if (!ok) return 1;
  } catch (const MigrationError& e) {
    spdlog::critical("schema refused: {}", e.what());
    return 1;
  } catch (const kafka::ConfigError& e) {
    spdlog::critical("{}", e.what());
    return 1;
  }
  spdlog::info("webmon-writer stopped");
  return 0;
}

}  // namespace webmon::writer
