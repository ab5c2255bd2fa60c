// SCRAM-SHA-256 (RFC 5802, RFC 7677): the stored keys kept in the users
// file and the server-side primitives, as pure functions. The SASL state
// machines (IMAP AUTHENTICATE, SMTP AUTH) are built on these elsewhere.
// Trust: parses untrusted client messages (AUTH exchanges); compares secrets
// in constant time (CRYPTO_memcmp).
// Standards: RFC 5802 (SCRAM), RFC 7677 (SCRAM-SHA-256).
// Not done: SASLprep (RFC 4013) of passwords and user names; passwords are
// used as given (identical to SASLprep for printable ASCII without spaces
// that need mapping). Channel binding (-PLUS) is not offered: a client
// asking for it ("p=") is refused.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.hpp"

namespace yubin::auth {

inline constexpr uint32_t kScramDefaultIterations = 4096;  // RFC 7677 §4 minimum
inline constexpr uint32_t kScramMinIterations = 4096;
inline constexpr uint32_t kScramMaxIterations = 10'000'000;
inline constexpr size_t kScramKeySize = 32;  // SHA-256

struct ScramKeys {
  uint32_t iterations = 0;
  std::string salt;       // raw bytes
  std::string storedKey;  // raw, 32 bytes: H(ClientKey)
  std::string serverKey;  // raw, 32 bytes: HMAC(SaltedPassword, "Server Key")
};

// Derives the stored keys from a password (PBKDF2-HMAC-SHA-256).
Result<ScramKeys> scramDeriveKeys(std::string_view password, std::string_view salt,
                                  uint32_t iterations);
// Same with a fresh random 16-byte salt.
Result<ScramKeys> scramNewKeys(std::string_view password,
                               uint32_t iterations = kScramDefaultIterations);

// Users file field: "iter,salt_b64,storedkey_b64,serverkey_b64" (standard
// base64 with padding). Parsing checks kScramMinIterations..MaxIterations,
// a non-empty salt and 32-byte keys.
std::string formatScramField(const ScramKeys& keys);
Result<ScramKeys> parseScramField(std::string_view field);

// --- Messages (RFC 5802 §7) ---

struct ScramClientFirst {
  char cbindFlag = 'n';  // 'n' or 'y' ('p' is refused by the parser)
  std::string authzid;   // decoded ("=2C" -> ',', "=3D" -> '='), may be empty
  std::string username;  // decoded
  std::string clientNonce;
  std::string gs2Header;  // e.g. "n,," — the client must echo it in c=
  std::string bare;       // client-first-message-bare, for the AuthMessage
};
Result<ScramClientFirst> parseScramClientFirst(std::string_view message);

// A fresh random server nonce part (printable, no ',').
std::string scramServerNonce();
// "r=<clientNonce><serverNonce>,s=<salt_b64>,i=<iterations>"
std::string scramServerFirst(const ScramClientFirst& first, std::string_view serverNonce,
                             const ScramKeys& keys);

struct ScramClientFinal {
  std::string channelBinding;  // decoded c= value
  std::string nonce;
  std::string proof;         // decoded p= value
  std::string withoutProof;  // client-final-message-without-proof
};
Result<ScramClientFinal> parseScramClientFinal(std::string_view message);

// AuthMessage = client-first-bare "," server-first "," client-final-without-proof
std::string scramAuthMessage(std::string_view clientFirstBare, std::string_view serverFirst,
                             std::string_view clientFinalWithoutProof);

// True when ClientProof matches StoredKey (constant-time comparison).
bool scramVerifyProof(const ScramKeys& keys, std::string_view authMessage,
                      std::string_view clientProof);
// ServerSignature = HMAC(ServerKey, AuthMessage), raw bytes.
std::string scramServerSignature(const ScramKeys& keys, std::string_view authMessage);

// The whole server check of the client-final message: the nonce must be the
// one sent in serverFirst, the channel binding must echo the gs2 header, the
// proof must verify. Returns the server-final message "v=<base64>".
Result<std::string> scramServerFinal(const ScramKeys& keys, const ScramClientFirst& first,
                                     std::string_view serverFirst, const ScramClientFinal& final);

// Client side (for tests and test clients): ClientProof, raw bytes.
Result<std::string> scramClientProof(std::string_view password, std::string_view salt,
                                     uint32_t iterations, std::string_view authMessage);

}  // namespace yubin::auth
