// One client connection in the login process: the bufferevent (plain,
// STLS / STARTTLS-upgraded or implicit TLS), the login state machine of its
// listener's protocol (pop3::LoginSession for the AUTHORIZATION state,
// imap::LoginSession for the not-authenticated state, both behind one small
// adapter), the password check off the loop with the shared throttle, and,
// once the user is authenticated, the hand-over to the mail process followed
// by a byte proxy between the client and the mail process's socket for the
// rest of a TLS session (TLS stays here). A plaintext session's socket is
// handed over itself (handoff.hpp, "direct"); the connection then only
// waits for the session's end, so it still counts against the limits.
// Trust: untrusted pre-authentication input, as [mrad] user. Auth failures
// are logged with the client IP (for fail2ban), never with the password.
// Standards: RFC 1939, RFC 2595, RFC 5034, RFC 3501, RFC 9051, RFC 8314.
#pragma once

#include <event2/buffer.h>

#include <optional>
#include <string>

#include "event/event.hpp"
#include "mrad/handoff.hpp"
#include "mrad/mrad.hpp"

namespace yubin::mrad {

// The protocol's login state machine as the connection drives it
// (login_connection.cpp adapts pop3::LoginSession and imap::LoginSession).
class LoginProtocol;

class LoginConnection {
 public:
  LoginConnection(Mrad& d, const LoginSettings& s, const event::Peer& peer, std::string id,
                  bool implicitTls, Protocol protocol = Protocol::Pop3);
  ~LoginConnection();
  LoginConnection(const LoginConnection&) = delete;
  LoginConnection& operator=(const LoginConnection&) = delete;

  // Takes the socket; a refusal (too many connections) is sent, then the
  // connection closes.
  Status start(UniqueFd fd, const std::optional<std::string>& refusal);
  // Graceful stop: a session still logging in is told and closed; a
  // proxied one goes on until it ends.
  void shutdown();
  const event::Peer& peer() const { return peer_; }
  bool proxying() const { return proxying_; }

 private:
  static void onRead(bufferevent*, void* self);
  static void onWrite(bufferevent*, void* self);
  static void onEvent(bufferevent*, short what, void* self);
  static void onLocalRead(bufferevent*, void* self);
  static void onLocalWrite(bufferevent*, void* self);
  static void onLocalEvent(bufferevent*, short what, void* self);

  void setCallbacks();
  void startSession();
  void refreshMechanisms();
  void step();  // acts on the session's event
  void flush();
  void checkPassword();
  void handOver();
  // Closes once the output has left (the TLS layer's too) or after
  // kCloseLinger, whichever comes first.
  void closeAfterFlush();
  size_t pendingOutput() const;  // answers not yet handed to the kernel
  static void onLowerDrained(evbuffer*, const evbuffer_cb_info* info, void* self);
  void done(const char* reason);

  Mrad& d_;
  LoginSettings settings_;
  event::Peer peer_;
  std::string id_;
  bool implicitTls_;
  Protocol protocol_;
  bool tlsActive_ = false;
  std::string tlsExporter_;
  event::Bufferevent bev_;
  std::unique_ptr<LoginProtocol> session_;
  event::Timer idle_;
  event::Timer delay_;
  event::Timer linger_;  // closeAfterFlush's bound
  // Under a STARTTLS filter: watches the socket buffer below the TLS layer.
  evbuffer_cb_entry* lowerDrained_ = nullptr;
  // done() never destroys the connection inside a callback: it marks it
  // dead and this timer, on the next loop turn, hands it to Mrad::closed.
  event::Timer reaper_;
  bool dead_ = false;
  std::optional<sasl::PasswordChecker::Ticket> ticket_;
  std::string user_;  // once authenticated, for the log
  // After the hand-over: the session's link to the mail process, which
  // carries the proxied bytes of a TLS session; a plaintext session is
  // direct (the mail process has the client's socket, bev_ is gone) and
  // the link only tells when the session ends.
  event::Bufferevent local_;
  bool proxying_ = false;
  bool direct_ = false;
  bool handOverWaiting_ = false;  // direct: the client's output drains first
  bool closing_ = false;
};

}  // namespace yubin::mrad
