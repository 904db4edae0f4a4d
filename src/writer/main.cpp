// webmon-writer: consumes check results from Kafka into PostgreSQL, exactly once.
#include <malloc.h>

#include <exception>

#include <spdlog/spdlog.h>

#include "webmon/common/daemon_args.hpp"
#include "webmon/writer/writer.hpp"

int main(int argc, char** argv) {
  // librdkafka's decompression buffers and each batch's vectors are megabytes, allocated and freed
  // many times a second: served from the heap instead of fresh mmap()s, they cost no page faults
  // (about a tenth of the writer's CPU at full speed, measured with perf).
  mallopt(M_MMAP_THRESHOLD, 64 * 1024 * 1024);
  mallopt(M_TRIM_THRESHOLD, 256 * 1024 * 1024);
  // One arena for every thread: glibc unmaps a thread arena's emptied 64 MiB heaps whatever the
  // trim threshold, and librdkafka's fetch thread filled and emptied one over and over (the
  // kernel's page clearing was a third of that thread's CPU, perf, issue 15).
  mallopt(M_ARENA_MAX, 1);
  auto start = webmon::start_daemon(argc, argv, "webmon-writer", webmon::Component::writer);
  if (!start.config) return start.exit_code;
  try {
    return webmon::writer::run_writer(*start.config, start.config_path);
  } catch (const std::exception& e) {
    spdlog::critical("webmon-writer: {}", e.what());
    return 1;
  }
}
