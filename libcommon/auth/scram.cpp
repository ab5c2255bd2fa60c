// SCRAM-SHA-256 primitives; see scram.hpp.
#include "auth/scram.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sodium.h>

#include <vector>

#include "auth/password.hpp"
#include "base/strings.hpp"

namespace yubin::auth {
namespace {

std::string hmacSha256(std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (!HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
            reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &len))
    return {};
  return std::string(reinterpret_cast<char*>(out), len);
}

std::string sha256(std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (!EVP_Digest(data.data(), data.size(), out, &len, EVP_sha256(), nullptr)) return {};
  return std::string(reinterpret_cast<char*>(out), len);
}

Result<std::string> saltedPassword(std::string_view password, std::string_view salt,
                                   uint32_t iterations) {
  if (iterations == 0 || iterations > kScramMaxIterations)
    return Error{"SCRAM iteration count out of range"};
  std::string out(kScramKeySize, '\0');
  if (PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                        reinterpret_cast<const unsigned char*>(salt.data()),
                        static_cast<int>(salt.size()), static_cast<int>(iterations), EVP_sha256(),
                        static_cast<int>(out.size()),
                        reinterpret_cast<unsigned char*>(out.data())) != 1)
    return Error{"PBKDF2 failed"};
  return out;
}

std::string xorBytes(std::string_view a, std::string_view b) {
  std::string out(a.size(), '\0');
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) out[i] = static_cast<char>(a[i] ^ b[i]);
  return out;
}

// saslname decoding: "=2C" -> ',', "=3D" -> '='; any other '=' or a ','
// is an error; NUL is refused.
std::optional<std::string> decodeSaslName(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '\0' || c == ',') return std::nullopt;
    if (c == '=') {
      if (s.substr(i, 3) == "=2C")
        out.push_back(',');
      else if (s.substr(i, 3) == "=3D")
        out.push_back('=');
      else
        return std::nullopt;
      i += 2;
      continue;
    }
    out.push_back(c);
  }
  return out;
}

// Nonce: printable ASCII except ','.
bool isValidNonce(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < 0x21 || c > 0x7e || c == ',') return false;
  return true;
}

// Splits on ','.
std::vector<std::string_view> splitComma(std::string_view s) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (;;) {
    size_t c = s.find(',', start);
    if (c == std::string_view::npos) {
      out.push_back(s.substr(start));
      return out;
    }
    out.push_back(s.substr(start, c - start));
    start = c + 1;
  }
}

bool hasAttr(std::string_view part, char name) {
  return part.size() >= 2 && part[0] == name && part[1] == '=';
}

}  // namespace

Result<ScramKeys> scramDeriveKeys(std::string_view password, std::string_view salt,
                                  uint32_t iterations) {
  auto sp = saltedPassword(password, salt, iterations);
  if (!sp) return sp.error();
  ScramKeys k;
  k.iterations = iterations;
  k.salt = std::string(salt);
  std::string clientKey = hmacSha256(*sp, "Client Key");
  k.storedKey = sha256(clientKey);
  k.serverKey = hmacSha256(*sp, "Server Key");
  OPENSSL_cleanse(sp->data(), sp->size());
  OPENSSL_cleanse(clientKey.data(), clientKey.size());
  if (k.storedKey.size() != kScramKeySize || k.serverKey.size() != kScramKeySize)
    return Error{"SCRAM key derivation failed"};
  return k;
}

Result<ScramKeys> scramNewKeys(std::string_view password, uint32_t iterations) {
  ensureSodium();
  std::string salt(16, '\0');
  randombytes_buf(salt.data(), salt.size());
  return scramDeriveKeys(password, salt, iterations);
}

std::string formatScramField(const ScramKeys& keys) {
  return std::to_string(keys.iterations) + "," + base64Encode(keys.salt) + "," +
         base64Encode(keys.storedKey) + "," + base64Encode(keys.serverKey);
}

