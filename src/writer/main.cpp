// webmon-writer: consumes check results from Kafka into PostgreSQL, exactly once.
#include <exception>

#include <spdlog/spdlog.h>

#include "webmon/common/daemon_args.hpp"
#include "webmon/writer/writer.hpp"

int main(int argc, char** argv) {
  auto start = webmon::start_daemon(argc, argv, "webmon-writer", webmon::Component::writer);
  if (!start.config) return start.exit_code;
  try {
    return webmon::writer::run_writer(*start.config);
  } catch (const std::exception& e) {
    spdlog::critical("webmon-writer: {}", e.what());
    return 1;
  }
}
