// msad's submission policy; see policy.hpp.
#include "msad/policy.hpp"

#include "auth/address.hpp"
#include "base/log.hpp"

namespace yubin::msad {

// ---- RateLimiter ----

RateLimiter::Usage RateLimiter::usage(const std::string& user, Clock::time_point now) {
  Usage u;
  auto it = sent_.find(user);
  if (it == sent_.end()) return u;
  auto& q = it->second;
  while (!q.empty() && now - q.front().at >= settings_.window) q.pop_front();
  if (q.empty()) {
    sent_.erase(it);
    return u;
  }
  for (const Sent& s : q) {
    ++u.messages;
    u.recipients += s.recipients;
  }
  return u;
}

bool RateLimiter::allowMessage(const std::string& user, Clock::time_point now) {
  if (settings_.messagesPerHour == 0) return true;
  return usage(user, now).messages < settings_.messagesPerHour;
}

bool RateLimiter::allowRecipients(const std::string& user, uint64_t recipients,
                                  Clock::time_point now) {
  if (settings_.recipientsPerHour == 0) return true;
  return usage(user, now).recipients + recipients <= settings_.recipientsPerHour;
}

void RateLimiter::record(const std::string& user, uint64_t recipients, Clock::time_point now) {
  if (settings_.messagesPerHour == 0 && settings_.recipientsPerHour == 0) return;
  (void)usage(user, now);  // drops what has expired
  sent_[user].push_back(Sent{now, recipients});
}

// ---- SubmissionPolicy ----

bool SubmissionPolicy::owns(const std::string& user, const mail::Address& from) {
  if (from.isPostmaster()) return false;
  auto fromKey = auth::addressKey(from.local, from.domain);
  auto userKey = auth::addressKey(user);
  if (userKey && fromKey == *userKey) return true;
  // An address that reaches this user and no one else.
  auth::Resolution r = directory_.resolve(fromKey);
  return r.ok() && r.remote.empty() && r.users.size() == 1 &&
         auth::addressKey(r.users.front().address) == userKey;
}

std::optional<smtp::Reply> SubmissionPolicy::checkSender(const smtp::Envelope& env,
                                                         const mail::Address& from) {
  if (env.authUser.empty()) return smtp::reply(smtp::ReplyId::AuthRequired);
  if (!rate_.allowMessage(env.authUser, RateLimiter::Clock::now())) {
    YLOG_NOTICE("sender refused: message rate limit client=%s user=%s", env.clientAddress.c_str(),
                env.authUser.c_str());
    return smtp::reply(smtp::ReplyId::RateLimited);
  }
  // The null sender cannot impersonate anyone (RFC 6409 §6.1 leaves it to us).
  if (env.nullSender) return std::nullopt;
  if (!owns(env.authUser, from)) {
    YLOG_NOTICE("sender refused: not owned client=%s user=%s from=<%s>", env.clientAddress.c_str(),
                env.authUser.c_str(), from.normalized().c_str());
    return smtp::reply(smtp::ReplyId::SenderNotOwned);
  }
  return std::nullopt;
}

std::optional<smtp::Reply> SubmissionPolicy::checkRecipient(const smtp::Envelope& env,
                                                            const mail::Address& rcpt) {
  if (!rcpt.isPostmaster() && mail::looksLikeRelayTrick(rcpt))
    return smtp::reply(smtp::ReplyId::RoutingRejected);
  if (!rate_.allowRecipients(env.authUser, env.recipients.size() + 1, RateLimiter::Clock::now())) {
    YLOG_NOTICE("recipient refused: recipient rate limit client=%s user=%s",
                env.clientAddress.c_str(), env.authUser.c_str());
    return smtp::reply(smtp::ReplyId::RateLimited);
  }
  if (rcpt.isPostmaster() || !directory_.isLocalDomain(rcpt.domain)) return std::nullopt;
  std::string address = rcpt.normalized();
  auth::Resolution r = directory_.resolve(address);
  switch (r.status) {
    case auth::Resolution::Status::Ok:
      return std::nullopt;
    case auth::Resolution::Status::UnknownUser:
      YLOG_INFO("recipient refused: unknown user client=%s user=%s rcpt=%s",
                env.clientAddress.c_str(), env.authUser.c_str(), address.c_str());
      return smtp::reply(smtp::ReplyId::UserUnknown);
    case auth::Resolution::Status::BadAddress:
      return smtp::reply(smtp::ReplyId::BadRecipient);
    case auth::Resolution::Status::AliasError:
    case auth::Resolution::Status::TempFail:
      YLOG_WARN("recipient deferred: %s rcpt=%s", r.error.c_str(), address.c_str());
      return smtp::reply(smtp::ReplyId::LocalError);
  }
  return smtp::reply(smtp::ReplyId::LocalError);
}

}  // namespace yubin::msad
