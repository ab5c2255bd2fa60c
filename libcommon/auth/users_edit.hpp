// Editing the users file (for yubinctl user add/del/passwd): the whole file
// is validated, changed in memory and written back with atomicWrite (mode
// 0640); comments, blank lines and every other line are kept byte for byte.
// Concurrent editors are serialised with flock() on "<users_file>.lock".
// When running as root, the owner and group of the previous file are given
// to the new one.
// Trust: run by the admin (root); the password is hashed here and never
// written, logged or kept in an error message.
// Standards: RFC 5802/7677 (the SCRAM keys written with the hash).
#pragma once

#include <string>
#include <string_view>

#include "auth/password.hpp"
#include "auth/users.hpp"
#include "base/result.hpp"

namespace yubin::auth {

struct NewUser {
  std::string address;
  std::string mailbox;  // users-file field text: "" = default, relative or absolute
  MailboxFormat format = MailboxFormat::Maildir;
  std::string quota;  // users-file field text: "" = unlimited, else BYTES[,MESSAGES]
};

struct Credentials {
  std::string hash;   // users-file password-hash field
  std::string scram;  // users-file scram field
};
// Hashes the password (Argon2id at `cost`) and derives SCRAM-SHA-256 keys.
Result<Credentials> makeCredentials(std::string_view password, const PasswordCost& cost,
                                    uint32_t scramIterations = kScramDefaultIterations);

// The users-file line for a new user (no newline), validated as the parser
// would; the address is written in canonical form (domain lower-case).
Result<std::string> makeUserLine(const NewUser& user, const Credentials& cred,
                                 const UserDbSettings& settings);

// Pure text edits. Each parses `text` first (a broken file is not edited:
// the error names file:line) and returns the new text.
Result<std::string> usersTextAdd(std::string_view text, const std::string& filename,
                                 const UserDbSettings& settings, std::string_view line);
Result<std::string> usersTextDelete(std::string_view text, const std::string& filename,
                                    const UserDbSettings& settings, std::string_view address);
Result<std::string> usersTextSetCredentials(std::string_view text, const std::string& filename,
                                            const UserDbSettings& settings,
                                            std::string_view address, const Credentials& cred);

// File operations on settings.path: lock, read (a missing file is empty),
// edit, atomicWrite(0640), restore owner and group when root.
Status addUser(const UserDbSettings& settings, const NewUser& user, const Credentials& cred);
Status deleteUser(const UserDbSettings& settings, std::string_view address);
Status setCredentials(const UserDbSettings& settings, std::string_view address,
                      const Credentials& cred);

}  // namespace yubin::auth
