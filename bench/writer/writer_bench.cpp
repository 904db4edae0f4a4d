// Benchmark: webmon-writer ingesting N preloaded messages end to end (Kafka -> PostgreSQL), beside
// a plain COPY of the same rows through psql and the one-INSERT-per-message way, and the bytes
// each stored check takes (heap + indexes). Uses the local stack (scripts/stack up).
//
//   webmon-bench-writer [--messages N] [--partitions P] [--batch-rows R] [--insert-messages M]
//                       [--kafka HOST:PORT] [--pg URI]
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <pqxx/pqxx>

#include "webmon/common/check_result.hpp"
#include "webmon/common/config.hpp"
#include "webmon/common/kafka.hpp"
#include "webmon/writer/migrations.hpp"
#include "webmon/writer/pg_format.hpp"
#include "sample_checks.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using webmon::CheckResult;

struct Options {
  long messages = 1'000'000;
  int partitions = 6;
  long batch_rows = 5000;
  long insert_messages = 20'000;
  int targets = 1000;
  std::string kafka = "127.0.0.1:9092";
  std::string pg = "postgresql://webmon:webmon@127.0.0.1:5432/webmon";
  std::string keep_log;  // copy the writer's log here
};

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::string with_database(const std::string& uri, const std::string& db) {
  const auto scheme = uri.find("://");
  const auto slash = uri.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  return (slash == std::string::npos ? uri : uri.substr(0, slash)) + "/" + db;
}

std::string copy_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '\t': out += "\\t"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      default: out += c;
    }
  }
  return out;
}

void create_database(const Options& o, const std::string& name) {
  pqxx::connection c(o.pg);
  pqxx::nontransaction nt(c);
  nt.exec("CREATE DATABASE " + nt.quote_name(name));
}

