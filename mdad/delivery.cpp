// The shared delivery path; see delivery.hpp.
#include "mdad/delivery.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <ctime>

#include "base/fs.hpp"
#include "base/log.hpp"
#include "config/config.hpp"

namespace yubin::mdad {
namespace {

// How much of the header block checkMessage reads (deliveredToListed reads
// as much): a header-less binary blob must not make it read the whole file.
constexpr uint64_t kHeaderScanLimit = 1024 * 1024;

const char* formatOf(const auth::User& u) {
  return u.format == auth::MailboxFormat::Mbox ? "mbox" : "maildir";
}

}  // namespace

DeliverySettings DeliverySettings::fromConfig(const config::Config& cfg) {
  DeliverySettings s;
  s.quotaTemporary = cfg.boolean("mdad", "quota_temporary");
  s.lockTimeout =
      std::chrono::duration_cast<std::chrono::milliseconds>(cfg.duration("mdad", "lock_timeout"));
  return s;
}

std::string spoolDirOf(const config::Config& cfg) {
  const std::string& d = cfg.str("mdad", "tmp_dir");
  if (!d.empty()) return d;
  return cfg.str("global", "state_dir") + "/mdad-tmp";
}

std::string tracePrefix(std::string_view sender, std::string_view recipient) {
  std::string p = "Return-Path: <";
  p += sender;
  p += ">\r\nDelivered-To: ";
  p += recipient;
  p += "\r\n";
  return p;
}

std::optional<Outcome> resolutionOutcome(const auth::Resolution& r) {
  switch (r.status) {
    case auth::Resolution::Status::Ok:
      if (!r.users.empty()) return std::nullopt;
      return r.remote.empty() ? Outcome::UnknownUser : Outcome::NotLocal;
    case auth::Resolution::Status::BadAddress:
    case auth::Resolution::Status::UnknownUser:
      return Outcome::UnknownUser;
    case auth::Resolution::Status::AliasError:
    case auth::Resolution::Status::TempFail:
      return Outcome::TempFail;
  }
  return Outcome::TempFail;
}

std::optional<Outcome> checkMessage(const store::MessageSource& msg) {
  if (msg.size() == 0) return Outcome::BadMessage;
  // The header block ends at the first empty line ("\n\n" or "\n\r\n");
  // `atLineStart` and `crAtLineStart` track enough to see it across pieces.
  bool atLineStart = true, crAtLineStart = false, nul = false, done = false;
  uint64_t seen = 0;
  (void)msg.forEachChunk([&](std::string_view c) -> Status {
    for (char ch : c) {
      if (ch == '\0') {
        nul = true;
        break;
      }
      if (ch == '\n') {
        if (atLineStart || crAtLineStart) {
          done = true;
          break;
        }
        atLineStart = true;
        crAtLineStart = false;
      } else {
        crAtLineStart = atLineStart && ch == '\r' && !crAtLineStart;
        atLineStart = false;
      }
    }
    seen += c.size();
    if (nul || done || seen >= kHeaderScanLimit) return Error{"scan over", 0};
    return {};
  });
  if (nul) return Outcome::BadMessage;
  return std::nullopt;
}

Deliverer::Deliverer(DeliverySettings settings, store::Fs& fs) : settings_(settings), fs_(fs) {}

void Deliverer::setSettings(const DeliverySettings& s) {
  std::lock_guard lock(settingsMu_);
  settings_ = s;
}

DeliverySettings Deliverer::settings() const {
  std::lock_guard lock(settingsMu_);
  return settings_;
}

Deliverer::Resolved Deliverer::resolve(auth::Directory& directory, std::string_view address,
                                       const std::string& logId) const {
  auth::Resolution r = directory.resolve(address);
  if (auto o = resolutionOutcome(r)) {
    if (*o == Outcome::NotLocal) {
      YLOG_NOTICE("not delivered: no local user, mdad does not forward session=%s rcpt=%.*s",
                  logId.c_str(), int(address.size()), address.data());
    } else if (*o != Outcome::UnknownUser) {
      YLOG_WARN("not delivered: %s session=%s rcpt=%.*s", r.error.c_str(), logId.c_str(),
                int(address.size()), address.data());
    }
    return {*o, {}};
  }
  if (!r.remote.empty())
    YLOG_NOTICE(
        "remote alias targets ignored, mdad does not forward session=%s rcpt=%.*s "
        "remote=%zu",
        logId.c_str(), int(address.size()), address.data(), r.remote.size());
  return {std::nullopt, std::move(r.users)};
}

Outcome Deliverer::combineCopies(std::string_view address, const std::vector<Outcome>& copies,
                                 const std::string& logId) const {
  const bool quotaTemporary = settings().quotaTemporary;
  std::optional<Outcome> result;
  bool anyDelivered = false, anyFailed = false;
  for (Outcome o : copies) {
    (o == Outcome::Delivered ? anyDelivered : anyFailed) = true;
    result = result ? combine(*result, o, quotaTemporary) : o;
  }
  if (!result) return Outcome::UnknownUser;  // resolve() never gives an empty list
  if (anyDelivered && anyFailed)
    YLOG_WARN("partial delivery: some users of the alias got it session=%s rcpt=%.*s reply=%s",
              logId.c_str(), int(address.size()), address.data(),
              std::string(outcomeName(*result)).c_str());
  return *result;
}

Outcome Deliverer::deliverToRecipient(auth::Directory& directory, std::string_view address,
                                      const store::MessageSource& msg, std::string_view sender,
                                      const std::string& logId, Served& served) {
  Resolved r = resolve(directory, address, logId);
  if (r.settled) return *r.settled;
  std::vector<Outcome> copies;
  for (const auth::User& u : r.users) {
    Outcome o;
    if (auto it = served.find(u.address); it != served.end()) {
      o = it->second;
    } else {
      o = deliverToUser(u, msg, sender, logId);
      served.emplace(u.address, o);
    }
    copies.push_back(o);
  }
  return combineCopies(address, copies, logId);
}

void Deliverer::plan(DeliveryPlan& plan, auth::Directory& directory, std::string_view address,
                     const std::string& logId) const {
  DeliveryPlan::Recipient rcpt;
  rcpt.address = std::string(address);
  Resolved r = resolve(directory, address, logId);
  rcpt.settled = r.settled;
  for (auth::User& u : r.users) {
    size_t i = 0;
    while (i < plan.users.size() && plan.users[i].address != u.address) ++i;
    if (i == plan.users.size()) {
      plan.users.push_back(std::move(u));
      plan.results.push_back(Outcome::Error);
    }
    rcpt.copies.push_back(i);
  }
  plan.recipients.push_back(std::move(rcpt));
}

std::vector<Outcome> Deliverer::outcomes(const DeliveryPlan& plan, const std::string& logId) const {
  std::vector<Outcome> out;
  out.reserve(plan.recipients.size());
  for (const DeliveryPlan::Recipient& r : plan.recipients) {
    if (r.settled) {
      out.push_back(*r.settled);
      continue;
    }
    std::vector<Outcome> copies;
    for (size_t i : r.copies) copies.push_back(plan.results.at(i));
    out.push_back(combineCopies(r.address, copies, logId));
  }
  return out;
}

Outcome Deliverer::checkQuota(const auth::User& user, uint64_t incoming, const std::string& logId,
                              std::optional<uint64_t>& generation) {
  if (user.quota.bytes == 0 && user.quota.messages == 0) return Outcome::Delivered;
  store::Usage usage;
  if (user.format == auth::MailboxFormat::Maildir) {
    auto u = usage_.usage(user.mailbox);
    if (!u) {
      YLOG_WARN("quota: cannot measure the mailbox session=%s user=%s error=\"%s\"", logId.c_str(),
                user.address.c_str(), u.error().message.c_str());
      return outcomeOfError(u.error());
    }
    usage = u->usage;
    generation = u->generation;
  } else if (user.quota.messages != 0) {
    // Counting messages reads the whole mbox; only done when a message
    // limit asks for it.
    auto u = store::mboxUsage(user.mailbox);
    if (!u) {
      YLOG_WARN("quota: cannot measure the mailbox session=%s user=%s error=\"%s\"", logId.c_str(),
                user.address.c_str(), u.error().message.c_str());
      return outcomeOfError(u.error());
    }
    usage = *u;
  } else {
    struct stat st;
    if (::stat(user.mailbox.c_str(), &st) == 0) {
      usage.bytes = static_cast<uint64_t>(st.st_size);
    } else if (errno != ENOENT) {
      Error e = errnoError("stat " + user.mailbox);
      YLOG_WARN("quota: cannot measure the mailbox session=%s user=%s error=\"%s\"", logId.c_str(),
                user.address.c_str(), e.message.c_str());
      return outcomeOfError(e);
    }
  }
  if (store::wouldExceed(usage, user.quota.bytes, user.quota.messages, incoming)) {
    YLOG_INFO(
        "over quota session=%s user=%s used_bytes=%llu used_messages=%llu size=%llu "
        "quota_bytes=%llu quota_messages=%llu",
        logId.c_str(), user.address.c_str(), static_cast<unsigned long long>(usage.bytes),
        static_cast<unsigned long long>(usage.messages), static_cast<unsigned long long>(incoming),
        static_cast<unsigned long long>(user.quota.bytes),
        static_cast<unsigned long long>(user.quota.messages));
    return Outcome::OverQuota;
  }
  return Outcome::Delivered;
}

Status Deliverer::appendMbox(const auth::User& user, std::string_view sender,
                             std::string_view prefix, const store::MessageSource& msg,
                             const DeliverySettings& settings) {
  store::MboxLockSettings lock;
  lock.timeout = settings.lockTimeout;
  lock.dotLock = settings.dotLock;
  const int64_t now = static_cast<int64_t>(::time(nullptr));
  store::MboxAppendOptions opts;
  opts.hideImapState = true;  // the sender sets no flags, keywords or UIDs
  Status st = store::appendToMbox(user.mailbox, sender, now, prefix, msg, lock, opts, fs_);
  if (!st && st.error().errnum == ENOENT) {
    // The folder of a new mbox (<mail_root>/<domain>/) may not exist yet.
    if (auto made = makeDirs(dirName(user.mailbox), 0700); !made) return made;
    st = store::appendToMbox(user.mailbox, sender, now, prefix, msg, lock, opts, fs_);
  }
  return st;
}

Outcome Deliverer::deliverToUser(const auth::User& user, const store::MessageSource& msg,
                                 std::string_view sender, const std::string& logId) {
  if (store::deliveredToListed(msg, user.address)) {
    YLOG_NOTICE("mail loop: Delivered-To already names the user session=%s user=%s", logId.c_str(),
                user.address.c_str());
    return Outcome::Loop;
  }
  const std::string prefix = tracePrefix(sender, user.address);
  const DeliverySettings settings = this->settings();
  const bool mbox = user.format == auth::MailboxFormat::Mbox;
  // Copies into one mbox take turns (the file lock would make them wait
  // anyway, by polling); held over the quota check so that it counts what
  // the copy before this one added.
  std::optional<KeyedMutex::Guard> turn;
  if (mbox) turn.emplace(mboxTurns_.lock(user.mailbox));
  std::optional<uint64_t> generation;
  if (Outcome q = checkQuota(user, prefix.size() + msg.size(), logId, generation);
      q != Outcome::Delivered)
    return q;

  Status st;
  std::string where = user.mailbox;
  if (!mbox) {
    store::MaildirDeliverer d(fs_, names_);
    auto r = d.deliver(user.mailbox, "", prefix, msg);
    if (r) {
      where = r->path;
      if (generation) usage_.added(user.mailbox, *generation, r->size);
    } else {
      st = r.error();
    }
  } else {
    st = appendMbox(user, sender, prefix, msg, settings);
  }
  turn.reset();
  if (!st) {
    Outcome o = outcomeOfError(st.error());
    YLOG_WARN("delivery failed session=%s user=%s format=%s mailbox=%s outcome=%s error=\"%s\"",
              logId.c_str(), user.address.c_str(), formatOf(user), user.mailbox.c_str(),
              std::string(outcomeName(o)).c_str(), st.error().message.c_str());
    return o;
  }
  YLOG_INFO("delivered session=%s user=%s from=<%.*s> format=%s size=%llu path=%s", logId.c_str(),
            user.address.c_str(), int(sender.size()), sender.data(), formatOf(user),
            static_cast<unsigned long long>(msg.size()), where.c_str());
  return Outcome::Delivered;
}

}  // namespace yubin::mdad
