// Inbound policy of mtad (port 25): who may send to whom without
// authentication. Only local domains are accepted as recipients (no open
// relay), routing tricks are refused, unknown local users get 550 5.1.1 at
// RCPT time unless a catch-all is configured.
// Trust: judges untrusted envelope addresses; runs as yubin-mta.
// Standards: RFC 5321 §3.6 (relaying), §4.5.1 (postmaster), RFC 3463.
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

  // The address a recipient is queued under: <Postmaster> becomes
  // postmaster@<first local domain> (RFC 5321 §4.5.1).
  std::string queuedAddress(const mail::Address& rcpt) const;
  void setCatchall(std::string catchall) { catchall_ = std::move(catchall); }

 private:
  auth::Directory& directory_;
  std::string catchall_;
};

}  // namespace yubin::mtad
