// One outgoing SMTP connection of mtad: the SmtpClient state machine
// (smtp_client.hpp) on a libevent bufferevent. Owns the TCP connect, the
// STARTTLS handshake (a TLS filter over the plain bufferevent, so the bytes
// received in clear after the server's 220 are thrown away), implicit TLS,
// the RFC 5321 §4.5.3.2 timers and streaming the message from the queue
// file with dot-stuffing (never loading it whole).
//
// Callbacks run from the event loop, never inside open() or send(); the
// owner must not destroy a connection from inside one of its callbacks
// (keep it until the loop comes back, as Qmgr does with LMTP clients).
//
// Trust: talks to any host on the Internet (untrusted); runs in mtad as
// yubin-mta. Standards: RFC 5321, RFC 3207 (STARTTLS), RFC 8314 (implicit
// TLS for a submission relay), RFC 6125 (name check, via tls::prepareClient).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "event/event.hpp"
#include "mtad/smtp_client.hpp"
#include "queue/queue.hpp"
#include "smtp/data.hpp"

namespace yubin::mtad {

struct SmtpEndpoint {
  std::string host;  // the name for SNI and the certificate check (MX host); logs
  std::string ip;    // numeric address to connect to
  uint16_t port = 25;
  std::string text() const;  // "mx1.example.net[192.0.2.1]:25"
};

struct SmtpConnectionSettings {
  SmtpClientSettings client;
  // TLS: a client context (verifying or not); null = STARTTLS is not tried.
  SSL_CTX* tlsContext = nullptr;
  bool verify = false;  // the context verifies: report why a handshake failed
  std::chrono::milliseconds connectTimeout{std::chrono::seconds(30)};
  std::chrono::milliseconds idleTimeout{std::chrono::seconds(10)};
  size_t outputHighWater = 256 * 1024;
  size_t readChunk = 64 * 1024;
};

class SmtpConnection {
 public:
  using OpenDone = std::function<void(std::optional<SetupFailure>)>;
  using SendDone = std::function<void(TransactionResult)>;

  SmtpConnection(event_base* base, SmtpEndpoint endpoint, SmtpConnectionSettings settings);
  ~SmtpConnection();
  SmtpConnection(const SmtpConnection&) = delete;
  SmtpConnection& operator=(const SmtpConnection&) = delete;

  // Connects, reads the greeting, EHLO, STARTTLS, AUTH. done(nullopt) once
  // ready for a transaction, else done(why).
  void open(OpenDone done);
  // One transaction. Requires ready(). `file` must outlive it.
  void send(const SmtpMessage& message, const queue::QueueFile* file, std::string logId,
            SendDone done);
  // Greeted, idle, no callback pending.
  bool ready() const;
  bool closed() const { return client_.state() == SmtpClient::State::Closed && !bev_; }
  // QUIT (when idle) and close. A running transaction fails.
  void close();
  // Called (from the loop) when an idle connection goes away (the server
  // closed it, or the idle timeout sent QUIT).
  void setOnIdleClose(std::function<void()> fn) { onIdleClose_ = std::move(fn); }

  const SmtpEndpoint& endpoint() const { return endpoint_; }
  const SmtpClient& client() const { return client_; }
  // "TLSv1.3 TLS_AES_256_GCM_SHA384 256/256", or "" in clear.
  const std::string& tlsSession() const { return tlsSession_; }

 private:
  static void onRead(bufferevent* bev, void* self);
  static void onWrite(bufferevent* bev, void* self);
  static void onEvent(bufferevent* bev, short what, void* self);

  void connected();
  void readInput();
  void pump();
  Status startTls();
  void streamContent();
  void onTimeout();
  void teardown();
  void lost(const smtp::ClientReply& why, bool tls);

  event_base* base_;
  SmtpEndpoint endpoint_;
  SmtpConnectionSettings settings_;
  SmtpClient client_;
  event::Bufferevent bev_;
  event::Timer timer_;
  event::Timer notify_;  // runs the pending callbacks from the loop
  SmtpClient::State armedFor_ = SmtpClient::State::Closed;
  bool connecting_ = false;
  bool handshaking_ = false;
  std::string tlsSession_;

  OpenDone openDone_;
  std::optional<std::optional<SetupFailure>> openResult_;
  SendDone sendDone_;
  std::optional<TransactionResult> sendResult_;
  std::function<void()> onIdleClose_;
  bool idleClosePending_ = false;

  const queue::QueueFile* file_ = nullptr;
  std::string logId_;
  std::optional<queue::QueueFile::Reader> reader_;
  smtp::DotEncoder dot_;
  bool streaming_ = false;
  bool contentDone_ = false;
};

}  // namespace yubin::mtad