Result<ScramKeys> parseScramField(std::string_view field) {
  auto parts = splitComma(field);
  if (parts.size() != 4) return Error{"SCRAM field must be iterations,salt,storedkey,serverkey"};
  auto iter = parseU64(parts[0]);
  if (!iter || *iter < kScramMinIterations || *iter > kScramMaxIterations)
    return Error{"SCRAM iteration count must be " + std::to_string(kScramMinIterations) + " to " +
                 std::to_string(kScramMaxIterations)};
  ScramKeys k;
  k.iterations = static_cast<uint32_t>(*iter);
  auto salt = base64Decode(parts[1]);
  if (!salt || salt->empty()) return Error{"SCRAM salt is not valid base64"};
  auto stored = base64Decode(parts[2]);
  if (!stored || stored->size() != kScramKeySize)
    return Error{"SCRAM stored key is not 32 bytes of base64"};
  auto server = base64Decode(parts[3]);
  if (!server || server->size() != kScramKeySize)
    return Error{"SCRAM server key is not 32 bytes of base64"};
  k.salt = std::move(*salt);
  k.storedKey = std::move(*stored);
  k.serverKey = std::move(*server);
  return k;
}

Result<ScramClientFirst> parseScramClientFirst(std::string_view message) {
  ScramClientFirst f;
  // gs2-header: cbind-flag "," [authzid] ","
  size_t c1 = message.find(',');
  if (c1 == std::string_view::npos) return Error{"malformed client-first message"};
  std::string_view flag = message.substr(0, c1);
  if (flag == "n" || flag == "y") {
    f.cbindFlag = flag[0];
  } else if (flag.substr(0, 2) == "p=") {
    return Error{"channel binding is not supported"};
  } else {
    return Error{"malformed gs2 header"};
  }
  size_t c2 = message.find(',', c1 + 1);
  if (c2 == std::string_view::npos) return Error{"malformed gs2 header"};
  std::string_view authz = message.substr(c1 + 1, c2 - c1 - 1);
  if (!authz.empty()) {
    if (!hasAttr(authz, 'a')) return Error{"malformed authzid"};
    auto a = decodeSaslName(authz.substr(2));
    if (!a || a->empty()) return Error{"malformed authzid"};
    f.authzid = std::move(*a);
  }
  f.gs2Header = std::string(message.substr(0, c2 + 1));
  f.bare = std::string(message.substr(c2 + 1));

  auto parts = splitComma(f.bare);
  size_t i = 0;
  if (i < parts.size() && hasAttr(parts[i], 'm')) return Error{"unsupported mandatory extension"};
  if (i >= parts.size() || !hasAttr(parts[i], 'n')) return Error{"missing user name"};
  auto user = decodeSaslName(parts[i].substr(2));
  if (!user || user->empty()) return Error{"malformed user name"};
  f.username = std::move(*user);
  ++i;
  if (i >= parts.size() || !hasAttr(parts[i], 'r')) return Error{"missing nonce"};
  f.clientNonce = std::string(parts[i].substr(2));
  if (!isValidNonce(f.clientNonce)) return Error{"malformed nonce"};
  // Optional extensions after the nonce are ignored, but must look like
  // attributes.
  for (++i; i < parts.size(); ++i) {
    if (parts[i].size() < 2 || parts[i][1] != '=') return Error{"malformed extension"};
  }
  return f;
}

std::string scramServerNonce() {
  ensureSodium();
  std::string raw(18, '\0');
  randombytes_buf(raw.data(), raw.size());
  return base64Encode(raw);  // 18 bytes: 24 chars, no padding, never ','
}

std::string scramServerFirst(const ScramClientFirst& first, std::string_view serverNonce,
                             const ScramKeys& keys) {
  return "r=" + first.clientNonce + std::string(serverNonce) + ",s=" + base64Encode(keys.salt) +
         ",i=" + std::to_string(keys.iterations);
}

