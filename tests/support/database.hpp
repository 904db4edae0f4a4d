// A PostgreSQL database of its own for one test, on the stack's server: CREATE DATABASE <unique>
// at construction, DROP ... WITH (FORCE) at destruction, so tests never see each other's rows.
#pragma once

#include <string>

namespace webmon::test {

class TestDatabase {
 public:
  TestDatabase();
  ~TestDatabase();
  TestDatabase(const TestDatabase&) = delete;
  TestDatabase& operator=(const TestDatabase&) = delete;
  const std::string& uri() const { return uri_; }
  const std::string& name() const { return name_; }
  // Runs one query and returns the first column of the first row as text ("" for NULL / no row).
  std::string scalar(const std::string& sql) const;
  void exec(const std::string& sql) const;

 private:
  std::string name_;
  std::string uri_;
};

// The same URI naming another database: postgresql://user:pw@host:port/<db>[?params].
std::string with_database(const std::string& uri, const std::string& db);

}  // namespace webmon::test