void drop_database(const Options& o, const std::string& name) {
  // An autovacuum worker may still be in it (FORCE cannot end a superuser's backend): retry.
  for (int attempt = 1;; ++attempt) {
    try {
      pqxx::connection c(o.pg);
      pqxx::nontransaction nt(c);
      nt.exec("DROP DATABASE IF EXISTS " + nt.quote_name(name) + " WITH (FORCE)");
      return;
    } catch (const std::exception& e) {
      if (attempt == 20) {
        std::cerr << "drop " << name << ": " << e.what() << "\n";
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
  }
}

// A database with the schema and today's partition, as the writer would leave it.
std::string schema_database(const Options& o, const std::string& name) {
  create_database(o, name);
  const auto uri = with_database(o.pg, name);
  webmon::writer::apply_migrations(uri);
  pqxx::connection c(uri);
  pqxx::nontransaction nt(c);
  nt.exec("SELECT webmon_ensure_checks_partition(d::date) FROM generate_series(current_date - 1, current_date + 2, "
          "interval '1 day') AS d");
  return uri;
}

webmon::kafka::HandlePtr make_producer(const Options& o) {
  webmon::KafkaConfig cfg;
  cfg.bootstrap_servers = o.kafka;
  auto conf = webmon::kafka::make_conf(cfg, {{"enable.idempotence", "true"},
                                             {"linger.ms", "20"},
                                             {"compression.type", "lz4"},
                                             {"queue.buffering.max.kbytes", "1048576"}});
  return webmon::kafka::new_handle(RD_KAFKA_PRODUCER, std::move(conf));
}

// The bench's topic is removed at the end; a failure to remove it does not spoil the figures.
void delete_topic(rd_kafka_t* rk, const std::string& topic) {
  try {
    webmon::kafka::delete_topic(rk, topic, 30000);
  } catch (const std::exception& e) {
    std::cerr << "bench: " << e.what() << "\n";
  }
}

// Runs the writer binary until SIGTERM; stdout/stderr to `log`.
pid_t start_writer(const std::string& config, const std::string& log) {
  const pid_t pid = fork();
  if (pid == 0) {
    const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    execl(WEBMON_WRITER_BIN, WEBMON_WRITER_BIN, "--config", config.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  return pid;
}

// A connection kept for the whole run and opened again after a failure. The bench polls every
// 20 ms; a new connection each time would cost PostgreSQL a backend start and a SCRAM exchange,
// CPU taken from the writer being measured.
class PollingConnection {
 public:
  explicit PollingConnection(std::string uri) : uri_(std::move(uri)) {}
  // query(connection), or `fallback` when connecting or the query failed.
  template <typename T, typename Query>
  T poll(T fallback, Query&& query) {
    try {
      if (!conn_) conn_ = std::make_unique<pqxx::connection>(uri_);
      return query(*conn_);
    } catch (const std::exception&) {
      conn_.reset();
      return fallback;
    }
  }
  int backend_pid() const { return conn_ ? conn_->backendpid() : 0; }

 private:
  std::string uri_;
  std::unique_ptr<pqxx::connection> conn_;
};

// The writer's progress: the sum of its stored offsets (0 until its schema exists).
long sum_offsets(pqxx::connection& c) {
  pqxx::nontransaction nt(c);
  if (!nt.exec("SELECT to_regclass('ingest_offsets') IS NOT NULL")[0][0].as<bool>()) return 0;
  return nt.exec("SELECT coalesce(sum(next_offset), 0) FROM ingest_offsets")[0][0].as<long>();
}

// CPU seconds (user + sys) of the PostgreSQL backends connected to `db` (but `exclude`), summed,
// read from /proc.
double backend_cpu(pqxx::connection& c, const std::string& db, int exclude) {
  double total = 0;
  pqxx::nontransaction nt(c);
  for (const auto& row : nt.exec_params("SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> $2", db,
                                        exclude)) {
    std::ifstream in("/proc/" + row[0].as<std::string>() + "/stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const auto close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream fields(stat.substr(close + 2));
    std::string f;
    double utime = 0;
    double stime = 0;
    for (int i = 3; i <= 15 && fields >> f; ++i) {
      if (i == 14) utime = std::stod(f);
      if (i == 15) stime = std::stod(f);
    }
    total += (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
  }
  return total;
}

// Samples backend_cpu(db) every 20 ms on a thread, over one connection, until stopped; keeps the
// largest reading (a backend's figure is gone once it exits).
class BackendCpuWatch {
 public:
  BackendCpuWatch(const Options& o, std::string db, const std::atomic<int>* exclude = nullptr)
      : thread_([this, &o, db = std::move(db), exclude] {
          PollingConnection c(o.pg);
          while (!stop_) {
            const double v =
                c.poll(0.0, [&](pqxx::connection& conn) { return backend_cpu(conn, db, exclude ? exclude->load() : 0); });
            if (v > max_) max_ = v;
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
          }
        }) {}
  double stop() {
    stop_ = true;
    thread_.join();
    return max_;
  }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<double> max_{0};
  std::thread thread_;
};

// CPU seconds (user + sys) of the children waited for so far.
double children_cpu() {
  rusage u{};
  getrusage(RUSAGE_CHILDREN, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// The 1-minute load average (/proc/loadavg), for the record of the machine's state.
double load_average() {
  std::ifstream in("/proc/loadavg");
  double v = 0;
  in >> v;
  return v;
}

std::string utc_now() {
  const auto t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

bool file_contains(const std::string& path, const std::string& text) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str().find(text) != std::string::npos;
}

int run(const Options& o) {
  const auto stamp = std::to_string(getpid()) + "_" + std::to_string(std::time(nullptr));
  const std::string topic = "bench_writer_" + stamp;
  const std::string writer_db = "bench_writer_" + stamp;
  const std::string copy_db = "bench_copy_" + stamp;
  const std::string insert_db = "bench_insert_" + stamp;
  const auto work = std::filesystem::temp_directory_path() / ("webmon-bench-writer-" + stamp);
  std::filesystem::create_directories(work);

  const auto started_at = utc_now();
  const double load_at_start = load_average();
  std::cout << fmt::format("messages {}, partitions {}, batch_max_rows {}, targets {}; {}, load average {:.1f}\n",
                           o.messages, o.partitions, o.batch_rows, o.targets, started_at, load_at_start);

  // 1. Preload the topic (not timed as part of the writer).
  auto producer = make_producer(o);
  webmon::kafka::ensure_topic(producer.get(), topic, o.partitions, 30000);
  auto t = Clock::now();
  std::size_t bytes = 0;
  for (long i = 0; i < o.messages; ++i) {
    const auto r = webmon::bench::make_check(i, o.targets);
    const auto json = webmon::encode_check_result(r);
    bytes += json.size();
    // rd_kafka_produceva: rd_kafka_producev without its macros' C casts; with the schema header
    // the checker sets.
    std::array<rd_kafka_vu_t, 5> vu{};
    vu[0].vtype = RD_KAFKA_VTYPE_TOPIC;
    vu[0].u.cstr = topic.c_str();
    vu[1].vtype = RD_KAFKA_VTYPE_MSGFLAGS;
    vu[1].u.i = RD_KAFKA_MSG_F_COPY;
    vu[2].vtype = RD_KAFKA_VTYPE_KEY;
    vu[2].u.mem.ptr = const_cast<char*>(r.target.data());
    vu[2].u.mem.size = r.target.size();
    vu[3].vtype = RD_KAFKA_VTYPE_VALUE;
    vu[3].u.mem.ptr = const_cast<char*>(json.data());
    vu[3].u.mem.size = json.size();
    vu[4].vtype = RD_KAFKA_VTYPE_HEADER;
    vu[4].u.header.name = "schema";
    vu[4].u.header.val = webmon::kSchemaHeaderValue.data();
    vu[4].u.header.size = static_cast<ssize_t>(webmon::kSchemaHeaderValue.size());
    while (true) {
      webmon::kafka::ErrorPtr err(rd_kafka_produceva(producer.get(), vu.data(), vu.size()));
      if (!err) break;
      if (rd_kafka_error_code(err.get()) != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        throw std::runtime_error(std::string("produce: ") + rd_kafka_error_string(err.get()));
      }
      rd_kafka_poll(producer.get(), 10);
    }
    rd_kafka_poll(producer.get(), 0);
  }
  rd_kafka_flush(producer.get(), 300000);
  std::cout << fmt::format("preloaded {} messages ({:.0f} bytes each on average) in {:.1f} s\n", o.messages,
                           static_cast<double>(bytes) / static_cast<double>(o.messages), seconds_since(t));

  // 2. The writer, end to end.
  create_database(o, writer_db);
  const auto writer_uri = with_database(o.pg, writer_db);
  const auto config = (work / "writer.yml").string();
  {
    std::ofstream out(config);
    out << "kafka:\n  bootstrap_servers: \"" << o.kafka << "\"\n  topic: \"" << topic << "\"\n  topic_partitions: "
        << o.partitions << "\npostgres:\n  uri: \"" << writer_uri << "\"\nwriter:\n  group_id: \"bench-" << stamp
        << "\"\n  batch_max_rows: " << o.batch_rows << "\n";
  }
  const auto log = (work / "writer.log").string();
  const double load_at_writer = load_average();
  t = Clock::now();
  const pid_t writer = start_writer(config, log);
  PollingConnection progress(writer_uri);
  std::atomic<int> progress_pid{0};
  BackendCpuWatch writer_backend(o, writer_db, &progress_pid);
  double assigned_after = 0;
  while (progress.poll(0L, sum_offsets) < o.messages) {
    progress_pid = progress.backend_pid();
    if (assigned_after == 0 && file_contains(log, "assigned")) assigned_after = seconds_since(t);
    if (waitpid(writer, nullptr, WNOHANG) == writer) throw std::runtime_error("the writer exited; see " + log);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const double writer_total = seconds_since(t);
  const double writer_pg_cpu = writer_backend.stop();
  kill(writer, SIGTERM);
  rusage usage{};
  int status = 0;
  wait4(writer, &status, 0, &usage);
  const double writer_cpu = static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
                            static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
  const double writer_ingest = writer_total - assigned_after;

  long rows = 0;
  double heap_bytes = 0;
  double index_bytes = 0;
  {
    pqxx::connection c(writer_uri);
    pqxx::nontransaction nt(c);
    nt.exec("VACUUM ANALYZE checks");
    rows = nt.exec("SELECT count(*) FROM checks")[0][0].as<long>();
    const auto sizes = nt.exec(
        "SELECT sum(pg_table_size(inhrelid)), sum(pg_indexes_size(inhrelid)) FROM pg_inherits "
        "WHERE inhparent = 'checks'::regclass");
    heap_bytes = sizes[0][0].as<double>();
    index_bytes = sizes[0][1].as<double>();
  }

  // 3. Plain COPY of the same rows through psql, into the same schema.
  const auto copy_uri = schema_database(o, copy_db);
  const auto copy_file = (work / "checks.copy").string();
  {
    std::ofstream out(copy_file, std::ios::binary);
    webmon::writer::CopyRow row;
    for (long i = 0; i < o.messages; ++i) {
      const auto r = webmon::bench::make_check(i, o.targets);
      row.format(r, static_cast<int>(i % o.targets) + 1, 1);
      for (std::size_t f = 0; f < row.fields().size(); ++f) {
        if (f) out << '\t';
        out << (row[f] ? copy_escape(*row[f]) : "\\N");
      }
      out << '\n';
    }
  }
  std::string columns;
  for (const char* col : webmon::writer::kCheckColumns) columns += std::string(columns.empty() ? "" : ",") + col;
  const auto psql = fmt::format("psql -q -v ON_ERROR_STOP=1 '{}' -c \"\\copy checks ({}) FROM '{}'\"", copy_uri,
                                columns, copy_file);
  BackendCpuWatch copy_backend(o, copy_db);
  const double load_at_copy = load_average();
  const double children_before = children_cpu();
  t = Clock::now();
  if (std::system(psql.c_str()) != 0) throw std::runtime_error("psql COPY failed");
  const double copy_seconds = seconds_since(t);
  const double psql_cpu = children_cpu() - children_before;  // psql (and its shell) reading and sending
  const double copy_pg_cpu = copy_backend.stop();

  // 4. One INSERT (and commit) per message, the earlier tools' way, on a subset.
  const auto insert_uri = schema_database(o, insert_db);
  const long inserts = std::min(o.insert_messages, o.messages);
  t = Clock::now();
  {
    pqxx::connection c(insert_uri);
    std::string sql = "INSERT INTO checks (" + columns + ") VALUES (";
    for (std::size_t f = 0; f < webmon::writer::kCheckColumns.size(); ++f) sql += fmt::format("{}${}", f ? "," : "", f + 1);
    sql += ")";
    webmon::writer::CopyRow row;
    for (long i = 0; i < inserts; ++i) {
      const auto r = webmon::bench::make_check(i, o.targets);
      const auto& f = row.format(r, static_cast<int>(i % o.targets) + 1, 1);
      pqxx::work tx(c);
      tx.exec_params(sql, pqxx::prepare::make_dynamic_params(f));  // every column (nullptr: NULL)
      tx.commit();
    }
  }
  const double insert_seconds = seconds_since(t);

  const double writer_rate = static_cast<double>(o.messages) / writer_ingest;
  const double copy_rate = static_cast<double>(o.messages) / copy_seconds;
  std::cout << fmt::format(
      "webmon-writer: {} rows in {:.2f} s from assignment ({:.0f} rows/s); {:.2f} s from process start "
      "({:.0f} rows/s, group join {:.2f} s)\n",
      rows, writer_ingest, writer_rate, writer_total, static_cast<double>(o.messages) / writer_total, assigned_after);
  std::cout << fmt::format("webmon-writer CPU: {:.2f} s user+sys in all its threads ({:.1f} us per row)\n", writer_cpu,
                           writer_cpu * 1e6 / static_cast<double>(o.messages));
  std::cout << fmt::format("psql COPY:     {} rows in {:.2f} s ({:.0f} rows/s); writer/COPY = {:.2f}\n", o.messages,
                           copy_seconds, copy_rate, writer_rate / copy_rate);
  std::cout << fmt::format(
      "PostgreSQL backend CPU: {:.1f} us per row for the writer's COPY, {:.1f} us per row for psql's COPY\n",
      writer_pg_cpu * 1e6 / static_cast<double>(o.messages), copy_pg_cpu * 1e6 / static_cast<double>(o.messages));
  std::cout << fmt::format("INSERT each:   {} rows in {:.2f} s ({:.0f} rows/s)\n", inserts, insert_seconds,
                           static_cast<double>(inserts) / insert_seconds);
  const double per_row = (heap_bytes + index_bytes) / static_cast<double>(rows);
  std::cout << fmt::format(
      "storage: heap {:.1f} B/check, indexes {:.1f} B/check, total {:.1f} B/check; 1,000 targets at 15 s = "
      "172.8 M checks/month = {:.1f} GB/month\n",
      heap_bytes / static_cast<double>(rows), index_bytes / static_cast<double>(rows), per_row,
      per_row * 172.8e6 / 1e9);

  // The summary: each way's rate against psql's COPY of the same rows in this run.
  const double insert_rate = static_cast<double>(inserts) / insert_seconds;
  std::cout << fmt::format("\nsummary ({}, load average {:.1f} at start, {:.1f} / {:.1f} as the writer / COPY began)\n",
                           started_at, load_at_start, load_at_writer, load_at_copy);
  // On a loaded machine the rates follow the CPU each phase was given; the CPU per row (client plus
  // backend; the Kafka broker's is not counted) does not, so both are printed.
  const double n = static_cast<double>(o.messages);
  const double writer_all = (writer_cpu + writer_pg_cpu) * 1e6 / n;
  const double copy_all = (psql_cpu + copy_pg_cpu) * 1e6 / n;
  std::cout << "| way | rows/s | against psql COPY | CPU per row: client / backend / both | CPU against psql COPY "
               "|\n|---|---:|---:|---:|---:|\n";
  std::cout << fmt::format("| webmon-writer | {:.0f} | **{:.2f}** | {:.1f} / {:.1f} / {:.1f} us | {:.2f} |\n",
                           writer_rate, writer_rate / copy_rate, writer_cpu * 1e6 / n, writer_pg_cpu * 1e6 / n,
                           writer_all, copy_all / writer_all);
  std::cout << fmt::format("| psql COPY (text) | {:.0f} | 1.00 | {:.1f} / {:.1f} / {:.1f} us | 1.00 |\n", copy_rate,
                           psql_cpu * 1e6 / n, copy_pg_cpu * 1e6 / n, copy_all);
  std::cout << fmt::format("| INSERT each | {:.0f} | {:.3f} | | |\n", insert_rate, insert_rate / copy_rate);

  drop_database(o, writer_db);
  drop_database(o, copy_db);
  drop_database(o, insert_db);
  delete_topic(producer.get(), topic);
  if (!o.keep_log.empty()) std::filesystem::copy_file(log, o.keep_log, std::filesystem::copy_options::overwrite_existing);
  std::filesystem::remove_all(work);
  return rows == o.messages ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    const std::string v = argv[i + 1];
    if (a == "--messages") o.messages = std::stol(v);
    else if (a == "--partitions") o.partitions = std::stoi(v);
    else if (a == "--batch-rows") o.batch_rows = std::stol(v);
    else if (a == "--insert-messages") o.insert_messages = std::stol(v);
    else if (a == "--targets") o.targets = std::stoi(v);
    else if (a == "--kafka") o.kafka = v;
    else if (a == "--pg") o.pg = v;
    else if (a == "--keep-log") o.keep_log = v;
    else {
      std::cerr << "unknown option " << a << "\n";
      return 2;
    }
  }
  try {
    return run(o);
  } catch (const std::exception& e) {
    std::cerr << "webmon-bench-writer: " << e.what() << "\n";
    return 1;
  }
}
