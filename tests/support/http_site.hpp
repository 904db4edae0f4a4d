// A tiny HTTP/1.1 site on 127.0.0.1 (port 0) for tests that run the real checker binary:
// GET /ok answers 200 with a body, /missing 404, /slow waits 5 s, anything else 200 "root".
// It counts the requests it answered per path.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace webmon::test {

class HttpSite {
 public:
  HttpSite();
  ~HttpSite();
  HttpSite(const HttpSite&) = delete;
  HttpSite& operator=(const HttpSite&) = delete;

  unsigned short port() const;
  std::string url(const std::string& path) const;  // http://127.0.0.1:<port><path>
  int hits(const std::string& path) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace webmon::test
