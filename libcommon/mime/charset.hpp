// mime/charset: conversion of the few charsets mail really uses to UTF-8,
// for RFC 2047 encoded words, RFC 2231 parameter values and text search.
//
// API:
//   Charset charsetFromName(name)      case-insensitive, common aliases;
//                                      Charset::Unknown when not supported.
//   CharsetDecoder(cs).decode(in, out) streaming: bytes in, UTF-8 appended;
//                                      a UTF-8 sequence split across calls
//                                      is completed by the next call;
//                                      finish(out) flushes a dangling one.
//   bool toUtf8(name, bytes, out)      one-shot; false (out untouched) for an
//                                      unknown charset.
// Invalid input never fails: an invalid UTF-8 sequence becomes U+FFFD; the
// five bytes Windows-1252 leaves undefined map to the C1 controls (WHATWG). US-ASCII text carrying
// 8-bit bytes (common in the wild) is read as UTF-8 with the same replacement.
//
// Trust: converts untrusted message bytes; output is at most 3 bytes per
// input byte; no allocation besides the output.
// Standards: RFC 2047 §3 and RFC 2231 §4 (charset names), RFC 3629
// (UTF-8: overlongs, surrogates and code points above U+10FFFF refused),
// ISO-8859-1, ISO-8859-15, Windows-1252 (WHATWG encoding tables).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace yubin::mime {

enum class Charset : uint8_t { Unknown, Utf8, Ascii, Latin1, Latin9, Windows1252 };

Charset charsetFromName(std::string_view name);

class CharsetDecoder {
 public:
  explicit CharsetDecoder(Charset cs) : cs_(cs == Charset::Ascii ? Charset::Utf8 : cs) {}
  void decode(std::string_view in, std::string& out);
  void finish(std::string& out);

 private:
  void decodeUtf8(std::string_view in, std::string& out);
  Charset cs_;
  // A UTF-8 sequence started in an earlier call (at most 3 bytes).
  char pending_[4] = {};
  uint8_t pendingLen_ = 0;
};

bool toUtf8(std::string_view charsetName, std::string_view bytes, std::string& out);

// Appends code point cp as UTF-8 (cp must be a valid scalar value).
void appendUtf8(std::string& out, uint32_t cp);

}  // namespace yubin::mime
