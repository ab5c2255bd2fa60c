// msad's submission policy (RFC 6409): who may send as whom, and how much.
// The sender must be an address the authenticated user owns: their own, or
// an address that reaches only them (an alias of theirs); otherwise 553
// 5.7.1. Recipients may be anywhere (this is the relay path, for
// authenticated users only), except unknown local users (550 5.1.1, so the
// mistake shows at once) and source-routing tricks. Per-user rate limits on
// messages and recipients per hour answer 450 4.7.1.
// Trust: judges untrusted envelope addresses from authenticated users; runs
// in msad as yubin-msa.
// Standards: RFC 6409 §4.3, §6.1 (the submission server checks the sender),
// RFC 5321 §3.6, RFC 3463.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <string>
#include <unordered_map>

#include "auth/directory.hpp"
#include "smtp/session.hpp"

namespace yubin::msad {

// Messages and recipients sent per user within the last hour. Pure: the
// caller passes the clock. Memory: one entry per message within the hour,
// which the message limit bounds per user.
class RateLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  struct Settings {
    uint64_t messagesPerHour = 0;    // 0: no limit
    uint64_t recipientsPerHour = 0;  // 0: no limit
    std::chrono::seconds window{3600};
  };
  explicit RateLimiter(Settings s) : settings_(s) {}

  // May the user start another message now?
  bool allowMessage(const std::string& user, Clock::time_point now);
  // May the user's current message have `recipients` recipients (the ones
  // already accepted plus the new one)?
  bool allowRecipients(const std::string& user, uint64_t recipients, Clock::time_point now);
  // A message with `recipients` recipients was accepted.
  void record(const std::string& user, uint64_t recipients, Clock::time_point now);
  void setSettings(const Settings& s) { settings_ = s; }
  size_t users() const { return sent_.size(); }

 private:
  struct Sent {
    Clock::time_point at;
    uint64_t recipients;
  };
  struct Usage {
    uint64_t messages = 0;
    uint64_t recipients = 0;
  };
  Usage usage(const std::string& user, Clock::time_point now);
  Settings settings_;
  std::unordered_map<std::string, std::deque<Sent>> sent_;
};

class SubmissionPolicy : public smtp::Policy {
 public:
  SubmissionPolicy(auth::Directory& directory, RateLimiter& rate)
      : directory_(directory), rate_(rate) {}

  std::optional<smtp::Reply> checkSender(const smtp::Envelope& env,
                                         const mail::Address& from) override;
  std::optional<smtp::Reply> checkRecipient(const smtp::Envelope& env,
                                            const mail::Address& rcpt) override;

  // True when `user` (an authenticated, canonical address) may use `from`
  // as the envelope sender.
  bool owns(const std::string& user, const mail::Address& from);

 private:
  auth::Directory& directory_;
  RateLimiter& rate_;
};

}  // namespace yubin::msad
