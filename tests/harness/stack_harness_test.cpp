// Integration (real Kafka and PostgreSQL from scripts/stack): the test harness reaches both
// servers, a message goes through Kafka and back, and a row goes into PostgreSQL and back.
#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <string>

#include <pqxx/pqxx>

#include "support/stack.hpp"
#include "webmon/common/kafka.hpp"

namespace {

using namespace std::chrono_literals;
namespace kafka = webmon::kafka;

kafka::HandlePtr make_client(rd_kafka_type_t type, const kafka::Properties& props) {
  kafka::ConfPtr conf(rd_kafka_conf_new());
  for (const auto& [k, v] : props) kafka::set(conf.get(), k, v);
  return kafka::new_handle(type, std::move(conf));
}

TEST(StackHarnessKafka, MessageProducedToRealKafkaIsConsumedBack) {
  const std::string topic = webmon::test::unique_name("harness");
  const std::string payload = "hello from " + topic;

  auto producer = make_client(RD_KAFKA_PRODUCER, {{"bootstrap.servers", webmon::test::kafka_bootstrap()}});
  // The stack's broker creates no topic by itself (auto.create.topics.enable=false), as a
  // production broker should not: the topic is made the way the daemons make theirs.
  kafka::ensure_topic(producer.get(), topic, 1, 30000);
  // rd_kafka_produceva rather than producev: its varargs macros are C casts.
  std::array<rd_kafka_vu_t, 4> vus{};
  vus[0].vtype = RD_KAFKA_VTYPE_TOPIC;
  vus[0].u.cstr = topic.c_str();
  vus[1].vtype = RD_KAFKA_VTYPE_KEY;
  vus[1].u.mem = {const_cast<char*>("k"), 1};
  vus[2].vtype = RD_KAFKA_VTYPE_VALUE;
  vus[2].u.mem = {const_cast<char*>(payload.data()), payload.size()};
  vus[3].vtype = RD_KAFKA_VTYPE_MSGFLAGS;
  vus[3].u.i = RD_KAFKA_MSG_F_COPY;
  kafka::ErrorPtr error(rd_kafka_produceva(producer.get(), vus.data(), vus.size()));
  ASSERT_FALSE(error) << rd_kafka_error_string(error.get());
  ASSERT_EQ(rd_kafka_flush(producer.get(), 60000), RD_KAFKA_RESP_ERR_NO_ERROR);

  auto consumer = make_client(RD_KAFKA_CONSUMER, {{"bootstrap.servers", webmon::test::kafka_bootstrap()},
                                                  {"group.id", topic},
                                                  {"auto.offset.reset", "earliest"}});
  rd_kafka_poll_set_consumer(consumer.get());
  kafka::TopicPartitionListPtr subscription(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(subscription.get(), topic.c_str(), RD_KAFKA_PARTITION_UA);
  ASSERT_EQ(rd_kafka_subscribe(consumer.get(), subscription.get()), RD_KAFKA_RESP_ERR_NO_ERROR);

  std::string received;
  const auto until = std::chrono::steady_clock::now() + 90s;
  while (received.empty() && std::chrono::steady_clock::now() < until) {
    kafka::MessagePtr msg(rd_kafka_consumer_poll(consumer.get(), 500));
    if (msg && msg->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      received.assign(static_cast<const char*>(msg->payload), msg->len);
      EXPECT_EQ(std::string(static_cast<const char*>(msg->key), msg->key_len), "k");
    }
  }
  rd_kafka_consumer_close(consumer.get());
  EXPECT_EQ(received, payload);
}

TEST(StackHarnessPostgres, RowWrittenToRealPostgresIsReadBack) {
  pqxx::connection conn(webmon::test::postgres_uri());
  const std::string table = webmon::test::unique_name("harness");
  {
    pqxx::work tx(conn);
    tx.exec0("CREATE TEMP TABLE " + tx.quote_name(table) + " (id int PRIMARY KEY, note text)");
    tx.exec0("INSERT INTO " + tx.quote_name(table) + " VALUES (1, 'written by the harness')");
    const auto row = tx.exec1("SELECT note, current_setting('server_version_num')::int FROM " + tx.quote_name(table));
    EXPECT_EQ(row[0].as<std::string>(), "written by the harness");
    EXPECT_GE(row[1].as<int>(), 150000) << "scripts/stack runs PostgreSQL 15";
    tx.commit();
  }
}

}  // namespace
