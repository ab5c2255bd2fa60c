// libFuzzer target for mrad's IMAP mail session (mail_session.hpp): the
// bytes of a logged-in client fed in pieces to a MailSession over a
// store::MemoryStore (nothing on disk), the harness acting as the glue does:
// output taken after each piece, FETCH and SEARCH transfers pumped with
// produce() in steps of a fuzzed budget, changed() called while idling.
// Between pieces, "another session" may change the mailbox under it (a
// message delivered from outside, or a second MailSession on the same store
// marking and expunging), and the store may be told to fail its next call
// of one operation (failNext), so the error paths run too.
//
// The INBOX starts with a few messages built to reach the FETCH and SEARCH
// code: a multipart with quoted-printable and base64 parts, an attached
// message/rfc822, a NUL in a body (literal8 for BINARY), bare LFs, 8-bit
// header bytes, keywords.
//
// Input: byte 0 = flags (settings and what happens between pieces),
// byte 1 = how the input is cut into pieces, byte 2 = the produce() budget,
// byte 3 = which store operation fails and how; the rest is the client's
// bytes (the first piece arrives as the input pipelined behind the login).
//
// Checked, besides memory safety and leaks: the output stream is whole
// lines (CRLF, no CR, LF or NUL outside literals) and every literal it
// announces ({n} or ~{n} at a line end) is followed by exactly n octets;
// nothing is sent once the session is closing.
// Trust: test code.
#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "base/log.hpp"
#include "mrad/imap/mail_session.hpp"
#include "store/memory_store.hpp"

using namespace yubin;
using namespace yubin::mrad::imap;

