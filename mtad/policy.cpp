// Inbound policy of mtad; see policy.hpp.
#include "mtad/policy.hpp"

#include "base/log.hpp"

namespace yubin::mtad {

std::optional<smtp::Reply> InboundPolicy::checkSender(const smtp::Envelope&, const mail::Address&) {
  // Any syntactically valid sender (the parser refused the rest): senders
  // are not authenticated on port 25; SPF/DMARC are not implemented.
  return std::nullopt;
}

std::string InboundPolicy::queuedAddress(const mail::Address& rcpt) const {
  if (rcpt.isPostmaster()) {
    const std::string& primary = directory_.domains().primary();
    return "postmaster@" + (primary.empty() ? std::string("localhost") : primary);
  }
  return rcpt.normalized();
}

std::optional<smtp::Reply> InboundPolicy::checkRecipient(const smtp::Envelope& env,
                                                         const mail::Address& rcpt) {
  if (!rcpt.isPostmaster()) {
    if (!directory_.isLocalDomain(rcpt.domain)) return smtp::reply(smtp::ReplyId::RelayDenied);
    if (mail::looksLikeRelayTrick(rcpt)) return smtp::reply(smtp::ReplyId::RoutingRejected);
  }
  std::string address = queuedAddress(rcpt);
  auth::Resolution r = directory_.resolve(address);
  switch (r.status) {
    case auth::Resolution::Status::Ok:
      return std::nullopt;
    case auth::Resolution::Status::UnknownUser:
      if (!catchall_.empty()) return std::nullopt;
      YLOG_INFO("recipient refused: unknown user client=%s rcpt=%s", env.clientAddress.c_str(),
                address.c_str());
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

std::optional<smtp::Reply> SubmissionInPolicy::checkSender(const smtp::Envelope&,
                                                           const mail::Address&) {
  return std::nullopt;  // msad checked that the user owns it
}

std::optional<smtp::Reply> SubmissionInPolicy::checkRecipient(const smtp::Envelope& env,
                                                              const mail::Address& rcpt) {
  if (!rcpt.isPostmaster() && mail::looksLikeRelayTrick(rcpt))
    return smtp::reply(smtp::ReplyId::RoutingRejected);
  if (!rcpt.isPostmaster() && !inbound_.isLocal(rcpt)) return std::nullopt;  // relay
  return inbound_.checkRecipient(env, rcpt);
}

}  // namespace yubin::mtad
