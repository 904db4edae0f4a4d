#include "support/database.hpp"

#include <chrono>
#include <iostream>
#include <thread>

#include <pqxx/pqxx>

#include "support/stack.hpp"

namespace webmon::test {

std::string with_database(const std::string& uri, const std::string& db) {
  const auto scheme = uri.find("://");
  const auto slash = uri.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  const auto query = uri.find('?');
  std::string out = slash == std::string::npos ? uri : uri.substr(0, slash);
  out += "/" + db;
  if (query != std::string::npos) out += uri.substr(query);
  return out;
}

TestDatabase::TestDatabase() : name_(unique_name("wt")) {
  pqxx::connection admin(postgres_uri());
  pqxx::nontransaction nt(admin);
  nt.exec("CREATE DATABASE " + nt.quote_name(name_));
  uri_ = with_database(postgres_uri(), name_);
}

TestDatabase::~TestDatabase() {
  // An autovacuum worker may still be in it (FORCE cannot end a superuser's backend): retry.
  for (int attempt = 1;; ++attempt) {
    try {
      pqxx::connection admin(postgres_uri());
      pqxx::nontransaction nt(admin);
      nt.exec("DROP DATABASE IF EXISTS " + nt.quote_name(name_) + " WITH (FORCE)");
      return;
    } catch (const std::exception& e) {
      if (attempt == 20) {
        std::cerr << "dropping test database " << name_ << ": " << e.what() << "\n";
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
  }
}

std::string TestDatabase::scalar(const std::string& sql) const {
  pqxx::connection c(uri_);
  pqxx::nontransaction nt(c);
  const auto r = nt.exec(sql);
  if (r.empty() || r[0][0].is_null()) return "";
  return r[0][0].c_str();
}

void TestDatabase::exec(const std::string& sql) const {
  pqxx::connection c(uri_);
  pqxx::nontransaction nt(c);
  nt.exec(sql);
}

}  // namespace webmon::test