Result<ScramClientFinal> parseScramClientFinal(std::string_view message) {
  ScramClientFinal f;
  size_t p = message.rfind(",p=");
  if (p == std::string_view::npos) return Error{"missing proof"};
  f.withoutProof = std::string(message.substr(0, p));
  auto proof = base64Decode(message.substr(p + 3));
  if (!proof || proof->size() != kScramKeySize) return Error{"malformed proof"};
  f.proof = std::move(*proof);

  auto parts = splitComma(f.withoutProof);
  if (parts.size() < 2 || !hasAttr(parts[0], 'c')) return Error{"missing channel binding"};
  auto cb = base64Decode(parts[0].substr(2));
  if (!cb) return Error{"malformed channel binding"};
  f.channelBinding = std::move(*cb);
  if (!hasAttr(parts[1], 'r')) return Error{"missing nonce"};
  f.nonce = std::string(parts[1].substr(2));
  if (!isValidNonce(f.nonce)) return Error{"malformed nonce"};
  for (size_t i = 2; i < parts.size(); ++i)
    if (parts[i].size() < 2 || parts[i][1] != '=') return Error{"malformed extension"};
  return f;
}

std::string scramAuthMessage(std::string_view clientFirstBare, std::string_view serverFirst,
                             std::string_view clientFinalWithoutProof) {
  std::string m;
  m.reserve(clientFirstBare.size() + serverFirst.size() + clientFinalWithoutProof.size() + 2);
  m.append(clientFirstBare)
      .append(",")
      .append(serverFirst)
      .append(",")
      .append(clientFinalWithoutProof);
  return m;
}

bool scramVerifyProof(const ScramKeys& keys, std::string_view authMessage,
                      std::string_view clientProof) {
  if (clientProof.size() != kScramKeySize || keys.storedKey.size() != kScramKeySize) return false;
  std::string clientSignature = hmacSha256(keys.storedKey, authMessage);
  if (clientSignature.size() != kScramKeySize) return false;
  std::string clientKey = xorBytes(clientProof, clientSignature);
  std::string stored = sha256(clientKey);
  OPENSSL_cleanse(clientKey.data(), clientKey.size());
  return stored.size() == kScramKeySize &&
         CRYPTO_memcmp(stored.data(), keys.storedKey.data(), kScramKeySize) == 0;
}

std::string scramServerSignature(const ScramKeys& keys, std::string_view authMessage) {
  return hmacSha256(keys.serverKey, authMessage);
}

Result<std::string> scramServerFinal(const ScramKeys& keys, const ScramClientFirst& first,
                                     std::string_view serverFirst, const ScramClientFinal& final) {
  if (!hasAttr(serverFirst, 'r')) return Error{"malformed server-first message"};
  std::string_view nonce = serverFirst.substr(2, serverFirst.find(',') - 2);
  if (final.nonce != nonce) return Error{"nonce mismatch"};
  if (final.channelBinding != first.gs2Header) return Error{"channel binding mismatch"};
  std::string auth = scramAuthMessage(first.bare, serverFirst, final.withoutProof);
  if (!scramVerifyProof(keys, auth, final.proof)) return Error{"invalid proof"};
  return "v=" + base64Encode(scramServerSignature(keys, auth));
}

Result<std::string> scramClientProof(std::string_view password, std::string_view salt,
                                     uint32_t iterations, std::string_view authMessage) {
  auto sp = saltedPassword(password, salt, iterations);
  if (!sp) return sp.error();
  std::string clientKey = hmacSha256(*sp, "Client Key");
  std::string storedKey = sha256(clientKey);
  std::string proof = xorBytes(clientKey, hmacSha256(storedKey, authMessage));
  OPENSSL_cleanse(sp->data(), sp->size());
  OPENSSL_cleanse(clientKey.data(), clientKey.size());
  return proof;
}

}  // namespace yubin::auth
