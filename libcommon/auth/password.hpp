// Password hashes for the users file: libsodium crypto_pwhash_str (Argon2id)
// strings, and the dummy hash used so that an unknown user costs the same
// time as a wrong password.
// Trust: verifies untrusted passwords (AUTH, USER/PASS, LOGIN) against
// admin-written hashes; never logs or stores a plaintext password.
//
// Cost: PasswordCost::interactive() is libsodium's INTERACTIVE level
// (opslimit 2, memlimit 64 MiB; about 0.1 s and 64 MiB of RAM per check on a
// current machine). It is what yubinctl uses; the cost is recorded in each
// hash string, so verification always uses the cost the hash was made with.
// PasswordCost::minimum() (opslimit 1, 8 KiB) exists for tests only.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "base/result.hpp"

namespace yubin::auth {

struct PasswordCost {
  unsigned long long opsLimit;
  size_t memLimit;  // bytes

  static PasswordCost interactive();
  static PasswordCost minimum();  // tests only: no security
};

// Calls sodium_init() once; aborts if libsodium cannot start.
void ensureSodium();

// A crypto_pwhash_str string ("$argon2id$v=19$m=65536,t=2,p=1$...").
Result<std::string> hashPassword(std::string_view password, const PasswordCost& cost);

// True when hash is a well-formed Argon2 string ("$argon2id$" or "$argon2i$"
// with parameters libsodium accepts). Cheap: no hashing.
bool isPasswordHash(std::string_view hash);

// Constant-time in the password (libsodium compares in constant time).
// False for a malformed hash.
bool verifyPasswordHash(std::string_view hash, std::string_view password);

// A well-formed hash that no password matches in practice, with the same
// algorithm and cost parameters as `like` (any Argon2 string; when it is not
// one, PasswordCost::interactive()). Verifying against it costs what
// verifying against `like` costs.
std::string dummyHashLike(std::string_view like);

}  // namespace yubin::auth
