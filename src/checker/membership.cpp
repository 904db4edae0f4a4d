#include "webmon/checker/membership.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <vector>

#include <spdlog/spdlog.h>

#include "webmon/checker/metrics.hpp"
#include "webmon/common/log_limit.hpp"

namespace webmon::checker {

namespace {

std::vector<unsigned> as_vector(const std::set<unsigned>& s) { return {s.begin(), s.end()}; }

std::set<unsigned> minus(const std::set<unsigned>& a, const std::set<unsigned>& b) {
  std::set<unsigned> out;
  std::set_difference(a.begin(), a.end(), b.begin(), b.end(), std::inserter(out, out.end()));
  return out;
}

double unix_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

LogLimit consumer_error_log;  // the first 10 consumer errors, then every 1000th

}  // namespace

kafka::Properties Membership::default_properties(const Config& config) {
  const auto& c = config.checker;
  kafka::Properties p = {
      {"group.id", c.fleet_group()},
      {"client.id", "webmon-checker-" + c.instance_id},
      // A join or a leave moves only the shards that must move, and the others keep probing.
      {"partition.assignment.strategy", "cooperative-sticky"},
      {"session.timeout.ms", std::to_string(c.session_timeout_ms)},
      // Frequent heartbeats: the others notice a rebalance (a member gone) within a twentieth of
      // the session rather than a third, which is most of what a takeover costs beyond the session.
      {"heartbeat.interval.ms", std::to_string(std::max(100, c.session_timeout_ms / 20))},
      // The topic is only the group's subject: nothing is read, nothing committed.
      {"enable.auto.commit", "false"},
      {"enable.auto.offset.store", "false"},
      {"auto.offset.reset", "latest"},
      {"enable.partition.eof", "false"},
  };
  if (!c.group_instance_id.empty()) p.emplace_back("group.instance.id", c.group_instance_id);
  return p;
}

Membership::Membership(const Config& config, CheckerMetrics& metrics, Events events)
    : group_(config.checker.fleet_group()), topic_(config.kafka.coordination_topic),
      instance_(config.checker.group_instance_id), shards_wanted_(config.checker.shards),
      session_timeout_ms_(config.checker.session_timeout_ms), metrics_(metrics),
      events_(std::move(events)) {
  auto conf = kafka::make_conf(config.kafka, default_properties(config));
  rd_kafka_conf_set_opaque(conf.get(), this);
  rd_kafka_conf_set_rebalance_cb(conf.get(), &Membership::rebalance_cb);
  rd_kafka_conf_set_error_cb(conf.get(), &Membership::error_cb);
  rk_ = kafka::new_handle(RD_KAFKA_CONSUMER, std::move(conf));
  rd_kafka_poll_set_consumer(rk_.get());
}

Membership::~Membership() { stop(); }

void Membership::start() { thread_ = std::thread([this] { run(); }); }

void Membership::stop() {
  {
    std::lock_guard l(m_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool Membership::wait(std::chrono::milliseconds d) {
  std::unique_lock l(m_);
  return !cv_.wait_for(l, d, [this] { return stop_.load(); });
}

bool Membership::prepare() {
  while (!stop_) {
    try {
      kafka::ensure_topic(rk_.get(), topic_, shards_wanted_, 5000);
      const int n = kafka::topic_partitions(rk_.get(), topic_, 5000);
      if (n <= 0) throw std::runtime_error("topic " + topic_ + " has no partitions yet");
      count_ = static_cast<unsigned>(n);
      metrics_.shards.Set(n);
      if (n != shards_wanted_) {
        // Every instance of the group reads the same topic, so they agree on the shards whatever
        // their checker.shards says; the key only matters to whoever creates the topic.
        spdlog::warn("group {}: topic {} has {} partitions, checker.shards is {}: the topic's {} shards are used "
                     "(a different count needs a new kafka.coordination_topic)",
                     group_, topic_, n, shards_wanted_, n);
      }
      return true;
    } catch (const std::exception& e) {
      spdlog::warn("group {}: cannot prepare the coordination topic yet ({}); probing nothing until this instance "
                   "joins, retrying",
                   group_, e.what());
      if (!wait(std::chrono::seconds(5))) return false;
    }
  }
  return false;
}

void Membership::run() {
  const bool ready = prepare();
  if (ready) {
    kafka::TopicPartitionListPtr topics(rd_kafka_topic_partition_list_new(1));
    rd_kafka_topic_partition_list_add(topics.get(), topic_.c_str(), RD_KAFKA_PARTITION_UA);
    if (const auto err = rd_kafka_subscribe(rk_.get(), topics.get())) {
      spdlog::critical("group {}: cannot subscribe to {}: {}", group_, topic_, rd_kafka_err2str(err));
      on_fatal();
    } else {
      spdlog::info("group {}: joining as {} (session.timeout.ms {}), {} shards: the partitions of {}", group_,
                   instance_.empty() ? std::string("a dynamic member") : "static member " + instance_,
                   session_timeout_ms_, count_, topic_);
    }
    while (!stop_ && !fatal_) {
      // Serves the group: heartbeats, rebalances (the callback runs here). No message is expected:
      // the partitions are paused as soon as they are assigned.
      kafka::MessagePtr m(rd_kafka_consumer_poll(rk_.get(), 100));
      if (!m || !m->err) continue;
      if (m->err == RD_KAFKA_RESP_ERR__FATAL) {
        on_fatal();
      } else if (const auto n = consumer_error_log.count()) {
        spdlog::warn("group {}: consumer error ({} so far): {}", group_, n, rd_kafka_message_errstr(m.get()));
      }
    }
  }
  if (ready && ever_assigned_ && !fatal_) {
    // Leaves the group (a static member does not: see stop()); the last revocation comes through
    // the rebalance callback on this thread.
    spdlog::info("group {}: leaving", group_);
    closing_ = true;
    rd_kafka_consumer_close(rk_.get());
  } else {
    // Never assigned (or refused): nothing to hand back. librdkafka 2.0's cooperative-sticky
    // assignor can crash when a consumer closes before its first assignment (librdkafka#4312,
    // fixed in 2.2.1), so the handle goes without a close; the coordinator drops the member after
    // its session timeout.
    rd_kafka_destroy_flags(rk_.release(), RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
  }
}

void Membership::rebalance_cb(rd_kafka_t*, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts,
                              void* opaque) noexcept {
  auto* self = static_cast<Membership*>(opaque);
  try {
    self->on_rebalance(err, parts);
  } catch (const std::exception& e) {
    // The assignment change is still made, so that the group can settle; the shards probed stay.
    try {
      spdlog::error("group {}: rebalance ({}): {}", self->group_, rd_kafka_err2str(err), e.what());
    } catch (...) {
    }
  } catch (...) {
  }
}

void Membership::error_cb(rd_kafka_t*, int err, const char* reason, void* opaque) noexcept {
  auto* self = static_cast<Membership*>(opaque);
  try {
    const auto code = static_cast<rd_kafka_resp_err_t>(err);
    if (code == RD_KAFKA_RESP_ERR__FATAL) {
      self->on_fatal();
      return;
    }
    if (const auto n = consumer_error_log.count()) {
      spdlog::warn("group {}: kafka: {} ({} so far): {}", self->group_, rd_kafka_err2name(code), n, reason ? reason : "");
    }
  } catch (...) {
    // Only the log line is lost.
  }
}

void Membership::on_fatal() {
  if (fatal_.exchange(true)) return;
  std::array<char, 512> buf{};
  const auto orig = rd_kafka_fatal_error(rk_.get(), buf.data(), buf.size());
  if (orig == RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID) {
    spdlog::critical("group {}: another webmon-checker joined with this instance's id \"{}\" (checker.instance_id, the "
                     "group.instance.id) and took its place; each instance needs its own id. Stopping. ({})",
                     group_, instance_, buf.data());
  } else {
    spdlog::critical("group {}: fatal consumer error {}: {}; stopping", group_, rd_kafka_err2name(orig), buf.data());
  }
  if (events_.fatal) events_.fatal();
}

// librdkafka answers NULL or "NONE" while the consumer is not (or no longer) in a group, as when
// rd_kafka_consumer_close() serves the last revocation: then the protocol last seen applies.
bool Membership::cooperative() {
  const char* p = rd_kafka_rebalance_protocol(rk_.get());
  if (p && std::strcmp(p, "COOPERATIVE") == 0) cooperative_ = true;
  else if (p && std::strcmp(p, "EAGER") == 0) cooperative_ = false;
  return cooperative_;
}

void Membership::on_rebalance(rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts) {
  if (closing_ && err != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
    spdlog::debug("group {}: {} served while leaving: not taken", group_, rd_kafka_err2name(err));
    return;
  }
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    assigned(parts);
  } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
    revoked(parts, rd_kafka_assignment_lost(rk_.get()) != 0);
  } else {
    // The assignment could not be made (e.g. the assignor failed): hand back what was assigned and
    // keep probing what was held, as when the coordinator is out of reach.
    spdlog::warn("group {}: rebalance error: {}", group_, rd_kafka_err2str(err));
    revoked(parts, true);
  }
}

void Membership::assigned(rd_kafka_topic_partition_list_t* parts) {
  const bool coop = cooperative();
  if (coop) {
    if (kafka::ErrorPtr e{rd_kafka_incremental_assign(rk_.get(), parts)}) {
      throw std::runtime_error(std::string("incremental assign: ") + rd_kafka_error_string(e.get()));
    }
  } else {
    if (const auto e = rd_kafka_assign(rk_.get(), parts)) throw std::runtime_error(std::string("assign: ") + rd_kafka_err2str(e));
    assigned_.clear();
  }
  // Nothing is to be read: the fetchers stay idle.
  rd_kafka_pause_partitions(rk_.get(), parts);
  for (int i = 0; i < parts->cnt; ++i) {
    const auto p = parts->elems[i].partition;
    if (p < 0) continue;
    if (static_cast<unsigned>(p) >= count_) {
      spdlog::warn("group {}: assigned partition {} of {}, which had {} partitions at start: it holds no targets "
                   "until a restart",
                   group_, p, topic_, count_);
    }
    assigned_.insert(static_cast<unsigned>(p));
  }
  ever_assigned_ = true;
  const auto before = held_;
  const bool was_lost = lost_;
  held_ = assigned_;
  lost_ = false;
  publish(was_lost ? "assignment after the assignment was lost" : coop ? "incremental assignment" : "assignment",
          before);
}

void Membership::revoked(rd_kafka_topic_partition_list_t* parts, bool lost) {
  std::set<unsigned> gone;
  for (int i = 0; i < parts->cnt; ++i) {
    if (parts->elems[i].partition >= 0) gone.insert(static_cast<unsigned>(parts->elems[i].partition));
  }
  const bool coop = cooperative();
  const auto before = held_;
  if (lost) {
    // No word from the coordinator for session.timeout.ms (or a failed rebalance): the others may
    // have these shards already, or nobody may. Monitoring goes on with what was held; the next
    // assignment replaces it.
    lost_ = true;
    spdlog::warn("group {}: the assignment was lost (no answer from the group coordinator within the session "
                 "timeout, or a failed rebalance): still probing the {} shards last held until the group re-forms",
                 group_, held_.size());
    publish("lost assignment", before);
  } else {
    // The scheduler stops these shards before Kafka may give them to another instance.
    held_ = coop ? minus(assigned_, gone) : std::set<unsigned>{};
    publish(coop ? "incremental revocation" : "revocation", before);
  }
  if (coop) {
    if (kafka::ErrorPtr e{rd_kafka_incremental_unassign(rk_.get(), parts)}) {
      spdlog::warn("group {}: incremental unassign: {}; unassigning everything", group_, rd_kafka_error_string(e.get()));
      rd_kafka_assign(rk_.get(), nullptr);
      assigned_.clear();
    } else {
      assigned_ = minus(assigned_, gone);
    }
  } else {
    rd_kafka_assign(rk_.get(), nullptr);
    assigned_.clear();
  }
}

void Membership::publish(const char* what, const std::set<unsigned>& before) {
  const auto gained = minus(held_, before);
  const auto lost = minus(before, held_);
  metrics_.rebalances.Increment();
  metrics_.last_rebalance.Set(unix_seconds());
  metrics_.shards_owned.Set(static_cast<double>(held_.size()));
  if (held_ != before && events_.shards_changed) events_.shards_changed(ShardSet(count_, as_vector(held_)));
  spdlog::info("group {}: {}: gained {}, lost {}; owns {} of {}: [{}]", group_, what,
               gained.empty() ? std::string("none") : "[" + shard_ranges(as_vector(gained)) + "]",
               lost.empty() ? std::string("none") : "[" + shard_ranges(as_vector(lost)) + "]", held_.size(), count_,
               held_.empty() ? std::string() : shard_ranges(as_vector(held_)));
}

}  // namespace webmon::checker
