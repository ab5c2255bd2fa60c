// Password hashes; see password.hpp.
#include "auth/password.hpp"

#include <sodium.h>

#include <cstring>

#include "base/log.hpp"

namespace yubin::auth {
namespace {

// Fixed salt (16 bytes) and hash (32 bytes) for the dummy, unpadded base64
// as libsodium writes them. Any values do: only the parameters matter for
// the time a verification takes.
constexpr std::string_view kDummyTail =
    "$ZHVtbXlzYWx0ZHVtbXlzYQ$"
    "ZHVtbXloYXNoZHVtbXloYXNoZHVtbXloYXNoZHVtbXk";

// The "$argon2id$v=19$m=..,t=..,p=.." prefix of an Argon2 string, or "".
std::string_view paramsPrefix(std::string_view hash) {
  if (!isPasswordHash(hash)) return {};
  // $alg$v=19$params$salt$hash: the prefix ends before the 4th '$'.
  size_t pos = 0;
  for (int i = 0; i < 4; ++i) {
    pos = hash.find('$', pos + (i == 0 ? 0 : 1));
    if (pos == std::string_view::npos) return {};
  }
  return hash.substr(0, pos);
}

}  // namespace

PasswordCost PasswordCost::interactive() {
  return {crypto_pwhash_OPSLIMIT_INTERACTIVE, crypto_pwhash_MEMLIMIT_INTERACTIVE};
}

PasswordCost PasswordCost::minimum() {
  return {crypto_pwhash_OPSLIMIT_MIN, crypto_pwhash_MEMLIMIT_MIN};
}

void ensureSodium() {
  // sodium_init() is idempotent and thread-safe; it returns 1 when already
  // initialised.
  if (sodium_init() < 0) fatal("libsodium cannot be initialised");
}

Result<std::string> hashPassword(std::string_view password, const PasswordCost& cost) {
  ensureSodium();
  char out[crypto_pwhash_STRBYTES];
  if (crypto_pwhash_str(out, password.data(), password.size(), cost.opsLimit, cost.memLimit) != 0)
    return Error{"password hashing failed (out of memory?)"};
  return std::string(out);
}

bool isPasswordHash(std::string_view hash) {
  if (hash.size() >= crypto_pwhash_STRBYTES) return false;
  if (hash.substr(0, 10) != "$argon2id$" && hash.substr(0, 9) != "$argon2i$") return false;
  for (char c : hash)
    if (c == '\0' || static_cast<unsigned char>(c) < 0x21 || static_cast<unsigned char>(c) > 0x7e)
      return false;
  ensureSodium();
  std::string z(hash);
  // needs_rehash returns -1 for a string it cannot decode, 0 or 1 otherwise.
  return crypto_pwhash_str_needs_rehash(z.c_str(), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                                        crypto_pwhash_MEMLIMIT_INTERACTIVE) != -1;
}

bool verifyPasswordHash(std::string_view hash, std::string_view password) {
  if (hash.size() >= crypto_pwhash_STRBYTES || hash.find('\0') != std::string_view::npos)
    return false;
  ensureSodium();
  char z[crypto_pwhash_STRBYTES];
  std::memcpy(z, hash.data(), hash.size());
  z[hash.size()] = '\0';
  return crypto_pwhash_str_verify(z, password.data(), password.size()) == 0;
}

std::string dummyHashLike(std::string_view like) {
  std::string_view prefix = paramsPrefix(like);
  std::string out;
  if (prefix.empty()) {
    PasswordCost c = PasswordCost::interactive();
    out = "$argon2id$v=19$m=" + std::to_string(c.memLimit / 1024) +
          ",t=" + std::to_string(c.opsLimit) + ",p=1";
  } else {
    out = std::string(prefix);
  }
  out += kDummyTail;
  return out;
}

}  // namespace yubin::auth
