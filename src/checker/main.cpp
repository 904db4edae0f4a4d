// webmon-checker: probes HTTP(S) targets and publishes one result per probe to Kafka.
#include <exception>
#include <iostream>

#include <spdlog/spdlog.h>

#include "webmon/checker/checker.hpp"
#include "webmon/common/daemon_args.hpp"

int main(int argc, char** argv) {
  auto start = webmon::start_daemon(argc, argv, "webmon-checker", webmon::Component::checker);
  if (!start.config) return start.exit_code;
  try {
    return webmon::checker::run_checker(std::move(*start.config), start.config_path);
  } catch (const std::exception& e) {
    spdlog::critical("webmon-checker: {}", e.what());
    return 1;
  }
}
