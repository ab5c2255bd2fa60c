// Inbound policy of mtad (port 25): who may send to whom without
// authentication. Only local domains are accepted as recipients (no open
// relay), routing tricks are refused, unknown local users get 550 5.1.1 at
// RCPT time unless a catch-all is configured.
// Trust: judges untrusted envelope addresses; runs as yubin-mta.
// Standards: RFC 5321 §3.6 (relaying), §4.5.1 (postmaster), RFC 3463.
//
// SubmissionInPolicy is the policy of the submission socket, where msad
// hands over messages its authenticated users sent: any recipient (local
// ones still checked for existence), any sender (msad checked it).
#pragma once

#include <string>

#include "auth/directory.hpp"
#include "smtp/session.hpp"

namespace yubin::mtad {

class InboundPolicy : public smtp::Policy {
 public:
  InboundPolicy(auth::Directory& directory, std::string catchall)
      : directory_(directory), catchall_(std::move(catchall)) {}

  std::optional<smtp::Reply> checkSender(const smtp::Envelope& env,
                                         const mail::Address& from) override;
  std::optional<smtp::Reply> checkRecipient(const smtp::Envelope& env,
                                            const mail::Address& rcpt) override;

  // The address a recipient is queued under: <Postmaster> (any case)
  // becomes postmaster@<primary local domain>, the first one [global]
  // domains lists (RFC 5321 §4.5.1). postmaster@<local domain> without a
  // user or alias falls back to [global] postmaster (auth::Directory).
  std::string queuedAddress(const mail::Address& rcpt) const;
  void setCatchall(std::string catchall) { catchall_ = std::move(catchall); }
  bool isLocal(const mail::Address& rcpt) const { return directory_.isLocalDomain(rcpt.domain); }

 private:
  auth::Directory& directory_;
  std::string catchall_;
};

class SubmissionInPolicy : public smtp::Policy {
 public:
  explicit SubmissionInPolicy(InboundPolicy& inbound) : inbound_(inbound) {}
  std::optional<smtp::Reply> checkSender(const smtp::Envelope& env,
                                         const mail::Address& from) override;
  std::optional<smtp::Reply> checkRecipient(const smtp::Envelope& env,
                                            const mail::Address& rcpt) override;

 private:
  InboundPolicy& inbound_;
};

}  // namespace yubin::mtad
