#include "webmon/writer/sink.hpp"

#include <sys/socket.h>

#include <algorithm>

#include <fmt/format.h>
#include <libpq-fe.h>
#include <pqxx/pqxx>
#include <spdlog/spdlog.h>

#include "webmon/common/hex.hpp"
#include "webmon/writer/pg_format.hpp"

namespace webmon::writer {
namespace {

// How stale targets.last_seen may get before a batch refreshes it (an update per target per batch
// would cost a row version per target per batch).
constexpr auto kTouchEvery = std::chrono::seconds(60);

// bytea's hex input form: \x then two digits a byte.
std::string hex_bytea(const std::string& bytes) {
  std::string out = "\\x";
  append_hex(out, bytes);
  return out;
}

std::optional<std::chrono::sys_days> day_of_partition(const std::string& relname) {
  // checks_YYYYMMDD
  if (relname.size() != 14 || relname.rfind("checks_", 0) != 0) return std::nullopt;
  int y = 0;
  unsigned m = 0;
  unsigned d = 0;
  try {
    y = std::stoi(relname.substr(7, 4));
    m = static_cast<unsigned>(std::stoi(relname.substr(11, 2)));
    d = static_cast<unsigned>(std::stoi(relname.substr(13, 2)));
  } catch (const std::exception&) {
    return std::nullopt;
  }
  const std::chrono::year_month_day ymd{std::chrono::year(y), std::chrono::month(m), std::chrono::day(d)};
  if (!ymd.ok()) return std::nullopt;
  return std::chrono::sys_days(ymd);
}

std::string iso_day(std::chrono::sys_days day) {
  return format_pg_timestamp(SysMillis(day)).substr(0, 10);
}

// Binary COPY goes out in chunks of this size: one PQputCopyData (one CopyData message) per
// chunk instead of one per row.
constexpr std::size_t kCopyChunk = 256 * 1024;

// pqxx::connect_direct that remembers the libpq handle it made, so that COPY data can be sent with
// PQputCopyData on the connection pqxx owns (libpqxx 6.4's stream_to speaks only text, and builds
// and escapes each row through its own string concatenation).
class HandlePolicy : public pqxx::connect_direct {
 public:
  using pqxx::connect_direct::connect_direct;
  handle do_startconnect(handle orig) override { return handle_ = connect_direct::do_startconnect(orig); }
  handle do_completeconnect(handle orig) override { return handle_ = connect_direct::do_completeconnect(orig); }
  handle do_dropconnect(handle orig) noexcept override { return handle_ = connect_direct::do_dropconnect(orig); }
  handle do_disconnect(handle orig) noexcept override { return handle_ = connect_direct::do_disconnect(orig); }
  PGconn* pg() const { return handle_; }

 private:
  handle handle_ = nullptr;
};

}  // namespace

// pqxx::connection with HandlePolicy in place of connect_direct (pqxx::basic_connection_base's own
// two lines; that template keeps its policy private).
class CopyConnection : public pqxx::connection_base {
 public:
  explicit CopyConnection(const std::string& options) : pqxx::connection_base(policy_), policy_(options) { init(); }
  ~CopyConnection() noexcept { close(); }
  CopyConnection(const CopyConnection&) = delete;
  CopyConnection& operator=(const CopyConnection&) = delete;
  PGconn* pg() const { return policy_.pg(); }

 private:
  HandlePolicy policy_;
};

namespace {

// One COPY ... FROM STDIN inside the transaction `tx`, its data sent with PQputCopyData. A COPY
// left open (an exception before complete()) is ended with an error, so the connection is back
// in the failed transaction, which pqxx rolls back as usual.
class CopyIn {
 public:
  CopyIn(pqxx::transaction_base& tx, const CopyConnection& conn, const std::string& command) : pg_(conn.pg()) {
    if (!pg_) throw pqxx::broken_connection("no connection for COPY");
    tx.exec(command);  // PGRES_COPY_IN
    open_ = true;
    buffer_.reserve(kCopyChunk + 4096);
  }
  ~CopyIn() {
    if (!open_) return;
    PQputCopyEnd(pg_, "webmon-writer: COPY abandoned");
    std::string error;
    std::string sqlstate;
    drain(error, sqlstate);
  }
  CopyIn(const CopyIn&) = delete;
  CopyIn& operator=(const CopyIn&) = delete;

