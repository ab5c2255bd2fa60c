// The POP3 TRANSACTION and UPDATE states (RFC 1939 §5, §6) over one
// store::Folder: STAT, LIST, RETR, DELE, NOOP, RSET, TOP, UIDL, CAPA, QUIT.
// A pure state machine like LoginSession: fed bytes, queues replies; a
// RETR or TOP becomes a transfer that the glue pumps with produce() as the
// client drains its output, so a large message is never held in memory and
// later pipelined commands wait for it. DELE only marks; QUIT runs the
// UPDATE state (Folder::expunge of the marked messages); a session that
// ends any other way (idle timeout, connection lost, process killed)
// removes nothing.
// Trust: parses untrusted input from an authenticated user; runs in the
// mail process as mail_user, with that one user's folder.
// Standards: RFC 1939, RFC 2449 (CAPA, RESP-CODES, PIPELINING), RFC 3206.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "mrad/pop3/pop3.hpp"
#include "store/folder.hpp"

namespace yubin::mrad::pop3 {

struct MailSettings {
  Limits limits;
  std::string user;   // for the log
  std::string logId;  // session id for log lines (storage errors)
};

// What a session did, for the log line at its end.
struct MailStats {
  uint64_t retrieved = 0;
  uint64_t retrievedBytes = 0;
  uint64_t deleted = 0;  // removed at QUIT
  uint64_t tops = 0;
};

class MailSession {
 public:
  MailSession(store::Folder& folder, MailSettings s);
  // Queues the "+OK" that ends the AUTHORIZATION state, then runs the
  // commands pipelined behind the login command.
  void start(std::string_view pendingInput);
  void feed(std::string_view bytes);
  std::string takeOutput();
  bool hasOutput() const { return !out_.empty(); }

  // A RETR or TOP is being sent: call produce() whenever the client's
  // output is below the glue's low-water mark.
  bool transferring() const { return transfer_ != nullptr; }
  // Encodes about `budget` more bytes of the current message into the
  // output; at its end, the terminating dot, then the next commands.
  void produce(size_t budget);

  // QUIT was answered (or the session gave up): flush the output, close.
  bool closing() const { return closing_; }
  bool updated() const { return updated_; }  // QUIT ran the UPDATE state
  const MailStats& stats() const { return stats_; }

 private:
  struct Transfer {
    std::unique_ptr<store::MessageReader> reader;
    WireEncoder encoder;
    size_t index;
    bool full;  // RETR (not TOP): mark seen at the end
  };
  void run();
  void handle(const Command& c);
  void bad(const std::string& reply);
  // Message number argument -> index, or queues the -ERR and returns nullopt.
  std::optional<size_t> message(const std::string& arg);
  void beginTransfer(size_t index, std::optional<uint64_t> topLines);
  void quit();

  store::Folder& folder_;
  MailSettings settings_;
  LineReader lines_;
  std::string out_;
  std::vector<bool> deleted_;
  std::unique_ptr<Transfer> transfer_;
  std::string chunk_;
  MailStats stats_;
  unsigned bad_ = 0;
  bool closing_ = false;
  bool updated_ = false;
};

}  // namespace yubin::mrad::pop3
