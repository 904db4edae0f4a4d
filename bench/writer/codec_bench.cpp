// Micro-benchmark: the writer's own CPU per message, in its two halves (docs/benchmarks.md
// "## Writer"): decoding a v1 message (the consumer thread) and turning the row into the COPY
// line that pqxx::stream_to sends (the webmon-pg thread). No servers; Google Benchmark.
//
//   build-bench/bench/writer/webmon-bench-writer-codec [--benchmark_filter=...]
#include <string>
#include <vector>

#include <benchmark/benchmark.h>
#include <pqxx/pqxx>

#include "sample_checks.hpp"
#include "webmon/common/check_result.hpp"
#include "webmon/writer/batch.hpp"
#include "webmon/writer/pg_format.hpp"

namespace {

constexpr int kTargets = 1000;
constexpr long kSamples = 1000;  // enough to cover every kind of result in the mix

std::vector<std::string> sample_messages() {
  std::vector<std::string> out;
  for (long i = 0; i < kSamples; ++i) out.push_back(webmon::encode_check_result(webmon::bench::make_check(i, kTargets)));
  return out;
}

void BM_decode(benchmark::State& state) {
  const auto messages = sample_messages();
  std::size_t i = 0;
  for (auto _ : state) {
    auto r = webmon::decode_check_result(messages[i++ % messages.size()]);
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_decode);

// What BatchBuilder::add does per message: decode plus the checks that PostgreSQL can store it.
void BM_classify(benchmark::State& state) {
  const auto messages = sample_messages();
  std::size_t i = 0;
  for (auto _ : state) {
    webmon::writer::InMessage m;
    m.topic = "webmon.checks";
    m.value = messages[i++ % messages.size()];
    m.schema_header = webmon::kSchemaHeaderValue;
    auto r = webmon::writer::classify(m, 1024 * 1024);
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_classify);

// The COPY text line of one row, built the way stream_to's operator<< builds it.
void BM_copy_line(benchmark::State& state) {
  std::vector<webmon::CheckResult> rows;
  for (long i = 0; i < kSamples; ++i) rows.push_back(webmon::bench::make_check(i, kTargets));
  webmon::writer::CopyRow row;
  std::size_t i = 0;
  for (auto _ : state) {
    const auto& r = rows[i++ % rows.size()];
    auto line = pqxx::separated_list("\t", row.format(r, 17, 1), pqxx::internal::TypedCopyEscaper());
    benchmark::DoNotOptimize(line);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_copy_line);

}  // namespace

BENCHMARK_MAIN();
