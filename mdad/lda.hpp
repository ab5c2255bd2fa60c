// The delivery command: `mdad -d ADDRESS [-f SENDER] [-a ORIGINAL] [-c PATH]
// < message`, for mail transfer agents that run a program per local
// delivery (Postfix's mailbox_command, fetchmail's mda, procmail-style
// setups). Reads one message from standard input (LF or CRLF line ends),
// delivers it through the same path as LMTP (delivery.hpp) and exits with a
// sysexits.h status (outcome.hpp). In this mode -f is the envelope sender,
// as with the delivery commands of Postfix and Dovecot.
//
// Trust: the message is untrusted; the arguments come from the calling MTA.
// Runs as whoever invoked it; invoked as root, it drops to [mdad]
// user/group (privdrop.hpp) before reading the message.
// Standards: RFC 5322 (header fields), RFC 4155 (the From_ line some MTAs
// put first), sysexits(3).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"

namespace yubin::mdad {

struct LdaOptions {
  std::string recipient;                  // -d
  std::optional<std::string> sender;      // -f ("" = the null sender)
  std::string originalRecipient;          // -a (logged only)
  std::optional<std::string> configPath;  // -c
};

// True when argv asks for the delivery command (it holds "-d"), which main()
// checks before handing the daemon's options to the service skeleton.
bool isLdaInvocation(const std::vector<std::string>& args);

// Parses the words after the program name. Each option takes its value as
// the next word (which may be empty for -f); -d is required; no other
// words are accepted. The error is one line for stderr.
Result<LdaOptions> parseLdaOptions(const std::vector<std::string>& args);

// The lines --help adds for the delivery command.
std::string ldaUsage();

// What a calling MTA hands over before the message proper, removed so that
// each stored copy carries exactly one Return-Path: and one Delivered-To:
// (ours), and so that the loop check does not mistake the caller's fresh
// Delivered-To: for a loop:
//  - a first line "From sender date" (mbox envelope line) is dropped;
//  - in the run of fields at the very top made only of Return-Path:,
//    Delivered-To: and X-Original-To: (what Postfix's local(8) prepends),
//    Return-Path: and Delivered-To: fields are dropped, X-Original-To: kept.
// The first field of another name (Received:, ...) ends that run; below it
// nothing is touched, so a Delivered-To: that came back through a forwarder
// still trips the loop check. Fed in pieces of any size; memory is bounded
// (a line longer than 64 KiB in the leading run ends the filtering).
class LdaInputFilter {
 public:
  // Appends to out what passes.
  void feed(std::string_view in, std::string& out);
  void finish(std::string& out);
  // The sender named by what was dropped: the first Return-Path: address,
  // else the From_ line's sender ("" for MAILER-DAEMON or <>); nullopt when
  // neither was there.
  std::optional<std::string> impliedSender() const;

 private:
  void line(std::string_view l, std::string& out);  // one complete leading line
  void endField(std::string& out);
  void giveUp(std::string_view rest, std::string& out);  // keep everything from here

  enum class State { Start, Leading, Pass };
  State state_ = State::Start;
  std::string partial_;  // the current, incomplete line
  std::string field_;    // the current field of the leading run, with folds
  bool dropField_ = false;
  std::optional<std::string> returnPath_;
  std::optional<std::string> fromLineSender_;
};

// "<a@b>" / " a@b " -> "a@b"; "<>" and "MAILER-DAEMON" -> "".
std::string senderFromText(std::string_view text);

// Runs the delivery command; returns the exit status.
int runLda(const std::vector<std::string>& args);

}  // namespace yubin::mdad
