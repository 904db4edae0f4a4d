#include "support/http_client.hpp"

#include <chrono>
#include <cstdlib>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>

namespace webmon::test {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

HttpReply http_request(unsigned short port, const std::string& method, const std::string& target) {
  try {
    asio::io_context ioc;
    beast::tcp_stream stream(ioc);
    stream.expires_after(std::chrono::seconds(30));
    stream.connect({asio::ip::make_address("127.0.0.1"), port});
    const auto verb = http::string_to_verb(method);
    http::request<http::empty_body> req{verb, target, 11};
    req.set(http::field::host, "127.0.0.1");
    http::write(stream, req);
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.skip(verb == http::verb::head);
    http::read(stream, buffer, parser);
    const auto& res = parser.get();
    return {static_cast<int>(res.result_int()), std::string(res[http::field::content_type]), res.body()};
  } catch (const std::exception&) {
    return {};
  }
}

std::optional<double> metric_value(std::string_view exposition, std::string_view series) {
  std::size_t at = 0;
  while (at < exposition.size()) {
    auto end = exposition.find('\n', at);
    if (end == std::string_view::npos) end = exposition.size();
    const auto line = exposition.substr(at, end - at);
    at = end + 1;
    if (line.size() > series.size() && line.substr(0, series.size()) == series && line[series.size()] == ' ') {
      const std::string value(line.substr(series.size() + 1));
      char* parsed_to = nullptr;
      const double v = std::strtod(value.c_str(), &parsed_to);
      if (parsed_to == value.c_str()) return std::nullopt;
      return v;
    }
  }
  return std::nullopt;
}

std::optional<double> scrape_metric(unsigned short port, std::string_view series) {
  const auto reply = http_get(port, "/metrics");
  if (reply.status != 200) return std::nullopt;
  return metric_value(reply.body, series);
}

}  // namespace webmon::test
