// Queue IDs; see queue_id.hpp.
#include "queue/queue_id.hpp"

#include <chrono>

namespace yubin::queue {
namespace {

constexpr char kAlphabet[] = "0123456789abcdefghjkmnpqrstvwxyz";
constexpr int kTimeBits = 54;
constexpr int kPidBits = 12;
constexpr int kCounterBits = 14;
static_assert(kTimeBits + kPidBits + kCounterBits == 5 * QueueId::kLength);

int digitValue(char c) {
  for (int i = 0; i < 32; ++i)
    if (kAlphabet[i] == c) return i;
  return -1;
}

}  // namespace

bool QueueId::valid(std::string_view text) {
  if (text.size() != kLength) return false;
  for (char c : text)
    if (digitValue(c) < 0) return false;
  return true;
}

std::optional<QueueId> QueueId::parse(std::string_view text) {
  if (!valid(text)) return std::nullopt;
  return QueueId(std::string(text));
}

QueueId QueueId::fromParts(uint64_t micros, uint32_t pid, uint32_t counter) {
  // 80 bits do not fit in one integer: the top 54 bits are the time, the
  // low 26 bits pid and counter. Emit 5 bits at a time, most significant first.
  uint64_t hi = micros & ((uint64_t{1} << kTimeBits) - 1);
  uint64_t lo = ((uint64_t{pid} & ((1u << kPidBits) - 1)) << kCounterBits) |
                (uint64_t{counter} & ((1u << kCounterBits) - 1));
  std::string out(kLength, '0');
  // Bits 79..26 come from hi, 25..0 from lo.
  for (size_t i = 0; i < kLength; ++i) {
    int bitPos = 75 - static_cast<int>(i) * 5;  // lowest bit of this digit
    unsigned v = 0;
    for (int b = 4; b >= 0; --b) {
      int pos = bitPos + b;
      unsigned bit = pos >= 26 ? (hi >> (pos - 26)) & 1u : (lo >> pos) & 1u;
      v = (v << 1) | bit;
    }
    out[i] = kAlphabet[v];
  }
  return QueueId(std::move(out));
}

uint64_t QueueId::micros() const {
  uint64_t hi = 0;
  for (size_t i = 0; i < kLength; ++i) {
    int v = digitValue(text_[i]);
    for (int b = 4; b >= 0; --b) {
      int pos = 75 - static_cast<int>(i) * 5 + b;
      if (pos >= 26) hi = (hi << 1) | ((static_cast<unsigned>(v) >> b) & 1u);
    }
  }
  return hi;
}

IdGenerator::IdGenerator(uint32_t pid) : pid_(pid) {}

QueueId IdGenerator::next() {
  auto now = std::chrono::system_clock::now().time_since_epoch();
  return next(
      static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(now).count()));
}

QueueId IdGenerator::next(uint64_t nowMicros) {
  std::lock_guard lock(mu_);
  if (nowMicros > lastMicros_) {
    lastMicros_ = nowMicros;
    counter_ = 0;
  } else if (++counter_ >= (1u << kCounterBits)) {
    // Clock stood still (or stepped back) for 16384 IDs: borrow from the future.
    ++lastMicros_;
    counter_ = 0;
  }
  return QueueId::fromParts(lastMicros_, pid_, counter_);
}

}  // namespace yubin::queue
