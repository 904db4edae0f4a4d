// What a PostgreSQL failure means for the writer: retryable (the connection, the server or a
// lock: back off and write the same batch again) or permanent (the server refuses the data for
// good: find the refused message and dead-letter it, or the partition would stall for ever).
#pragma once

#include <exception>
#include <string>
#include <string_view>

namespace webmon::writer {

class PgFailure {
 public:
  PgFailure() = default;
  PgFailure(std::string sqlstate, std::string message) : sqlstate_(std::move(sqlstate)), message_(std::move(message)) {}
  // Reads the SQLSTATE of a pqxx::sql_error; anything else (broken connection, in doubt, a
  // deadline) has none and is retryable.
  static PgFailure from(const std::exception& e);

  // SQLSTATE classes 22 (data exception) and 23 (integrity constraint violation), 42804 (a value
  // of the wrong type) and 54000 (a value too large, e.g. for an index) are about the data: the
  // same rows fail the same way every time. Everything else (08 connection, 40 serialization,
  // 55/57 locks, timeouts and shutdowns, 53 resources, 42 errors about the schema) may pass later.
  static bool is_retryable_sqlstate(std::string_view sqlstate);

  bool is_retryable() const { return is_retryable_sqlstate(sqlstate_); }
  const std::string& sqlstate() const { return sqlstate_; }
  const std::string& message() const { return message_; }
  // "SQLSTATE 23514: new row ... violates check constraint ..." (or the message alone).
  std::string describe() const;

 private:
  std::string sqlstate_;  // empty: not an error the server reported
  std::string message_;
};

}  // namespace webmon::writer
