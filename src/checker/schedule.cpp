#include "webmon/checker/schedule.hpp"

namespace webmon::checker {

std::uint64_t stable_hash(std::string_view s) noexcept {
  std::uint64_t h = 14695981039346656037ull;
  for (const unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

Nanos phase_offset(std::string_view name, Nanos interval) noexcept {
  if (interval.count() <= 0) return Nanos{0};
  return Nanos{static_cast<Nanos::rep>(stable_hash(name) % static_cast<std::uint64_t>(interval.count()))};
}

Nanos first_due_at_or_after(Nanos now, Nanos offset, Nanos interval) noexcept {
  if (now <= offset) return offset;
  const auto since = (now - offset).count();
  const auto k = (since + interval.count() - 1) / interval.count();  // ceil
  return offset + Nanos{k * interval.count()};
}

unsigned fleet_shard(std::string_view name, unsigned shards) noexcept {
  return shards == 0 ? 0 : static_cast<unsigned>(stable_hash(name) % shards);
}

ShardSet::ShardSet(unsigned count, const std::vector<unsigned>& owned)
    : standalone_(false), count_(count), owned_(count, false) {
  for (const auto s : owned) {
    if (s < count_) owned_[s] = true;
  }
}

std::vector<unsigned> ShardSet::owned() const {
  std::vector<unsigned> out;
  for (unsigned i = 0; i < count_; ++i) {
    if (owned_[i]) out.push_back(i);
  }
  return out;
}

std::size_t ShardSet::size() const noexcept {
  std::size_t n = 0;
  for (const bool b : owned_) n += b ? 1 : 0;
  return n;
}

std::string shard_ranges(const std::vector<unsigned>& v) {
  if (v.empty()) return "none";
  std::string out;
  for (std::size_t i = 0; i < v.size();) {
    std::size_t j = i;
    while (j + 1 < v.size() && v[j + 1] == v[j] + 1) ++j;
    if (!out.empty()) out += ',';
    out += std::to_string(v[i]);
    if (j > i) out += '-' + std::to_string(v[j]);
    i = j + 1;
  }
  return out;
}

TargetSchedule::TargetSchedule(std::string_view name, Nanos interval, Nanos now) noexcept
    : interval_(interval), offset_(phase_offset(name, interval)),
      next_due_(first_due_at_or_after(now, offset_, interval)) {}

TargetSchedule::Fire TargetSchedule::fire(Nanos now) noexcept {
  Fire f;
  if (now < next_due_) {  // woken early (e.g. a cancelled wait): nothing is due yet
    return f;
  }
  const auto behind = (now - next_due_).count() / interval_.count();
  f.due = next_due_ + Nanos{behind * interval_.count()};
  f.skipped = static_cast<std::uint64_t>(behind);
  next_due_ = f.due + interval_;
  if (running_) {
    ++f.skipped;
  } else {
    f.start = true;
    running_ = true;
  }
  return f;
}

void TargetSchedule::reset(std::string_view name, Nanos interval, Nanos now) noexcept {
  interval_ = interval;
  offset_ = phase_offset(name, interval);
  next_due_ = first_due_at_or_after(now, offset_, interval);
}

}  // namespace webmon::checker
