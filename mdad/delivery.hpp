// The delivery path both faces of mdad share (the LMTP server and the
// delivery command): resolve a recipient through the Directory, then for
// each local user it reaches, in order: prepend "Return-Path: <sender>" and
// "Delivered-To: <user>", refuse a mail loop (Delivered-To already names
// the user), check the quota, and write the copy into the user's Maildir
// (tmp -> new, file and folder fsync'ed) or mbox (locked append, fsync'ed).
// An Outcome comes back only once the copy is durable or has failed.
// Deliveries are synchronous file I/O; the mbox lock wait is bounded by
// [mdad] lock_timeout.
// Trust: the message bytes and the envelope addresses are untrusted; the
// user database is the admin's. Runs as [mdad] user, the mailboxes' owner.
// Standards: RFC 5321 §4.4 (Return-Path), RFC 9228 (Delivered-To), RFC 4155
// (mbox), maildir(5).
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "auth/directory.hpp"
#include "mdad/outcome.hpp"
#include "store/fs_ops.hpp"
#include "store/maildir.hpp"
#include "store/mbox.hpp"
#include "store/message_source.hpp"

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

class Deliverer {
 public:
  // fs is the system-call layer under the mailboxes (tests inject errors).
  explicit Deliverer(DeliverySettings settings, store::Fs& fs = store::realFs());
  void setSettings(const DeliverySettings& s) { settings_ = s; }
  const DeliverySettings& settings() const { return settings_; }

  // Users already served in the current message: a user reached through
  // two recipients (or two aliases) gets one copy, and the second recipient
  // the same answer as the first.
  using Served = std::map<std::string, Outcome, std::less<>>;

  // The copy for one recipient address (a user or an alias). logId names
  // the session in log lines.
  Outcome deliverToRecipient(auth::Directory& directory, std::string_view address,
                             const store::MessageSource& msg, std::string_view sender,
                             const std::string& logId, Served& served);

  // One copy into one user's mailbox.
  Outcome deliverToUser(const auth::User& user, const store::MessageSource& msg,
                        std::string_view sender, const std::string& logId);

 private:
  Outcome checkQuota(const auth::User& user, uint64_t incoming, const std::string& logId);
  Status appendMbox(const auth::User& user, std::string_view sender, std::string_view prefix,
                    const store::MessageSource& msg);

  DeliverySettings settings_;
  store::Fs& fs_;
  store::MaildirNameGenerator names_;
};

}  // namespace yubin::mdad
