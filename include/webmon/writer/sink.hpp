// The PostgreSQL side of the writer: one transaction per batch (targets, checkers and locations
// upserted, checks by COPY, dead letters, and the fenced offset update), the stored offsets, and
// the daily partitions.
// Blocking calls on the writer's PostgreSQL thread (PgWorker); connection problems surface as pqxx exceptions.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include <pqxx/connection>
#include <pqxx/transaction_base>

#include "webmon/writer/batch.hpp"

namespace webmon::writer {

class CopyConnection;  // a pqxx connection whose libpq handle the sink can reach (sink.cpp)

class PgSink {
 public:
  // `conninfo`: pg_session()'s, with the deadlines.
  PgSink(std::string conninfo, std::string group_id);
  ~PgSink();
  PgSink(const PgSink&) = delete;
  PgSink& operator=(const PgSink&) = delete;

  void connect();               // throws pqxx::broken_connection
  void disconnect() noexcept;   // forgets the connection (and anything learnt in a transaction)
  bool connected() const { return conn_ != nullptr; }
  // From another thread: shuts the connection's socket down, so that a call blocked on a server
  // that does not answer returns at once with an error (the connection is then lost).
  void abort() noexcept;
  void ping();                  // SELECT 1

  // The stored next offset of each partition; nullopt when none is stored (start at the earliest).
  std::map<std::int32_t, std::optional<std::int64_t>> read_offsets(const std::string& topic,
                                                                   const std::vector<std::int32_t>& partitions);

  enum class Result { committed, fenced };
  // Writes the batch in one transaction. `fenced`: some partition's stored offset is no longer the
  // one the batch started from (another writer moved on); nothing was written. Throws
  // pqxx::in_doubt_error when the commit's outcome is unknown.
  Result write(const Batch& batch);

  // Creates the daily partitions of `checks` for these UTC days when missing.
  void ensure_partitions(const std::set<std::chrono::sys_days>& days);
  // Drops partitions (and default-partition rows, dead letters) older than `cutoff`.
  int drop_before(std::chrono::sys_days cutoff);

 private:
  struct TargetEntry {
    int id = 0;
    std::string url;
    std::chrono::steady_clock::time_point touched;
  };
  void resolve_ids(pqxx::transaction_base& tx, const Batch& batch,
                   std::unordered_map<std::string, TargetEntry>& new_targets,
                   std::unordered_map<std::string, int>& new_checkers,
                   std::unordered_map<std::string, int>& new_locations);

  std::string conninfo_;
  std::string group_id_;
  std::unique_ptr<CopyConnection> conn_;
  std::mutex socket_mutex_;  // abort() against connect()/disconnect()
  int socket_ = -1;
  // Ids learnt in committed transactions only: a rolled-back upsert's id does not exist.
  std::unordered_map<std::string, TargetEntry> targets_;
  std::unordered_map<std::string, int> checkers_;
  std::unordered_map<std::string, int> locations_;
  std::set<std::chrono::sys_days> known_days_;
};

}  // namespace webmon::writer
