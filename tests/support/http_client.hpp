// A blocking HTTP/1.1 request to 127.0.0.1, for tests that look at what a scraper or a person
// would see on a daemon's endpoint (/metrics, /healthz, /readyz).
#pragma once

#include <string>

namespace webmon::test {

struct HttpReply {
  int status = 0;  // 0: nothing answered (refused, reset, or no reply within 30 s)
  std::string content_type;
  std::string body;
};

// `method` is GET, HEAD, POST, ...
HttpReply http_request(unsigned short port, const std::string& method, const std::string& target);
inline HttpReply http_get(unsigned short port, const std::string& target) { return http_request(port, "GET", target); }

}  // namespace webmon::test
