// yubin-sendmail's command line: the sendmail(8) options local programs
// (cron, mail(1), mutt, git send-email, logcheck...) pass, parsed into one
// struct. Options we have no use for are accepted and ignored so that
// callers written for Sendmail or Postfix keep working.
// Trust: parses the invoking user's arguments; runs as that user.
// Standards: none; the de-facto sendmail(8) interface (Sendmail 8, Postfix).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"

namespace yubin::sendmail {

// sysexits.h values, spelled here so the exit code of each path is plain.
enum ExitCode : int {
  kExOk = 0,
  kExUsage = 64,        // bad option, no recipient
  kExDataErr = 65,      // bad address syntax, bad message
  kExNoUser = 67,       // (unused: local users are checked by mtad)
  kExUnavailable = 69,  // -bd and other modes we do not offer
  kExSoftware = 70,
  kExOsErr = 71,
  kExCantCreat = 73,
  kExTempFail = 75,  // the maildrop could not take the message: try later
  kExConfig = 78,    // the configuration does not load
};

enum class Mode {
  Deliver,     // -bm (default): message on stdin
  Smtp,        // -bs: SMTP on stdin/stdout
  ListQueue,   // -bp, or called as mailq
  Unsupported  // -bd, -bi, -bt, -bv, ...: not offered
};

struct Options {
  Mode mode = Mode::Deliver;
  bool extract = false;                 // -t
  bool ignoreDots = false;              // -i, -oi: a lone "." does not end the message
  std::optional<std::string> sender;    // -f / -r
  std::optional<std::string> fullName;  // -F
  std::string configPath;               // -C FILE; empty: the default
  std::vector<std::string> recipients;
  std::vector<std::string> ignored;  // options accepted and ignored, as given
  std::string unsupported;           // the -b mode refused, for the message
};

// Parses argv[1..] for a program called `progName` (basename of argv[0]:
// "mailq" means -bp). Options come first; "--" or the first argument
// not starting with '-' starts the recipients. An unknown option or a
// missing value is an Error (exit kExUsage).
Result<Options> parseOptions(const std::vector<std::string>& args, std::string_view progName);

}  // namespace yubin::sendmail
