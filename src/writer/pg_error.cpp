#include "webmon/writer/pg_error.hpp"

#include <pqxx/except>

namespace webmon::writer {

PgFailure PgFailure::from(const std::exception& e) {
  std::string message = e.what();
  while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
  if (const auto* sql = dynamic_cast<const pqxx::sql_error*>(&e)) return PgFailure(sql->sqlstate(), message);
  return PgFailure("", message);
}

bool PgFailure::is_retryable_sqlstate(std::string_view s) {
  if (s.size() != 5) return true;
  const auto cls = s.substr(0, 2);
  if (cls == "22" || cls == "23") return false;
  if (s == "42804" || s == "54000") return false;
  return true;
}

std::string PgFailure::describe() const {
  return sqlstate_.empty() ? message_ : "SQLSTATE " + sqlstate_ + ": " + message_;
}

}  // namespace webmon::writer
