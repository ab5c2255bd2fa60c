// One submission connection of msad: the SMTP engine in submission mode on
// smtp::ServerConnection (STARTTLS on port 587, implicit TLS on 465), the
// SMTP AUTH glue (a sasl::Exchange per attempt, the login throttle, the
// off-loop password check, the auth log lines) and the message half: the
// content goes through the mail::HeaderFixer into a Handoff to mtad, and the
// client's end-of-data reply is mtad's.
// Trust: handles untrusted network input, and passwords (never logged);
// runs as yubin-msa.
// Standards: RFC 6409 (submission), RFC 4954 (AUTH), RFC 3207, RFC 8314,
// RFC 9266 (tls-exporter for SCRAM-SHA-256-PLUS), RFC 3848 (ESMTPSA).
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "event/event.hpp"
#include "msad/handoff.hpp"
#include "mail/header_fixer.hpp"
#include "sasl/password_checker.hpp"
#include "sasl/sasl.hpp"
#include "smtp/server_connection.hpp"

namespace yubin::msad {

class Msad;

class Connection : public smtp::ServerConnection {
 public:
  Connection(Msad& server, UniqueFd fd, const event::Peer& peer, smtp::Settings settings,
             bool implicitTls);
  ~Connection() override;

  const event::Peer& peer() const { return peer_; }
  bool implicitTls() const { return implicitTls_; }

  // smtp::Io, message half
  void messageBegin(const smtp::Envelope& env) override;
  void messageData(std::string_view bytes) override;
  void messageEnd() override;
  void messageAbort() override;
  // smtp::Io, AUTH
  std::vector<std::string> authMechanisms(const smtp::Envelope& env) override;
  void authStart(std::string_view mechanism, std::optional<std::string> initial) override;
  void authResponse(std::string response) override;
  void authAbort() override;

 private:
  tls::ServerContext* tlsContext() override;
  void finished() override;
  sasl::Options saslOptions(const smtp::Envelope& env);
  void step(sasl::Step s);
  void authFailure(const sasl::Step& s);
  void cancelAuth();
  std::string receivedHeader(const smtp::Envelope& env) const;
  void onHandoffNotify();

  Msad& server_;
  event::Peer peer_;
  bool implicitTls_;
  // AUTH
  std::unique_ptr<sasl::Exchange> exchange_;
  std::optional<sasl::PasswordChecker::Ticket> ticket_;
  event::Timer authDelay_;
  std::optional<smtp::Reply> delayedFailure_;
  std::string attemptUser_;  // the user named in the current attempt
  std::string pendingUser_;  // SCRAM: authenticated, waiting for the empty response
  bool awaitingFinalAck_ = false;
  std::optional<std::string> exporter_;  // computed once TLS is up
  // The message
  std::unique_ptr<Handoff> handoff_;
  std::unique_ptr<mail::HeaderFixer> fixer_;
  std::optional<smtp::Reply> handoffResult_;  // failure before the end, or the final reply
  event::Timer handoffNotify_;
  bool waitingForHandoff_ = false;
  size_t recipients_ = 0;
};

}  // namespace yubin::msad