  std::string& buffer() { return buffer_; }
  void flush_if_full() {
    if (buffer_.size() >= kCopyChunk) flush();
  }
  // Sends the rest and ends the COPY; a row the server refused surfaces here as pqxx::sql_error
  // with its SQLSTATE (as stream_to's complete() did), a lost connection as broken_connection.
  void complete() {
    flush();
    open_ = false;
    if (PQputCopyEnd(pg_, nullptr) != 1) lost();
    std::string error;
    std::string sqlstate;
    drain(error, sqlstate);
    if (error.empty()) return;
    if (PQstatus(pg_) == CONNECTION_BAD || sqlstate.empty()) throw pqxx::broken_connection(error);
    throw pqxx::sql_error(error, "COPY", sqlstate.c_str());
  }

 private:
  void flush() {
    if (buffer_.empty()) return;
    if (PQputCopyData(pg_, buffer_.data(), static_cast<int>(buffer_.size())) != 1) lost();
    buffer_.clear();
  }
  // The COPY's results up to the end; the first error's text and SQLSTATE. Still in COPY_IN (the
  // end could not be sent) means the connection is unusable: libpq would answer COPY_IN forever.
  void drain(std::string& error, std::string& sqlstate) {
    while (PGresult* r = PQgetResult(pg_)) {
      const auto status = PQresultStatus(r);
      if (status != PGRES_COMMAND_OK && error.empty()) {
        error = status == PGRES_COPY_IN ? std::string("COPY could not be ended: ") + PQerrorMessage(pg_)
                                        : PQresultErrorMessage(r);
        if (const char* s = PQresultErrorField(r, PG_DIAG_SQLSTATE)) sqlstate = s;
      }
      PQclear(r);
      if (status == PGRES_COPY_IN) break;
    }
  }
  [[noreturn]] void lost() { throw pqxx::broken_connection(std::string("COPY: ") + PQerrorMessage(pg_)); }

