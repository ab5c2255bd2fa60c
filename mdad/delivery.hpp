// The delivery path both faces of mdad share (the LMTP server and the
// delivery command): resolve a recipient through the Directory, then for
// each local user it reaches, in order: prepend "Return-Path: <sender>" and
// "Delivered-To: <user>", refuse a mail loop (Delivered-To already names
// the user), check the quota, and write the copy into the user's Maildir
// (tmp -> new, file and folder fsync'ed) or mbox (locked append, fsync'ed).
// An Outcome comes back only once the copy is durable or has failed.
// Deliveries are synchronous file I/O; the mbox lock wait is bounded by
// [mdad] lock_timeout.
// Threads: the LMTP server plans a message's deliveries on its loop thread
// (plan(): the Directory is not thread-safe) and makes the copies on its
// worker threads (deliverToUser() is thread-safe: the settings are read
// under a lock, the Maildir name counter is atomic, the quota cache locks,
// and copies into one mbox take turns through a per-path mutex, held over
// the quota check and the append). The delivery command does it all on
// one thread (deliverToRecipient()).
// Trust: the message bytes and the envelope addresses are untrusted; the
// user database is the admin's. Runs as [mdad] user, the mailboxes' owner.
// Standards: RFC 5321 §4.4 (Return-Path), RFC 9228 (Delivered-To), RFC 4155
// (mbox), maildir(5).
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/directory.hpp"
#include "mdad/outcome.hpp"
#include "mdad/keyed_mutex.hpp"
#include "store/fs_ops.hpp"
#include "store/maildir.hpp"
#include "store/mbox.hpp"
#include "store/message_source.hpp"
#include "store/quota.hpp"

namespace yubin::config {
class Config;
}

namespace yubin::mdad {

struct DeliverySettings {
  bool quotaTemporary = false;                   // [mdad] quota_temporary
  std::chrono::milliseconds lockTimeout{10000};  // [mdad] lock_timeout, for each mbox lock
  store::DotLock dotLock = store::DotLock::Try;
  static DeliverySettings fromConfig(const config::Config& cfg);
};

// The header lines prepended to a user's copy (CRLF line ends; the store
// writes LF). sender is "" for the null sender.
std::string tracePrefix(std::string_view sender, std::string_view recipient);

// What a resolution that reaches no local user means; nullopt when there
// are users to deliver to.
std::optional<Outcome> resolutionOutcome(const auth::Resolution& r);

// Checks that do not depend on the recipient: an empty message, or a NUL
// byte in the header block (the first 1 MiB of it), is BadMessage.
std::optional<Outcome> checkMessage(const store::MessageSource& msg);

// [mdad] tmp_dir, or <state_dir>/mdad-tmp when it is empty.
std::string spoolDirOf(const config::Config& cfg);

// One message's deliveries: the recipients resolved (on the loop thread),
// each distinct user reached once, and one result per copy.
struct DeliveryPlan {
  struct Recipient {
    std::string address;
    std::optional<Outcome> settled;  // answered without a copy (unknown user, ...)
    std::vector<size_t> copies;      // indexes into users
  };
  std::vector<auth::User> users;  // one copy each
  std::vector<Recipient> recipients;
  // results[i]: what became of users[i]'s copy; written by the task that
  // makes that copy, read once all are done.
  std::vector<Outcome> results;
};

class Deliverer {
 public:
  // fs is the system-call layer under the mailboxes (tests inject errors).
  explicit Deliverer(DeliverySettings settings, store::Fs& fs = store::realFs());
  void setSettings(const DeliverySettings& s);
  DeliverySettings settings() const;

  // Resolves one more recipient of the message into plan (a user already
  // in the plan gets no second copy). Logs as deliverToRecipient() does.
  void plan(DeliveryPlan& plan, auth::Directory& directory, std::string_view address,
            const std::string& logId) const;
  // The answer per recipient, in order, once every copy's result is in.
  std::vector<Outcome> outcomes(const DeliveryPlan& plan, const std::string& logId) const;

  // Users already served in the current message: a user reached through
  // two recipients (or two aliases) gets one copy, and the second recipient
  // the same answer as the first.
  using Served = std::map<std::string, Outcome, std::less<>>;

  // The copy for one recipient address (a user or an alias). logId names
  // the session in log lines.
  Outcome deliverToRecipient(auth::Directory& directory, std::string_view address,
                             const store::MessageSource& msg, std::string_view sender,
                             const std::string& logId, Served& served);

  // One copy into one user's mailbox. Thread-safe.
  Outcome deliverToUser(const auth::User& user, const store::MessageSource& msg,
                        std::string_view sender, const std::string& logId);

  // Full scans of Maildirs for quota checks so far (tests).
  uint64_t quotaScans() const { return usage_.scans(); }

 private:
  struct Resolved {
    std::optional<Outcome> settled;
    std::vector<auth::User> users;
  };
  Resolved resolve(auth::Directory& directory, std::string_view address,
                   const std::string& logId) const;
  Outcome combineCopies(std::string_view address, const std::vector<Outcome>& copies,
                        const std::string& logId) const;
  // Delivered when there is room; generation is for usage_.added().
  Outcome checkQuota(const auth::User& user, uint64_t incoming, const std::string& logId,
                     std::optional<uint64_t>& generation);
  Status appendMbox(const auth::User& user, std::string_view sender, std::string_view prefix,
                    const store::MessageSource& msg, const DeliverySettings& settings);

  mutable std::mutex settingsMu_;
  DeliverySettings settings_;  // guarded by settingsMu_
  store::Fs& fs_;
  store::MaildirNameGenerator names_;
  store::MaildirUsageCache usage_;
  KeyedMutex mboxTurns_;
};

}  // namespace yubin::mdad
