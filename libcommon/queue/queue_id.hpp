// Queue IDs: the name of a message in the spool. 16 characters of
// lowercase Crockford base32 (0-9 a-z without i l o u) encoding 80 bits:
// 54 bits of microseconds since the epoch, 12 bits of the writer's pid and a
// 14-bit counter. Because the alphabet is in ASCII order, sorting IDs as
// strings sorts them by creation time.
// Trust: IDs come back from yubinctl (admin input) and from directory
// listings; QueueId::parse is the only way to build one from text, so a
// QueueId is always safe as a file name (no '/', no '.', fixed length).
// Runs in mtad (yubin-mta) and yubinctl.
#pragma once

#include <compare>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace yubin::queue {

class QueueId {
 public:
  static constexpr size_t kLength = 16;

  // Strict: exactly kLength characters of the alphabet, nothing else.
  static std::optional<QueueId> parse(std::string_view text);
  static bool valid(std::string_view text);
  // Builds the ID from its parts (each masked to its width).
  static QueueId fromParts(uint64_t micros, uint32_t pid, uint32_t counter);

  const std::string& str() const { return text_; }
  // Microseconds since the epoch when the ID was made.
  uint64_t micros() const;

  auto operator<=>(const QueueId&) const = default;
  bool operator==(const QueueId&) const = default;

 private:
  explicit QueueId(std::string text) : text_(std::move(text)) {}
  std::string text_;
};

// Makes IDs that strictly increase within one process, even when the clock
// stands still or steps back. Uniqueness across processes rests on the pid
// bits and, finally, on the O_EXCL create of the queue file. Thread-safe.
class IdGenerator {
 public:
  explicit IdGenerator(uint32_t pid);
  // Uses the real clock.
  QueueId next();
  // For tests: the clock is given.
  QueueId next(uint64_t nowMicros);

 private:
  std::mutex mu_;
  uint32_t pid_;
  uint64_t lastMicros_ = 0;
  uint32_t counter_ = 0;
};

}  // namespace yubin::queue