namespace {

const char* const kMessages[] = {
    "From: Ann <ann@example.org>\r\nTo: bob@example.org, \"C, D\" <cd@example.net>\r\n"
    "Subject: hello\r\nDate: Tue, 1 Jul 2025 10:00:00 +0000\r\nMessage-ID: <1@x>\r\n"
    "\r\nplain body\r\nsecond line\r\n",

    "From: x@y\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\nMIME-Version: 1.0\r\n"
    "Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\npreamble\r\n--b1\r\n"
    "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n"
    "\r\ncaf=C3=A9 =\r\nsoft break\r\n--b1\r\nContent-Type: application/octet-stream\r\n"
    "Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=a.bin\r\n"
    "\r\nAAECAwQFBgcICQ==\r\n--b1\r\nContent-Type: message/rfc822\r\n\r\n"
    "From: inner@z\r\nSubject: inner\r\nContent-Type: multipart/alternative; boundary=b2\r\n"
    "\r\n--b2\r\nContent-Type: text/plain\r\n\r\ninner text\r\n--b2\r\n"
    "Content-Type: text/html\r\n\r\n<p>x</p>\r\n--b2--\r\n--b1--\r\nepilogue\r\n",

    "Subject: lf only\nFrom: lf@example.org\n\nbody with\nbare LFs\n",

    "Subject: nul\r\nContent-Type: application/octet-stream\r\n"
    "Content-Transfer-Encoding: binary\r\n\r\nzero \0 here\r\n",

    "Subject: \xe6\x97\xa5\xe6\x9c\xac \xff\r\nContent-Type: multipart/mixed\r\n\r\n"
    "no boundary parameter\r\n",

    "",
};
std::string message(size_t i) {
  // The one with a NUL needs its length spelled out (kMessages[3] stops
  // at it).
  if (i == 3) {
    static const char m[] =
        "Subject: nul\r\nContent-Type: application/octet-stream\r\n"
        "Content-Transfer-Encoding: binary\r\n\r\nzero \0 here\r\n";
    return std::string(m, sizeof m - 1);
  }
  return kMessages[i];
}

const char* const kFaultOps[] = {
    "list",   "subscriptions", "subscribe",    "create",        "remove", "rename",
    "status", "select",        "beginAppend",  "append.write",  "append.commit",
    "sync",   "open",          "setFlags",     "expunge",       "copy",
};
const int kFaultErrnos[] = {EIO, ENOSPC, EDQUOT, ENOENT, EEXIST, EACCES, EINVAL, EROFS};

// The response stream: CRLF lines; a line ending in {n} (or ~{n}) is
// followed by n octets of literal, then the line goes on.
void checkStream(std::string_view out) {
  size_t i = 0;
  while (i < out.size()) {
    size_t end = out.find("\r\n", i);
    if (end == std::string_view::npos) std::abort();  // a partial line
    std::string_view line = out.substr(i, end - i);
    for (char c : line)
      if (c == '\r' || c == '\n' || c == '\0') std::abort();
    i = end + 2;
    if (line.empty() || line.back() != '}') continue;
    size_t open = line.rfind('{');
    if (open == std::string_view::npos) continue;
    std::string_view digits = line.substr(open + 1, line.size() - open - 2);
    if (!digits.empty() && digits.back() == '+') std::abort();  // a server never sends {n+}
    if (digits.empty() || digits.size() > 19) continue;
    uint64_t n = 0;
    bool number = true;
    for (char c : digits) {
      if (c < '0' || c > '9') {
        number = false;
        break;
      }
      n = n * 10 + static_cast<uint64_t>(c - '0');
    }
    if (!number) continue;
    if (n > out.size() - i) std::abort();  // literal cut short
    i += n;
    // What follows a literal is the rest of its line, never nothing.
    if (i == out.size()) std::abort();
  }
}

struct Pieces {
  std::string_view in;
  uint8_t seed;
  size_t pos = 0, step = 0;
  bool done() const { return pos >= in.size(); }
  std::string_view next() {
    size_t n = seed == 0 ? in.size() : 1 + (seed * 31 + step * 7) % 97;
    n = std::min(n, in.size() - pos);
    std::string_view p = in.substr(pos, n);
    pos += n;
    ++step;
    return p;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The session logs storage failures; only errors are kept.
  static const bool quiet = (logInit("fuzz", LogTarget::Stderr, LogLevel::Error), true);
  (void)quiet;
  if (size < 4 || size > 64 * 1024) return 0;
  const uint8_t flags = data[0], pieceSeed = data[1], budgetByte = data[2], fault = data[3];
  std::string_view in(reinterpret_cast<const char*>(data) + 4, size - 4);

  auto storeData = std::make_shared<store::MemoryStoreData>(true);
  storeData->readChunk = 1 + (flags & 0x07) * 5;
  if (flags & 0x08) storeData->maxKeywords = 2;
  store::MemoryStore st(storeData);
  int64_t date = 1751364000;  // fixed dates: runs are reproducible
  for (size_t i = 0; i < sizeof kMessages / sizeof kMessages[0]; ++i) {
    store::Flags f;
    if (i == 1) f.keywords = {"$Forwarded", "work"};
    if (i == 2) f.system = store::kFlagSeen;
    (void)st.deliver("INBOX", message(i), f, date + static_cast<int64_t>(i) * 86400);
  }
  (void)st.deliver("Archive", message(0), {}, date);

  MailSettings ms;
  ms.user = "fuzz@example.org";
  ms.logId = "fuzz";
  if (flags & 0x10) {
    // Small limits, so that the refusals are reached often.
    ms.parser.maxLine = 200;
    ms.parser.maxCommand = 2000;
    ms.parser.maxLiteral = 100;
    ms.parser.maxMessage = 300;
    ms.parser.maxDepth = 4;
    ms.parser.maxItems = 20;
    ms.maxBadCommands = 3;
    ms.parser.literalPlus = yubin::imap::LiteralPlus::Minus;
  } else {
    ms.parser.maxMessage = 16 * 1024;
  }
  ms.parser.utf8 = (flags & 0x20) != 0;
  const bool outsideChanges = (flags & 0x40) != 0;
  const bool injectFault = (flags & 0x80) != 0;
  const size_t budget = 1 + static_cast<size_t>(budgetByte) * 37;

  MailSession s(st, ms);
  std::string out;
  Pieces p{in, pieceSeed};
  auto pump = [&] {
    while (s.producing()) {
      s.produce(budget);
      out += s.takeOutput();
    }
    out += s.takeOutput();
  };

  std::string_view first = p.done() ? std::string_view() : p.next();
  s.start("L", first);
  pump();

  // A second session on the same store, for changes made "elsewhere".
  store::MemoryStore other(storeData);
  std::unique_ptr<MailSession> elsewhere;

  while (!p.done() && !s.closing()) {
    if (injectFault && p.step % 3 == 1)
      storeData->failNext(kFaultOps[fault & 0x0f], kFaultErrnos[(fault >> 4) & 0x07]);
    s.feed(p.next());
    pump();
    if (outsideChanges) {
      switch (p.step % 5) {
        case 1:
          (void)st.deliver("INBOX", message(p.step % 6));
          break;
        case 3:
          if (!elsewhere) {
            elsewhere = std::make_unique<MailSession>(other, MailSettings{});
            elsewhere->start("x", "x1 SELECT INBOX\r\n");
          }
          elsewhere->feed("x2 STORE 1 +FLAGS (\\Deleted \\Answered)\r\nx3 EXPUNGE\r\n");
          while (elsewhere->producing()) elsewhere->produce(4096);
          (void)elsewhere->takeOutput();
          break;
        default:
          break;
      }
      if (s.changeFd() >= 0 || s.idling()) s.changed();
      pump();
    }
  }
  if (s.closing()) {
    // Nothing more once the session has given up or logged out.
    s.feed("z NOOP\r\n");
    if (s.producing()) std::abort();
    if (!s.takeOutput().empty()) std::abort();
  }
  checkStream(out);
  return 0;
}
