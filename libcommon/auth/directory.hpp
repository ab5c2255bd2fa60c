// Directory: the one object daemons ask about local mail recipients and
// logins. It combines the local domains ([global] domains), the users file
// (users.hpp) and the aliases file (aliases.hpp); both files are re-read
// when they change (at most one stat() each per call).
// Trust: every argument is untrusted network input (RCPT TO, AUTH, USER/PASS);
// password checks cost the same for unknown users and wrong passwords, and
// secrets are compared in constant time.
// Standards: RFC 5321 §2.4, §3.9, §4.5.1; RFC 5802/7677 (SCRAM keys).
// Not thread-safe: one Directory per event loop.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/aliases.hpp"
#include "auth/domains.hpp"
#include "auth/scram.hpp"
#include "auth/users.hpp"
#include "base/result.hpp"

namespace yubin::config {
class Config;
}

namespace yubin::auth {

struct DirectorySettings {
  UserDbSettings users;     // users_file, domains, mail_root
  std::string aliasesFile;  // aliases_file
  // [global] postmaster: where postmaster@<any local domain> goes when no
  // user and no alias takes it (RFC 5321 §4.5.1); empty: nowhere.
  std::string postmaster;
  static DirectorySettings fromConfig(const config::Config& cfg);
};

struct Resolution {
  enum class Status {
    Ok,
    BadAddress,   // not local@domain: 501 / 553
    UnknownUser,  // the address is in a local domain but reaches no one: 550 5.1.1
    AliasError,   // loop, too deep, target not a user: the admin's fault; 550 5.4.6 or 451
    TempFail,     // users or aliases file never readable since start: 451 4.3.0
  };
  Status status = Status::Ok;
  std::string error;                // for the log (names addresses, never secrets)
  std::vector<User> users;          // local recipients, no duplicates
  std::vector<std::string> remote;  // addresses to forward to, no duplicates
  bool ok() const { return status == Status::Ok; }
};

// What a SCRAM exchange needs for a user name; for an unknown user (or one
// without SCRAM keys) the keys are fake but stable per name, so the
// server-first message does not tell whether the user exists (RFC 5802 §9).
struct ScramLookup {
  ScramKeys keys;
  bool real = false;  // false: the proof can never verify
};

class Directory {
 public:
  explicit Directory(DirectorySettings settings);
  Directory(const Directory&) = delete;
  Directory& operator=(const Directory&) = delete;

  bool isLocalDomain(std::string_view domain) const;
  const LocalDomains& domains() const { return settings_.users.domains; }

  // Where mail for `address` goes. An address of a non-local domain resolves
  // to itself as a remote address. postmaster@<local domain> (any case) that
  // no user or alias takes resolves as the [global] postmaster address does
  // (one step: that address gets no fallback of its own); when that address
  // reaches no one either, the result is AliasError.
  Resolution resolve(std::string_view address);

  // The local domains whose postmaster@ address resolves to no one (or
  // fails): `yubinctl check` and mtad's start warn about each.
  std::vector<std::string> domainsWithoutPostmaster();
  // A reload of the configuration changes the fallback in place.
  void setPostmaster(std::string address) { settings_.postmaster = std::move(address); }

  // The user with this address (no alias expansion).
  std::optional<User> findUser(std::string_view address);

  // True when the user exists, may log in and the password matches. An
  // unknown user, or one with password-hash "*", is checked against a dummy
  // hash of the same cost, so all three failures take the same time.
  bool verifyPassword(std::string_view address, std::string_view password);

  ScramLookup scramKeys(std::string_view address);

  // The addresses that reach this user: the user's own address when mail to
  // it reaches the user, then every alias key whose expansion contains the
  // user, in file order ("@domain" for a catch-all). Empty for an unknown
  // user.
  std::vector<std::string> addressesOf(std::string_view userAddress);

  // Reads both files now; the first error (file:line for parse errors).
  Status reload();

 private:
  Resolution resolveOnce(std::string_view address);

  DirectorySettings settings_;
  UserDb users_;
  AliasDb aliases_;
  std::string fakeScramSecret_;  // random per process
};

}  // namespace yubin::auth
