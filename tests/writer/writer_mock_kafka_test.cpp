// The real webmon-writer against librdkafka's mock cluster (rdkafka_mock.h), for the broker's
// behaviours the real Kafka of the stack cannot be made to show on demand: a group coordinator that
// holds a JoinGroup. In addition to the tests against the real Kafka, never instead of them.
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <chrono>
#include <stdexcept>
#include <string>

#include <gtest/gtest.h>

#include "writer_fixture.hpp"

namespace webmon::writer::test {
namespace {

using namespace std::chrono_literals;
using webmon::test::eventually;
using webmon::test::TempDir;
using webmon::test::unique_name;

constexpr std::int16_t kJoinGroup = 11;  // the Kafka protocol's ApiKey

// A one-broker mock cluster listening on loopback, owned by a producer handle of this process.
class MockKafka {
 public:
  MockKafka() {
    char err[512];
    rk_.reset(rd_kafka_new(RD_KAFKA_PRODUCER, rd_kafka_conf_new(), err, sizeof err));
    if (!rk_) throw std::runtime_error(err);
    cluster_ = rd_kafka_mock_cluster_new(rk_.get(), 1);
    if (!cluster_) throw std::runtime_error("rd_kafka_mock_cluster_new failed");
  }
  ~MockKafka() { rd_kafka_mock_cluster_destroy(cluster_); }
  MockKafka(const MockKafka&) = delete;
  MockKafka& operator=(const MockKafka&) = delete;

  rd_kafka_mock_cluster_t* get() const { return cluster_; }
  std::string bootstrap() const { return rd_kafka_mock_cluster_bootstraps(cluster_); }

 private:
  kafka::HandlePtr rk_;
  rd_kafka_mock_cluster_t* cluster_ = nullptr;
};

TEST(WriterWithMockKafka, SigtermWhileTheCoordinatorHoldsTheJoinStopsWithoutWaitingForIt) {
  // A coordinator answers a JoinGroup only once the group's rebalance is over, which can take up
  // to the rebalance timeout (max.poll.interval.ms, 300 s by default). A writer told to stop
  // meanwhile must leave without that answer, by its own close rather than its close's deadline.
  TestDatabase db;
  TempDir dir;
  MockKafka kafka;
  const std::string topic = unique_name("wm_topic");
  ASSERT_EQ(rd_kafka_mock_topic_create(kafka.get(), topic.c_str(), 1, 1), RD_KAFKA_RESP_ERR_NO_ERROR);
  // Every JoinGroup of the next three answered after 10 minutes.
  ASSERT_EQ(rd_kafka_mock_broker_push_request_error_rtts(kafka.get(), 1, kJoinGroup, 3, RD_KAFKA_RESP_ERR_NO_ERROR,
                                                         600000, RD_KAFKA_RESP_ERR_NO_ERROR, 600000,
                                                         RD_KAFKA_RESP_ERR_NO_ERROR, 600000),
            RD_KAFKA_RESP_ERR_NO_ERROR);

  WriterOptions options;
  options.bootstrap = kafka.bootstrap();
  options.kafka_properties = {{"debug", "cgrp"}};  // the log shows when the JoinGroup is sent
  options.log_level = "debug";
  Writer writer(dir.path(), "w", topic, unique_name("wm_group"), db.uri(), options);
  ASSERT_TRUE(eventually([&] { return writer.log().find("join state init -> wait-join") != std::string::npos; }, 60s))
      << writer.log();

  EXPECT_EQ(writer.stop(60s), 0) << writer.log();
  const auto log = writer.log();
  EXPECT_EQ(log.find("close has not returned"), std::string::npos) << log;
  EXPECT_NE(log.find("webmon-writer stopped"), std::string::npos) << log;
}

}  // namespace
}  // namespace webmon::writer::test
