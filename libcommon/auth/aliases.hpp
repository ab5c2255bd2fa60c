// The aliases file ([global] aliases_file): addresses of local domains that
// expand to other addresses (users, other aliases, remote addresses), with
// a per-domain catch-all. Expansion is recursive with loop detection and a
// depth limit; the reverse lookup answers "which addresses reach this user".
// Trust: the file is admin-written; addresses to expand come from untrusted
// network input (RCPT TO).
// Standards: RFC 5321 §2.4 and §4.5.1 (case rules, postmaster), §3.9
// (aliases and lists).
//
// File format (documented in yubin-users(5)): one alias per line; blank lines
// and lines whose first non-blank character is '#' are ignored.
//
//   alias@domain: target@domain, target@other.example
//   @domain: someone@domain          catch-all for domain
//
// The key is a full address in a local domain, or "@domain" (catch-all: used
// for an address of that domain that is neither an alias nor a user). The
// first ':' ends the key. Targets are full addresses (local or remote),
// separated by commas and/or blanks; at least one. Pipes, files and includes
// are not supported. Keys follow the lookup rules of addresses: domain
// case-insensitive, local part exact (except "postmaster"). A duplicate key
// is an error.
//
// Expansion: an alias is replaced by its targets, recursively, up to
// kMaxAliasDepth nested aliases. A target equal to the alias itself is kept
// as a final address (so "bob@x: bob@x, bob@elsewhere" keeps a copy and
// forwards). Any other cycle is an error ("alias loop: a -> b -> a"). The
// result is the set of final addresses in first-seen order, without
// duplicates. An alias takes precedence over a user of the same address.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "auth/domains.hpp"
#include "auth/watched_file.hpp"
#include "base/result.hpp"

namespace yubin::auth {

inline constexpr int kMaxAliasDepth = 10;
inline constexpr size_t kMaxAliasExpansion = 10000;  // final addresses per expansion

struct AliasEntry {
  std::string key;                   // canonical address, or "@domain"
  std::vector<std::string> targets;  // canonical addresses
  int line = 0;
};

// Tells whether a canonical address is a user (users win over catch-alls).
using IsUserFn = std::function<bool(std::string_view address)>;

class AliasTable {
 public:
  // Exact lookup of a key (addressKey() form or "@domain").
  const AliasEntry* find(std::string_view key) const;
  const std::vector<AliasEntry>& entries() const { return entries_; }  // file order

  // The final addresses an address expands to; an address that is neither
  // an alias nor covered by a catch-all expands to itself (whether it is a
  // user is the caller's question). Errors: malformed address, loop, depth.
  Result<std::vector<std::string>> expand(std::string_view address, const IsUserFn& isUser) const;

  // The alias keys (addresses, and "@domain" for catch-alls) whose expansion
  // contains `address`. Keys whose expansion fails are skipped. Costs one
  // expansion per alias: fine for files of a few thousand lines.
  std::vector<std::string> reverse(std::string_view address, const IsUserFn& isUser) const;

 private:
  friend Result<AliasTable> parseAliases(std::string_view, const std::string&, const LocalDomains&);
  Result<std::vector<std::string>> expandEntry(const AliasEntry& e, const IsUserFn& isUser) const;

  std::vector<AliasEntry> entries_;
  std::unordered_map<std::string, size_t> index_;
};

Result<AliasTable> parseAliases(std::string_view text, const std::string& filename,
                                const LocalDomains& domains);

struct AliasDbSettings {
  std::string path;  // [global] aliases_file
  LocalDomains domains;
};

// The aliases file, re-read when it changes; at most one stat() per call.
class AliasDb {
 public:
  explicit AliasDb(AliasDbSettings settings);
  AliasDb(const AliasDb&) = delete;  // the parser callback holds `this`
  AliasDb& operator=(const AliasDb&) = delete;

  // nullptr while no version of the file was ever parsed (a missing file is
  // an empty table, not an error).
  std::shared_ptr<const AliasTable> table() { return file_.get(); }
  Status reload() { return file_.reload(); }

 private:
  AliasDbSettings settings_;
  WatchedFile<AliasTable> file_;
};

}  // namespace yubin::auth
