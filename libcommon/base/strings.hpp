// Small string helpers that know nothing about mail.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace yubin {

std::string_view trim(std::string_view s);
std::string toLower(std::string_view s);
bool iequals(std::string_view a, std::string_view b);
bool istartsWith(std::string_view s, std::string_view prefix);
// Splits on any of the separator characters; empty pieces are dropped.
std::vector<std::string> splitAny(std::string_view s, std::string_view seps);
// The lines of text, split at each LF (kept empty lines; no last empty one
// for a final LF; a CR before the LF stays with its line).
std::vector<std::string_view> lines(std::string_view text);
// Strict unsigned decimal: digits only, no sign, no overflow.
std::optional<uint64_t> parseU64(std::string_view s);
std::string base64Encode(std::string_view bytes);
std::optional<std::string> base64Decode(std::string_view text);
std::string hexEncode(std::string_view bytes);
// FNV-1a, 64 bits: a fast, stable, non-cryptographic hash (equal in every
// run and build), for tokens and sharding, never against hostile choices.
uint64_t fnv1a64(std::string_view bytes);

}  // namespace yubin
