// The user database of virtual users: the users file ([global] users_file),
// its parser, and UserDb, which re-reads the file when it changes.
// Trust: the file is admin-written (root, mode 0640) and holds password
// hashes and SCRAM keys; lookups come from untrusted network input. A bad
// line is an error value with "file:line: what", never a crash.
// Standards: RFC 5321 §2.4 (case rules of addresses), RFC 5802/7677 (SCRAM
// keys, see scram.hpp).
//
// File format (documented in yubin-users(5)): one user per line, fields
// separated by ':'; blank lines and lines whose first non-blank character is
// '#' are ignored; blanks around a line are ignored, blanks inside a field
// are an error.
//
//   address:password-hash:scram:mailbox:format[:quota]
//
//   address        local@domain. The domain must be one of [global] domains.
//                  Lookups: domain case-insensitive, local part exact
//                  (except "postmaster", any case). Local part: dot-atom of
//                  RFC 5322 atext without '/', 8-bit bytes allowed.
//   password-hash  crypto_pwhash_str string ("$argon2id$..." or
//                  "$argon2i$..."), or "*": no password login.
//   scram          "iterations,salt,storedkey,serverkey" (base64; see
//                  scram.hpp) or empty: no SCRAM-SHA-256 for this user.
//   mailbox        empty: the default, <mail_root>/<domain>/<local>/Maildir
//                  for maildir and <mail_root>/<domain>/<local>.mbox for mbox;
//                  relative: under [global] mail_root; absolute: as is. No
//                  ".." component.
//   format         "maildir" or "mbox"; empty means maildir.
//   quota          "BYTES[,MESSAGES]"; BYTES may carry a k/M/G suffix; an
//                  empty or 0 value is unlimited. The field may be left out
//                  (5 fields).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "auth/domains.hpp"
#include "auth/scram.hpp"
#include "auth/watched_file.hpp"
#include "base/result.hpp"

namespace yubin::config {
class Config;
}

namespace yubin::auth {

enum class MailboxFormat { Maildir, Mbox };
std::string_view formatName(MailboxFormat f);
std::optional<MailboxFormat> parseMailboxFormat(std::string_view s);

struct Quota {
  uint64_t bytes = 0;     // 0 = unlimited
  uint64_t messages = 0;  // 0 = unlimited
};
// "BYTES[,MESSAGES]"; error message without a file:line prefix.
Result<Quota> parseQuota(std::string_view field);

struct User {
  std::string address;       // canonical: local@domain with the domain lower-case
  std::string local;         // exact
  std::string domain;        // lower-case
  std::string passwordHash;  // Argon2 string, or "*" (password login disabled)
  std::optional<ScramKeys> scram;
  std::string mailbox;  // absolute path
  MailboxFormat format = MailboxFormat::Maildir;
  Quota quota;
  int line = 0;  // line in the users file
  bool canLogin() const { return passwordHash != "*"; }
};

struct UserDbSettings {
  std::string path;      // [global] users_file
  LocalDomains domains;  // [global] domains
  std::string mailRoot;  // [global] mail_root
  static UserDbSettings fromConfig(const config::Config& cfg);
};

// One parsed users file.
class UserTable {
 public:
  // Case rules of addressKey(); nullptr when absent.
  const User* find(std::string_view address) const;
  const std::vector<User>& users() const { return users_; }  // file order
  // dummyHashLike() of the first user's hash: what an unknown user costs.
  const std::string& dummyHash() const { return dummyHash_; }

 private:
  friend Result<UserTable> parseUsers(std::string_view, const std::string&, const UserDbSettings&);
  std::vector<User> users_;
  std::unordered_map<std::string, size_t> index_;
  std::string dummyHash_;
};

// Parses a whole users file; the first error is "filename:line: what".
Result<UserTable> parseUsers(std::string_view text, const std::string& filename,
                             const UserDbSettings& settings);
// Parses one user line (already trimmed, not a comment); errors carry no
// file:line prefix.
Result<User> parseUserLine(std::string_view line, const UserDbSettings& settings);

// The users file, re-read when it changes (see watched_file.hpp). Each call
// does at most one stat(). Not thread-safe.
class UserDb {
 public:
  explicit UserDb(UserDbSettings settings);
  UserDb(const UserDb&) = delete;  // the parser callback holds `this`
  UserDb& operator=(const UserDb&) = delete;

  std::optional<User> find(std::string_view address);
  // A consistent snapshot; nullptr while no version of the file has ever
  // been read and parsed (unreadable or broken since start: callers should
  // answer "try again later", not "unknown user").
  std::shared_ptr<const UserTable> table() { return file_.get(); }
  // Forces a read now; the error of this attempt (file:line for a parse
  // error). For start-up and `yubinctl check`.
  Status reload() { return file_.reload(); }
  const UserDbSettings& settings() const { return settings_; }

 private:
  UserDbSettings settings_;
  WatchedFile<UserTable> file_;
};

}  // namespace yubin::auth
