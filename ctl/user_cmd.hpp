// yubinctl user: add, delete, list virtual users and change their passwords
// in the users file ([global] users_file).
// Trust: run by the admin (root). Reads the password from the terminal with
// echo off, or one line from standard input when that is not a terminal;
// the password is hashed at once and wiped, never printed or logged.
//
//   user add ADDRESS [--mailbox PATH] [--format maildir|mbox] [--quota BYTES[,MESSAGES]]
//   user del ADDRESS
//   user passwd ADDRESS
//   user list [--json]
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>
#include <string_view>
#include <vector>

#include "auth/password.hpp"
#include "auth/scram.hpp"

namespace yubin::config {
class Config;
}

namespace yubin::ctl {

struct UserCommandOptions {
  auth::PasswordCost cost = auth::PasswordCost::interactive();
  uint32_t scramIterations = auth::kScramDefaultIterations;
};

// args: the words after "user" (a leading "user" is skipped too), e.g.
// {"add", "bob@example.org", "--format", "mbox"}. The password comes from
// `in`; when `in` is std::cin and standard input is a terminal, it is asked
// twice with echo off (prompts on `err`). Returns 0 ok, 1 error (message on
// err), 2 usage error.
int runUserCommand(const config::Config& cfg, const std::vector<std::string>& args,
                   std::istream& in, std::ostream& out, std::ostream& err);
int runUserCommand(const config::Config& cfg, const std::vector<std::string>& args,
                   std::istream& in, std::ostream& out, std::ostream& err,
                   const UserCommandOptions& options);

// A JSON string literal with quotes: escapes '"', '\\' and control bytes;
// other bytes (UTF-8) pass through.
std::string jsonString(std::string_view s);

}  // namespace yubin::ctl
