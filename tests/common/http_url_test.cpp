#include "webmon/common/http_url.hpp"

#include <gtest/gtest.h>

namespace webmon {
namespace {

HttpUrl parse_ok(std::string_view text) {
  std::string why;
  auto u = parse_http_url(text, &why);
  EXPECT_TRUE(u.has_value()) << text << ": " << why;
  return u.value_or(HttpUrl{});
}

std::string parse_error(std::string_view text) {
  std::string why;
  auto u = parse_http_url(text, &why);
  EXPECT_FALSE(u.has_value()) << text << " parsed as " << (u ? to_string(*u) : "");
  return why;
}

TEST(HttpUrl, DefaultPortsAndRootTarget) {
  const auto a = parse_ok("http://example.com");
  EXPECT_FALSE(a.https);
  EXPECT_EQ(a.host, "example.com");
  EXPECT_EQ(a.port, "80");
  EXPECT_EQ(a.target, "/");
  EXPECT_EQ(a.host_header(), "example.com");

  const auto b = parse_ok("https://example.com/");
  EXPECT_TRUE(b.https);
  EXPECT_EQ(b.port, "443");
  EXPECT_EQ(b.host_header(), "example.com");
}

TEST(HttpUrl, ExplicitPortPathAndQuery) {
  const auto u = parse_ok("https://Example.COM:8443/a/b%20c?x=1&y=%2F#frag");
  EXPECT_EQ(u.host, "example.com");
  EXPECT_EQ(u.port, "8443");
  EXPECT_EQ(u.target, "/a/b%20c?x=1&y=%2F");  // fragment never sent
  EXPECT_EQ(u.host_header(), "example.com:8443");
  EXPECT_EQ(to_string(u), "https://example.com:8443/a/b%20c?x=1&y=%2F");
}

TEST(HttpUrl, ExplicitDefaultPortIsLeftOutOfHostHeader) {
  const auto u = parse_ok("http://example.com:80/x");
  EXPECT_EQ(u.port, "80");
  EXPECT_EQ(u.host_header(), "example.com");
  const auto v = parse_ok("https://example.com:80/x");
  EXPECT_EQ(v.host_header(), "example.com:80");
}

TEST(HttpUrl, Ipv6Literal) {
  const auto u = parse_ok("http://[::1]:8080/health");
  EXPECT_EQ(u.host, "::1");
  EXPECT_EQ(u.port, "8080");
  EXPECT_EQ(u.host_header(), "[::1]:8080");
  EXPECT_EQ(to_string(u), "http://[::1]:8080/health");

  const auto v = parse_ok("https://[2001:db8::1]/");
  EXPECT_EQ(v.host, "2001:db8::1");
  EXPECT_EQ(v.port, "443");
  EXPECT_EQ(v.host_header(), "[2001:db8::1]");
}

TEST(HttpUrl, Ipv4Literal) {
  const auto u = parse_ok("http://127.0.0.1:9/");
  EXPECT_EQ(u.host, "127.0.0.1");
  EXPECT_EQ(u.port, "9");
}

TEST(HttpUrl, RefusesWhatIsNotHttp) {
  EXPECT_NE(parse_error("ftp://example.com/").find("not http or https"), std::string::npos);
  EXPECT_NE(parse_error("example.com/path").find("malformed"), std::string::npos);
  EXPECT_NE(parse_error("/relative").find("malformed"), std::string::npos);
  EXPECT_NE(parse_error("http:///nohost").find("no host"), std::string::npos);
  EXPECT_NE(parse_error("http://example.com:99999/").find("invalid port"), std::string::npos);
  EXPECT_NE(parse_error("http://example.com:0/").find("invalid port"), std::string::npos);
  EXPECT_NE(parse_error("http://user:pw@example.com/").find("Authorization"), std::string::npos);
  EXPECT_NE(parse_error("http://exa mple.com/").find("malformed"), std::string::npos);
  EXPECT_FALSE(parse_http_url("").has_value());
}

TEST(HttpUrl, WhyIsOptional) { EXPECT_FALSE(parse_http_url("gopher://x/", nullptr).has_value()); }

HttpUrl redirect_ok(std::string_view base, std::string_view location) {
  std::string why;
  auto r = resolve_redirect(parse_ok(base), location, &why);
  EXPECT_TRUE(r.has_value()) << base << " + " << location << ": " << why;
  return r.value_or(HttpUrl{});
}

TEST(HttpUrlRedirect, AbsoluteLocation) {
  const auto r = redirect_ok("http://a.example/x", "https://b.example:444/y?z=1");
  EXPECT_TRUE(r.https);
  EXPECT_EQ(r.host, "b.example");
  EXPECT_EQ(r.port, "444");
  EXPECT_EQ(r.target, "/y?z=1");
}

TEST(HttpUrlRedirect, AbsolutePathKeepsSchemeHostPort) {
  EXPECT_EQ(to_string(redirect_ok("http://a.example:8080/x/y?q", "/new")), "http://a.example:8080/new");
}

TEST(HttpUrlRedirect, RelativePathResolvesAgainstDirectory) {
  EXPECT_EQ(to_string(redirect_ok("http://a.example/dir/page?q=1", "other")), "http://a.example/dir/other");
  EXPECT_EQ(to_string(redirect_ok("http://a.example/dir/sub/page", "../up")), "http://a.example/dir/up");
  EXPECT_EQ(to_string(redirect_ok("http://a.example/dir/page", "?only=query")),
            "http://a.example/dir/page?only=query");
}

TEST(HttpUrlRedirect, SchemeRelative) {
  EXPECT_EQ(to_string(redirect_ok("https://a.example/x", "//b.example/y")), "https://b.example/y");
}

TEST(HttpUrlRedirect, Ipv6BaseKeepsBrackets) {
  const auto r = redirect_ok("http://[::1]:8080/a", "/b");
  EXPECT_EQ(r.host, "::1");
  EXPECT_EQ(r.port, "8080");
  EXPECT_EQ(to_string(r), "http://[::1]:8080/b");
}

TEST(HttpUrlRedirect, DefaultPortOfNewScheme) {
  const auto r = redirect_ok("http://a.example:8080/", "https://a.example/secure");
  EXPECT_EQ(r.port, "443");
}

TEST(HttpUrlRedirect, UnsafeBytesArePercentEncodedLikeBrowsersDo) {
  EXPECT_EQ(to_string(redirect_ok("http://a.example/", "/a b/\xc3\xa9")), "http://a.example/a%20b/%C3%A9");
}

TEST(HttpUrlRedirect, RefusesOtherSchemesAndEmptyLocation) {
  std::string why;
  EXPECT_FALSE(resolve_redirect(parse_ok("http://a.example/"), "ftp://b.example/f", &why));
  EXPECT_NE(why.find("not http or https"), std::string::npos) << why;
  EXPECT_FALSE(resolve_redirect(parse_ok("http://a.example/"), "  ", &why));
  EXPECT_NE(why.find("empty"), std::string::npos) << why;
}

// Found by the url fuzz target (tests/fuzz/regressions/url/): a host that decodes to bytes a
// name cannot hold unencoded was accepted, and its text then no longer parsed (the next
// redirect's base failed, and the raw byte went into the Host header and the DNS query).
TEST(HttpUrl, RefusesHostNamesThatDoNotParseBack) {
  EXPECT_NE(parse_error("http://ex%C3%A4mple.com/").find("invalid host name"), std::string::npos);
  EXPECT_NE(parse_error("http://a%3Ab/").find("invalid host name"), std::string::npos);
  EXPECT_EQ(to_string(parse_ok("http://Ex%61mple.COM/")), "http://example.com/");
  EXPECT_EQ(to_string(parse_ok("http://xn--caf-dma.example/")), "http://xn--caf-dma.example/");
}

TEST(HttpUrlRedirect, RefusesLocationWhoseHostIsNotAName) {
  std::string why;
  EXPECT_FALSE(resolve_redirect(parse_ok("http://example.com/a?b=c"), "HTTP://EXAMPLE\xa6" "COM./A/./B/../C", &why));
  EXPECT_NE(why.find("invalid host name"), std::string::npos) << why;
  const auto r = redirect_ok("http://example.com/a?b=c", "HTTP://EXAMPLE.COM./A/./B/../C");
  EXPECT_EQ(to_string(r), "http://example.com./A/C");
  EXPECT_EQ(parse_http_url(to_string(r)), r);
}

}  // namespace
}  // namespace webmon
