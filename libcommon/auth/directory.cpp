// The Directory facade; see directory.hpp.
#include "auth/directory.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sodium.h>

#include <algorithm>

#include "auth/address.hpp"
#include "auth/password.hpp"
#include "base/strings.hpp"
#include "config/config.hpp"

namespace yubin::auth {
namespace {

std::string hmac(std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &len);
  return std::string(reinterpret_cast<char*>(out), len);
}

}  // namespace

DirectorySettings DirectorySettings::fromConfig(const config::Config& cfg) {
  DirectorySettings s;
  s.users = UserDbSettings::fromConfig(cfg);
  s.aliasesFile = cfg.str("global", "aliases_file");
  s.postmaster = cfg.str("global", "postmaster");
  return s;
}

Directory::Directory(DirectorySettings settings)
    : settings_(std::move(settings)),
      users_(settings_.users),
      aliases_(AliasDbSettings{settings_.aliasesFile, settings_.users.domains}) {
  ensureSodium();
  fakeScramSecret_.resize(32);
  randombytes_buf(fakeScramSecret_.data(), fakeScramSecret_.size());
}

bool Directory::isLocalDomain(std::string_view domain) const {
  return settings_.users.domains.contains(domain);
}

Resolution Directory::resolve(std::string_view address) {
  Resolution r = resolveOnce(address);
  if (r.status != Resolution::Status::UnknownUser || settings_.postmaster.empty()) return r;
  auto parts = splitAddress(address);
  if (!parts || !iequals(parts->local, "postmaster")) return r;
  // RFC 5321 §4.5.1: the admin's fallback for every local domain's
  // postmaster. Resolved once, without a fallback of its own, so a fallback
  // that is itself an unknown postmaster@ cannot loop.
  Resolution f = resolveOnce(settings_.postmaster);
  if (f.status == Resolution::Status::UnknownUser || f.status == Resolution::Status::BadAddress) {
    f.status = Resolution::Status::AliasError;
    f.error = "postmaster fallback " + settings_.postmaster + " reaches no one" +
              (f.error.empty() ? std::string() : ": " + f.error);
  }
  return f;
}

std::vector<std::string> Directory::domainsWithoutPostmaster() {
  std::vector<std::string> out;
  for (const auto& d : domains().list())
    if (!resolve("postmaster@" + d).ok()) out.push_back(d);
  return out;
}

Resolution Directory::resolveOnce(std::string_view address) {
  Resolution r;
  auto parts = splitAddress(address);
  if (!parts || !isValidDomain(parts->domain)) {
    r.status = Resolution::Status::BadAddress;
    r.error = "malformed address";
    return r;
  }
  if (!isLocalDomain(parts->domain)) {
    r.remote.emplace_back(address);
    return r;
  }
  auto users = users_.table();
  auto aliases = aliases_.table();
  if (!users || !aliases) {
    r.status = Resolution::Status::TempFail;
    r.error = !users ? "users file unavailable" : "aliases file unavailable";
    return r;
  }
  auto isUser = [&](std::string_view a) { return users->find(a) != nullptr; };
  auto expanded = aliases->expand(address, isUser);
  if (!expanded) {
    r.status = Resolution::Status::AliasError;
    r.error = expanded.error().message;
    return r;
  }
  std::string self = addressKey(parts->local, parts->domain);
  for (const auto& a : *expanded) {
    auto p = splitAddress(a);
    if (!p || !isLocalDomain(p->domain)) {
      r.remote.push_back(a);
      continue;
    }
    const User* u = users->find(a);
    if (!u) {
      bool direct = expanded->size() == 1 && a == self;
      r.status = direct ? Resolution::Status::UnknownUser : Resolution::Status::AliasError;
      r.error = direct ? "unknown user " + a : "alias of " + self + " reaches unknown user " + a;
      r.users.clear();
      r.remote.clear();
      return r;
    }
    r.users.push_back(*u);
  }
  return r;
}

std::optional<User> Directory::findUser(std::string_view address) { return users_.find(address); }

bool Directory::verifyPassword(std::string_view address, std::string_view password) {
  auto users = users_.table();
  const User* u = users ? users->find(address) : nullptr;
  if (!u || !u->canLogin()) {
    // Same work as a real check, result ignored.
    (void)verifyPasswordHash(users ? users->dummyHash() : dummyHashLike(""), password);
    return false;
  }
  return verifyPasswordHash(u->passwordHash, password);
}

ScramLookup Directory::scramKeys(std::string_view address) {
  ScramLookup out;
  auto users = users_.table();
  const User* u = users ? users->find(address) : nullptr;
  if (u && u->canLogin() && u->scram) {
    out.keys = *u->scram;
    out.real = true;
    return out;
  }
  // Stable fake salt for this name; random keys that no proof matches.
  std::string name = addressKey(address).value_or(std::string(address));
  out.keys.iterations = kScramDefaultIterations;
  out.keys.salt = hmac(fakeScramSecret_, "salt:" + name).substr(0, 16);
  out.keys.storedKey.resize(kScramKeySize);
  out.keys.serverKey.resize(kScramKeySize);
  randombytes_buf(out.keys.storedKey.data(), kScramKeySize);
  randombytes_buf(out.keys.serverKey.data(), kScramKeySize);
  return out;
}

std::vector<std::string> Directory::addressesOf(std::string_view userAddress) {
  std::vector<std::string> out;
  auto users = users_.table();
  auto aliases = aliases_.table();
  if (!users) return out;
  const User* u = users->find(userAddress);
  if (!u) return out;
  auto isUser = [&](std::string_view a) { return users->find(a) != nullptr; };
  if (!aliases) {
    out.push_back(u->address);
    return out;
  }
  auto own = aliases->expand(u->address, isUser);
  if (own && std::find(own->begin(), own->end(), u->address) != own->end())
    out.push_back(u->address);
  for (auto& k : aliases->reverse(u->address, isUser))
    if (k != u->address) out.push_back(std::move(k));
  return out;
}

Status Directory::reload() {
  Status a = users_.reload();
  Status b = aliases_.reload();
  if (!a) return a;
  return b;
}

}  // namespace yubin::auth
