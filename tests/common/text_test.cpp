// The shared text helpers: the one host:port reader and ASCII lower-casing.
#include <gtest/gtest.h>

#include "webmon/common/text.hpp"

namespace {

using webmon::parse_host_port;

TEST(ParseHostPort, RequiredPort) {
  auto hp = parse_host_port("127.0.0.1:9100");
  ASSERT_TRUE(hp);
  EXPECT_EQ(hp->host, "127.0.0.1");
  EXPECT_EQ(hp->port, 9100);
  EXPECT_FALSE(hp->bracketed);

  hp = parse_host_port("[::1]:0");
  ASSERT_TRUE(hp);
  EXPECT_EQ(hp->host, "::1");
  EXPECT_EQ(hp->port, 0);
  EXPECT_TRUE(hp->bracketed);

  hp = parse_host_port(":9101");  // all addresses
  ASSERT_TRUE(hp);
  EXPECT_EQ(hp->host, "");
  EXPECT_EQ(hp->port, 9101);

  hp = parse_host_port("kafka-1.example.com:9093");
  ASSERT_TRUE(hp);
  EXPECT_EQ(hp->host, "kafka-1.example.com");

  for (const char* bad : {"", "9100", "host:", "::1:9100", "[::1]9100", "[::1]", "[]:80", "h:65536", "h:9x",
                          "h:-1", "h:123456", "[::1:80"}) {
    EXPECT_FALSE(parse_host_port(bad)) << bad;
  }
}

TEST(ParseHostPort, OptionalPort) {
  auto hp = parse_host_port("10.0.0.2", true);
  ASSERT_TRUE(hp);
  EXPECT_EQ(hp->host, "10.0.0.2");
  EXPECT_FALSE(hp->port);

  hp = parse_host_port("::1", true);  // a bare v6 literal carries no port
  ASSERT_TRUE(hp);
  EXPECT_EQ(hp->host, "::1");
  EXPECT_FALSE(hp->port);

  hp = parse_host_port("[fe80::1]", true);
  ASSERT_TRUE(hp);
  EXPECT_EQ(hp->host, "fe80::1");
  EXPECT_FALSE(hp->port);

  hp = parse_host_port("[::1]:5353", true);
  ASSERT_TRUE(hp);
  EXPECT_EQ(hp->port, 5353);

  hp = parse_host_port("10.0.0.2:5353", true);
  ASSERT_TRUE(hp);
  EXPECT_EQ(hp->host, "10.0.0.2");
  EXPECT_EQ(hp->port, 5353);

  for (const char* bad : {"", "10.0.0.2:", "[::1]x", "[::1]:99999"}) EXPECT_FALSE(parse_host_port(bad, true)) << bad;
}

TEST(AsciiLower, OnlyAscii) {
  EXPECT_EQ(webmon::ascii_lower("Content-Type"), "content-type");
  EXPECT_EQ(webmon::ascii_lower("\xc3\x84X"), "\xc3\x84x");  // bytes >= 0x80 are left alone
}

}  // namespace