  PGconn* pg_;
  bool open_ = false;
  std::string buffer_;
};

std::string copy_checks_command() {
  return fmt::format("COPY checks ({}) FROM STDIN (FORMAT binary)", fmt::join(kCheckColumns, ", "));
}

}  // namespace

PgSink::PgSink(std::string conninfo, std::string group_id)
    : conninfo_(std::move(conninfo)), group_id_(std::move(group_id)) {}
PgSink::~PgSink() = default;

void PgSink::abort() noexcept {
  std::lock_guard lock(socket_mutex_);
  if (socket_ >= 0) ::shutdown(socket_, SHUT_RDWR);
}

void PgSink::ping() {
  pqxx::nontransaction nt(*conn_);
  nt.exec("SELECT 1");
}

void PgSink::connect() {
  disconnect();
  auto conn = std::make_unique<CopyConnection>(conninfo_);
  {
    std::lock_guard lock(socket_mutex_);
    socket_ = conn->sock();
  }
  try {
    // A broken connection is never used again (the writer calls disconnect() and connect()), so
    // pqxx's own reactivation never comes into play.
    // Rows and offsets commit together, so a commit lost in a PostgreSQL crash loses both, and the
    // writer reads those messages again from the offsets that survived: exactly once holds without
    // waiting for each commit's WAL flush. (WAL is replayed in order, so no later commit survives
    // an earlier lost one.)
    {
      pqxx::nontransaction nt(*conn);
      nt.exec("SET synchronous_commit = off");
    }
    // Ids learnt before may belong to transactions a crash undid: learn them again.
    targets_.clear();
    checkers_.clear();
    locations_.clear();
    known_days_.clear();
    {
      pqxx::read_transaction tx(*conn);
      for (const auto& row : tx.exec(
               "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
               "WHERE i.inhparent = 'checks'::regclass")) {
        if (auto day = day_of_partition(row[0].as<std::string>())) known_days_.insert(*day);
      }
    }
    conn_ = std::move(conn);
  } catch (...) {
    std::lock_guard lock(socket_mutex_);
    socket_ = -1;
    throw;
  }
}

void PgSink::disconnect() noexcept {
  {
    std::lock_guard lock(socket_mutex_);
    socket_ = -1;
  }
  try {
    conn_.reset();
  } catch (...) {
  }
}

std::map<std::int32_t, std::optional<std::int64_t>> PgSink::read_offsets(const std::string& topic,
                                                                         const std::vector<std::int32_t>& partitions) {
  std::map<std::int32_t, std::optional<std::int64_t>> out;
  for (auto p : partitions) out[p] = std::nullopt;
  pqxx::read_transaction tx(*conn_);
  for (const auto& row : tx.exec_params(
           "SELECT \"partition\", next_offset FROM ingest_offsets WHERE group_id = $1 AND topic = $2", group_id_,
           topic)) {
    const auto p = row[0].as<std::int32_t>();
    if (auto it = out.find(p); it != out.end()) it->second = row[1].as<std::int64_t>();
  }
  return out;
}

void PgSink::resolve_ids(pqxx::transaction_base& tx, const Batch& batch,
                         std::unordered_map<std::string, TargetEntry>& new_targets,
                         std::unordered_map<std::string, int>& new_checkers,
                         std::unordered_map<std::string, int>& new_locations) {
  const auto now = std::chrono::steady_clock::now();
  // The latest row of each target in the batch decides its url and last_seen.
  std::map<std::string_view, const CheckResult*> upsert;
  std::set<std::string_view> checkers;
  std::set<std::string_view> locations;
  for (const auto& r : batch.rows) {
    auto it = targets_.find(r.target);
    if (it == targets_.end() || it->second.url != r.url || now - it->second.touched > kTouchEvery) {
      auto& slot = upsert[r.target];
      if (!slot || slot->scheduled_at <= r.scheduled_at) slot = &r;
    }
    if (!checkers_.count(r.checker)) checkers.insert(r.checker);
    if (!r.location.empty() && !locations_.count(r.location)) locations.insert(r.location);
  }
  if (!upsert.empty()) {
    // Sorted by name (std::map), so that two writers lock the same targets in the same order.
    std::vector<std::string_view> names;
    std::vector<std::string_view> urls;
    std::vector<std::string> seen;
    for (const auto& [name, r] : upsert) {
      names.push_back(name);
      urls.push_back(r->url);
      seen.push_back(format_pg_timestamp(r->scheduled_at));
    }
    std::vector<std::string_view> seen_views(seen.begin(), seen.end());
    const auto result = tx.exec_params(
        "INSERT INTO targets AS t (name, url, first_seen, last_seen) "
        "SELECT n, u, s, s FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS x(n, u, s) "
        "ON CONFLICT (name) DO UPDATE SET url = EXCLUDED.url, last_seen = GREATEST(t.last_seen, EXCLUDED.last_seen) "
        "RETURNING id, name, url",
        pg_text_array(names), pg_text_array(urls), pg_text_array(seen_views));
    for (const auto& row : result) {
      new_targets[row[1].as<std::string>()] = TargetEntry{row[0].as<int>(), row[2].as<std::string>(), now};
    }
  }
  if (!checkers.empty()) {
    std::vector<std::string_view> names(checkers.begin(), checkers.end());
    const auto result = tx.exec_params(
        "INSERT INTO checkers AS c (name) SELECT unnest($1::text[]) "
        "ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id, name",
        pg_text_array(names));
    for (const auto& row : result) new_checkers[row[1].as<std::string>()] = row[0].as<int>();
  }
  if (!locations.empty()) {
    // Unlike checkers' upsert, a name that is there already is only read: an INSERT ... ON
    // CONFLICT takes a value of the id's sequence even when the row exists, and the smallint
    // sequence would run out after 32,767 writer connections x locations. Only a race with
    // another writer inserting the same new name still takes one (DO UPDATE returns its row).
    std::vector<std::string_view> names(locations.begin(), locations.end());
    const auto result = tx.exec_params(
        "WITH wanted(name) AS (SELECT unnest($1::text[])), "
        "found AS (SELECT l.id, l.name FROM locations l JOIN wanted w ON w.name = l.name), "
        "added AS (INSERT INTO locations AS l (name) SELECT w.name FROM wanted w "
        "          WHERE NOT EXISTS (SELECT 1 FROM found f WHERE f.name = w.name) ORDER BY w.name "
        "          ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING l.id, l.name) "
        "SELECT id, name FROM found UNION ALL SELECT id, name FROM added",
        pg_text_array(names));
    for (const auto& row : result) new_locations[row[1].as<std::string>()] = row[0].as<int>();
  }
}

PgSink::Result PgSink::write(const Batch& batch) {
  pqxx::work tx(*conn_);
  // The fence first: it takes the partitions' offset rows, so a competing writer waits here
  // instead of after its COPY, and a fenced batch costs no COPY.
  for (const auto& [partition, span] : batch.partitions) {
    pqxx::result r;
    if (span.expected) {
      r = tx.exec_params(
          "UPDATE ingest_offsets SET next_offset = $1, updated_at = now() "
          "WHERE group_id = $2 AND topic = $3 AND \"partition\" = $4 AND next_offset = $5",
          span.next, group_id_, batch.topic, partition, *span.expected);
    } else {
      r = tx.exec_params(
          "INSERT INTO ingest_offsets (group_id, topic, \"partition\", next_offset) VALUES ($1, $2, $3, $4) "
          "ON CONFLICT DO NOTHING",
          group_id_, batch.topic, partition, span.next);
    }
    if (r.affected_rows() != 1) {
      tx.abort();
      return Result::fenced;
    }
  }

  std::unordered_map<std::string, TargetEntry> new_targets;
  std::unordered_map<std::string, int> new_checkers;
  std::unordered_map<std::string, int> new_locations;
  resolve_ids(tx, batch, new_targets, new_checkers, new_locations);

  if (!batch.rows.empty()) {
    static const std::string command = copy_checks_command();
    CopyIn copy(tx, *conn_, command);
    copy.buffer().append(kCopyBinaryHeader);
    for (const auto& r : batch.rows) {
      auto t = new_targets.find(r.target);
      const int target_id = t != new_targets.end() ? t->second.id : targets_.at(r.target).id;
      auto c = new_checkers.find(r.checker);
      const int checker_id = c != new_checkers.end() ? c->second : checkers_.at(r.checker);
      std::optional<int> location_id;
      if (!r.location.empty()) {
        auto l = new_locations.find(r.location);
        location_id = l != new_locations.end() ? l->second : locations_.at(r.location);
      }
      append_copy_binary_row(copy.buffer(), r, target_id, checker_id, location_id);
      copy.flush_if_full();
    }
    copy.buffer().append(kCopyBinaryTrailer);
    copy.complete();
  }
  if (!batch.dead_letters.empty()) {
    pqxx::stream_to copy(tx, "dead_letters",
                         std::vector<std::string>{"topic", "\"partition\"", "\"offset\"", "reason", "key", "value"});
    for (const auto& d : batch.dead_letters) {
      copy << std::make_tuple(d.topic, std::to_string(d.partition), std::to_string(d.offset), d.reason,
                              d.key ? std::optional<std::string>(hex_bytea(*d.key)) : std::nullopt,
                              d.value ? std::optional<std::string>(hex_bytea(*d.value)) : std::nullopt);
    }
    copy.complete();
  }
  tx.commit();
  for (auto& [name, entry] : new_targets) targets_[name] = std::move(entry);
  for (auto& [name, id] : new_checkers) checkers_[name] = id;
  for (auto& [name, id] : new_locations) locations_[name] = id;
  return Result::committed;
}

void PgSink::ensure_partitions(const std::set<std::chrono::sys_days>& days) {
  for (auto day : days) {
    if (known_days_.count(day)) continue;
    pqxx::work tx(*conn_);
    const bool created = tx.exec_params1("SELECT webmon_ensure_checks_partition($1::date)", iso_day(day))[0].as<bool>();
    tx.commit();
    if (created) spdlog::info("created partition checks_{}", iso_day(day));
    known_days_.insert(day);
  }
}

int PgSink::drop_before(std::chrono::sys_days cutoff) {
  pqxx::work tx(*conn_);
  const int dropped = tx.exec_params1("SELECT webmon_drop_checks_before($1::date)", iso_day(cutoff))[0].as<int>();
  tx.commit();
  for (auto it = known_days_.begin(); it != known_days_.end() && *it < cutoff;) it = known_days_.erase(it);
  return dropped;
}

}  // namespace webmon::writer
