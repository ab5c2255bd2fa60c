// Delivery outcomes, their replies and exit statuses; see outcome.hpp.
#include "mdad/outcome.hpp"

#include <cerrno>

#include "store/message_source.hpp"

namespace yubin::mdad {

std::string_view outcomeName(Outcome o) {
  switch (o) {
    case Outcome::Delivered:
      return "delivered";
    case Outcome::UnknownUser:
      return "unknown-user";
    case Outcome::NotLocal:
      return "not-local";
    case Outcome::Loop:
      return "loop";
    case Outcome::BadMessage:
      return "bad-message";
    case Outcome::TooBig:
      return "too-big";
    case Outcome::OverQuota:
      return "over-quota";
    case Outcome::NoSpace:
      return "no-space";
    case Outcome::MailboxBusy:
      return "mailbox-busy";
    case Outcome::TempFail:
      return "tempfail";
    case Outcome::Error:
      return "error";
  }
  return "?";
}

bool isTemporary(Outcome o, bool quotaTemporary) {
  switch (o) {
    case Outcome::OverQuota:
      return quotaTemporary;
    case Outcome::NoSpace:
    case Outcome::MailboxBusy:
    case Outcome::TempFail:
    case Outcome::Error:
      return true;
    default:
      return false;
  }
}

smtp::Reply replyFor(Outcome o, bool quotaTemporary) {
  using smtp::ReplyId;
  switch (o) {
    case Outcome::Delivered:
      return smtp::reply(ReplyId::Delivered);
    case Outcome::UnknownUser:
    case Outcome::NotLocal:
      return smtp::reply(ReplyId::UserUnknown);
    // The smtp catalogue has no entries for these three yet; they are
    // mdad's own and live here, in this one table.
    case Outcome::Loop:
      return {554, "5.4.6", "Error: mail loop, Delivered-To already names this recipient"};
    case Outcome::BadMessage:
      return {554, "5.6.0", "Error: malformed message (empty, or NUL byte in the header)"};
    case Outcome::MailboxBusy:
      return {451, "4.2.0", "Error: mailbox locked by another process, try again later"};
    case Outcome::TooBig:
      return smtp::reply(ReplyId::MessageTooBig);
    case Outcome::OverQuota:
      return smtp::reply(quotaTemporary ? ReplyId::MailboxFullTemporary : ReplyId::MailboxFull);
    case Outcome::NoSpace:
      return smtp::reply(ReplyId::InsufficientStorage);
    case Outcome::TempFail:
    case Outcome::Error:
      return smtp::reply(ReplyId::LocalError);
  }
  return smtp::reply(ReplyId::LocalError);
}

int exitCodeFor(Outcome o, bool quotaTemporary) {
  switch (o) {
    case Outcome::Delivered:
      return kExOk;
    case Outcome::UnknownUser:
    case Outcome::NotLocal:
      return kExNoUser;
    case Outcome::Loop:
    case Outcome::BadMessage:
    case Outcome::TooBig:
      return kExDataErr;
    case Outcome::OverQuota:
      return quotaTemporary ? kExTempFail : kExCantCreat;
    case Outcome::NoSpace:
    case Outcome::MailboxBusy:
    case Outcome::TempFail:
    case Outcome::Error:
      return kExTempFail;
  }
  return kExTempFail;
}

Outcome outcomeOfError(const Error& e) {
  if (e.errnum == ETIMEDOUT) return Outcome::MailboxBusy;
  switch (store::classifyDeliveryError(e)) {
    case store::DeliveryFailure::NoSpace:
      return Outcome::NoSpace;
    case store::DeliveryFailure::OverQuota:
      return Outcome::OverQuota;
    case store::DeliveryFailure::Temporary:
      break;
  }
  return Outcome::Error;
}

Outcome combine(Outcome sofar, Outcome next, bool quotaTemporary) {
  auto rank = [&](Outcome o) {
    if (o == Outcome::Delivered) return 0;
    return isTemporary(o, quotaTemporary) ? 2 : 1;
  };
  return rank(next) > rank(sofar) ? next : sofar;
}

}  // namespace yubin::mdad
