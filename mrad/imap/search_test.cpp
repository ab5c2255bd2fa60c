// Tests of mrad/imap/search: every SEARCH key matching and not matching,
// text search through RFC 2047 words, quoted-printable, base64, charsets,
// multipart/alternative and message/rfc822 attachments, the corpus of
// libcommon/mime/testdata, date edges, "$" and "*", the evaluation order
// (a message whose info decides is never read; header() and whole() at
// most once), and hostile messages. Keys are written as IMAP text and
// parsed by the real command parser.
// Trust: test code.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "base/strings.hpp"
#include "imap/parser.hpp"
#include "mrad/imap/search.hpp"

using namespace yubin;
using namespace yubin::mrad::imap;

namespace {

// A message held in memory; counts and optionally forbids the reads.
class FakeMessage : public SearchMessage {
 public:
  FakeMessage(std::string text, store::MessageInfo info, uint32_t seq = 1)
      : text_(std::move(text)), info_(std::move(info)), seq_(seq) {}
  uint32_t seq() const override { return seq_; }
  const store::MessageInfo& info() const override { return info_; }
  Result<std::string_view> header() override {
    ++headerCalls;
    if (forbidIo) FAIL("header() read although the message info decides");
    if (fail) return Error{"read failed", 5};
    const std::string_view t(text_);
    size_t end = t.size();
    for (size_t i = 0; i < t.size(); ++i) {
      if (t[i] != '\n') continue;
      if (i + 1 < t.size() && t[i + 1] == '\n') { end = i + 2; break; }
      if (i + 2 < t.size() && t[i + 1] == '\r' && t[i + 2] == '\n') { end = i + 3; break; }
    }
    return t.substr(0, end);
  }
  Result<std::string_view> whole() override {
    ++wholeCalls;
    if (forbidIo) FAIL("whole() read although the message info or header decides");
    if (fail) return Error{"read failed", 5};
    return std::string_view(text_);
  }
  HeaderCache* headerCache() override { return cache; }
  bool forbidIo = false;
  bool fail = false;
  int headerCalls = 0;
  int wholeCalls = 0;
  HeaderCache* cache = nullptr;
  store::MessageInfo& mutableInfo() { return info_; }

 private:
  std::string text_;
  store::MessageInfo info_;
  uint32_t seq_;
};

// The key of "T SEARCH <keys>" (or "T UID SEARCH" when uid).
yubin::imap::SearchArgs parseSearch(const std::string& keys) {
  yubin::imap::ParserSettings ps;
  ps.utf8 = true;
  yubin::imap::Parser p(ps);
  p.feed("T SEARCH " + keys + "\r\n");
  auto ev = p.next();
  auto* cmd = std::get_if<yubin::imap::Command>(&ev);
  if (!cmd) {
    auto* err = std::get_if<yubin::imap::ParseError>(&ev);
    FAIL("does not parse: " << keys << ": " << (err ? err->text : "?"));
  }
  return std::get<yubin::imap::SearchArgs>(cmd->args);
}

SearchContext defaultCtx() { return SearchContext{10, 100, 1700000000, false}; }

bool check(const std::string& keys, SearchMessage& m, SearchContext ctx = defaultCtx(),
           const std::vector<uint32_t>* saved = nullptr) {
  auto r = matches(parseSearch(keys).key, m, ctx, saved);
  REQUIRE(r.ok());
  return *r;
}

store::MessageInfo infoOf(uint32_t uid, uint8_t flags = 0, uint64_t size = 1000,
                          int64_t date = 1700000000) {
  store::MessageInfo i;
  i.uid = uid;
  i.flags.system = flags;
  i.size = size;
  i.internalDate = date;
  return i;
}

std::string readTestFile(const std::string& name) {
  std::ifstream in(std::filesystem::path(MIME_TESTDATA) / name, std::ios::binary);
  REQUIRE(in);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

struct Case {
  std::string keys;
  bool expected;
};

void runTable(SearchMessage& m, const std::vector<Case>& cases,
              SearchContext ctx = defaultCtx(), const std::vector<uint32_t>* saved = nullptr) {
  for (const auto& c : cases) {
    INFO("SEARCH " << c.keys);
    CHECK(check(c.keys, m, ctx, saved) == c.expected);
  }
}

}  // namespace

TEST_CASE("search: CHARSET") {
  CHECK(checkCharset(std::nullopt).ok());
  for (const char* ok : {"UTF-8", "utf-8", "US-ASCII", "us-ascii", "Utf-8"}) {
    INFO(ok);
    CHECK(checkCharset(std::string(ok)).ok());
  }
  for (const char* bad : {"ISO-8859-1", "UTF8", "", "KOI8-R", "x-unknown"}) {
    INFO(bad);
    auto s = checkCharset(std::string(bad));
    REQUIRE_FALSE(s.ok());
    CHECK(s.error().message.find("charset") != std::string::npos);
  }
  // A hostile charset name is cut and shown printable only.
  auto s = checkCharset(std::string(300, 'a') + "\r\n");
  REQUIRE_FALSE(s.ok());
  CHECK(s.error().message.size() < 100);
  CHECK(s.error().message.find('\r') == std::string::npos);
}

TEST_CASE("search: case folding") {
  const std::vector<std::pair<std::string, std::string>> table = {
      {"Hello WORLD 123", "hello world 123"},
      {"\xC3\x89T\xC3\x89", "\xC3\xA9t\xC3\xA9"},          // ÉTÉ -> été
      {"\xC3\x9F", "\xC3\x9F"},                              // ß unchanged (no "ss")
      {"\xC3\x97", "\xC3\x97"},                              // × is not a letter
      {"\xC5\x81\xC3\x93" "D\xC5\xB9", "\xC5\x82\xC3\xB3" "d\xC5\xBA"},  // ŁÓDŹ -> łódź
      {"\xC5\xB8", "\xC3\xBF"},                              // Ÿ -> ÿ
      {"\xCE\xA3\xCE\x9F\xCE\xA6\xCE\x99\xCE\x91", "\xCF\x83\xCE\xBF\xCF\x86\xCE\xB9\xCE\xB1"},
      {"\xCF\x82", "\xCF\x83"},                              // final sigma
      {"\xD0\x9F\xD0\xA0\xD0\x98\xD0\x92\xD0\x95\xD0\xA2 \xD0\x81",
       "\xD0\xBF\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82 \xD1\x91"},  // ПРИВЕТ Ё
      {"\xE2\x82\xAC\xF0\x9F\x98\x82", "\xE2\x82\xAC\xF0\x9F\x98\x82"},  // 3/4-byte kept
      {std::string("\xC3\x28\xFF\x80 A", 6), std::string("\xC3\x28\xFF\x80 a", 6)},  // invalid
      {std::string("A\0B", 3), std::string("a\0b", 3)},
  };
  for (const auto& [in, out] : table) {
    INFO(in);
    CHECK(foldCase(in) == out);
  }
}

TEST_CASE("search: flag, size, set and internal date keys never read the message") {
  store::MessageInfo info = infoOf(42, store::kFlagSeen | store::kFlagFlagged, 2048);
  info.flags.keywords = {"$Forwarded", "Work"};
  info.recent = true;
  info.modSeq = 7;
  FakeMessage m("Subject: x\r\n\r\nbody\r\n", info, 5);
  m.forbidIo = true;
  runTable(m, {
                  {"ALL", true},
                  {"SEEN", true}, {"UNSEEN", false},
                  {"FLAGGED", true}, {"UNFLAGGED", false},
                  {"ANSWERED", false}, {"UNANSWERED", true},
                  {"DELETED", false}, {"UNDELETED", true},
                  {"DRAFT", false}, {"UNDRAFT", true},
                  {"RECENT", true}, {"OLD", false},
                  {"NEW", false},  // recent but seen
                  {"KEYWORD work", true}, {"KEYWORD $FORWARDED", true},
                  {"KEYWORD Private", false}, {"UNKEYWORD Private", true},
                  {"UNKEYWORD WORK", false},
                  {"LARGER 2047", true}, {"LARGER 2048", false},
                  {"SMALLER 2049", true}, {"SMALLER 2048", false},
                  {"5", true}, {"4", false}, {"1:4,6:*", false}, {"1:*", true},
                  {"*", false}, {"5:3", true}, {"10", false},
                  {"UID 42", true}, {"UID 41,43:*", false}, {"UID 40:45", true},
                  {"UID *", false}, {"UID 50:*", false}, {"UID 30:*", true},
                  {"MODSEQ 7", true}, {"MODSEQ 8", false},
                  {"NOT SEEN", false}, {"NOT NOT SEEN", true},
                  {"OR ANSWERED DRAFT", false}, {"OR ANSWERED SEEN", true},
                  {"(SEEN FLAGGED)", true}, {"(SEEN DRAFT)", false},
                  {"SEEN FLAGGED UID 42 5", true}, {"SEEN FLAGGED UID 42 4", false},
                  {"OR (DRAFT SEEN) (NOT 1:4 LARGER 100)", true},
                  {"NOT (OR DELETED (UNSEEN))", true},
              });
  CHECK(m.headerCalls == 0);
  CHECK(m.wholeCalls == 0);

  // NEW = RECENT and not SEEN; OLD = not RECENT.
  FakeMessage fresh("", infoOf(1), 1);
  fresh.mutableInfo().recent = true;
  fresh.forbidIo = true;
  runTable(fresh, {{"NEW", true}, {"OLD", false}, {"RECENT", true}, {"UNSEEN", true}});
  FakeMessage old("", infoOf(1, store::kFlagAnswered | store::kFlagDeleted | store::kFlagDraft));
  old.forbidIo = true;
  runTable(old, {{"NEW", false}, {"OLD", true}, {"RECENT", false}, {"ANSWERED", true},
                 {"DELETED", true}, {"DRAFT", true}, {"UNSEEN", true}});
}

TEST_CASE("search: * is the message count or the highest UID, n:* always includes it") {
  FakeMessage last("", infoOf(100), 10);
  last.forbidIo = true;
  runTable(last, {{"*", true}, {"UID *", true}, {"20:*", true}, {"UID 200:*", true},
                  {"9", false}, {"UID 99", false}});
  // An empty mailbox has no "*" ("UID *" with maxUid 0 matches nothing).
  SearchContext empty{0, 0, 0, false};
  FakeMessage none("", infoOf(5), 1);
  none.forbidIo = true;
  CHECK_FALSE(check("UID *", none, empty));
  CHECK_FALSE(check("*", none, empty));
}

TEST_CASE("search: $ is the saved result, by UID, in sequence and UID keys") {
  FakeMessage m("", infoOf(42), 3);
  m.forbidIo = true;
  const std::vector<uint32_t> saved = {7, 42, 99};
  const std::vector<uint32_t> other = {7, 41, 99};
  const std::vector<uint32_t> empty;
  runTable(m, {{"$", true}, {"UID $", true}, {"NOT $", false}, {"OR $ DELETED", true}},
           defaultCtx(), &saved);
  runTable(m, {{"$", false}, {"UID $", false}, {"NOT $", true}}, defaultCtx(), &other);
  runTable(m, {{"$", false}, {"UID $", false}}, defaultCtx(), &empty);
  runTable(m, {{"$", false}, {"UID $", false}, {"NOT UID $", true}}, defaultCtx(), nullptr);
}

TEST_CASE("search: BEFORE, ON, SINCE use the internal date's day in UTC") {
  // 2024-03-10 23:59:59 UTC and 2024-03-11 00:00:00 UTC.
  const int64_t lastSecond = 1710115199;
  FakeMessage late("", infoOf(1, 0, 10, lastSecond));
  late.forbidIo = true;
  runTable(late, {{"ON 10-Mar-2024", true}, {"ON 11-Mar-2024", false},
                  {"BEFORE 11-Mar-2024", true}, {"BEFORE 10-Mar-2024", false},
                  {"SINCE 10-Mar-2024", true}, {"SINCE 11-Mar-2024", false},
                  {"SINCE 1-Jan-1970", true}, {"BEFORE 1-Jan-1970", false}});
  FakeMessage midnight("", infoOf(1, 0, 10, lastSecond + 1));
  midnight.forbidIo = true;
  runTable(midnight, {{"ON 11-Mar-2024", true}, {"ON 10-Mar-2024", false},
                      {"SINCE 11-Mar-2024", true}, {"BEFORE 11-Mar-2024", false},
                      {"BEFORE 12-Mar-2024", true}, {"ON \"11-mar-2024\"", true}});
  // Before the epoch: 1969-12-31 23:59:59.
  FakeMessage ancient("", infoOf(1, 0, 10, -1));
  ancient.forbidIo = true;
  runTable(ancient, {{"ON 31-Dec-1969", true}, {"BEFORE 1-Jan-1970", true},
                     {"SINCE 1-Jan-1970", false}});
  // Leap day.
  FakeMessage leap("", infoOf(1, 0, 10, 1709164800));  // 2024-02-29 00:00:00
  leap.forbidIo = true;
  runTable(leap, {{"ON 29-Feb-2024", true}, {"SINCE 1-Mar-2024", false}});
}

TEST_CASE("search: OLDER and YOUNGER count seconds from ctx.now") {
  SearchContext ctx = defaultCtx();
  ctx.now = 1000000;
  FakeMessage m("", infoOf(1, 0, 10, 1000000 - 3600));
  m.forbidIo = true;
  runTable(m, {{"OLDER 3599", true}, {"OLDER 3600", true}, {"OLDER 3601", false},
               {"YOUNGER 3601", true}, {"YOUNGER 3600", true}, {"YOUNGER 3599", false},
               {"OLDER 4294967295", false}, {"YOUNGER 1 OLDER 1", false}},
           ctx);
  // A date in the future (clock skew) is younger than anything.
  FakeMessage future("", infoOf(1, 0, 10, 2000000));
  future.forbidIo = true;
  runTable(future, {{"YOUNGER 1", true}, {"OLDER 1", false}}, ctx);
  // Extreme dates from a hostile mtime do not overflow.
  FakeMessage past("", infoOf(1, 0, 10, INT64_MIN));
  past.forbidIo = true;
  runTable(past, {{"OLDER 4294967295", true}, {"YOUNGER 4294967295", false}}, ctx);
  FakeMessage far("", infoOf(1, 0, 10, INT64_MAX));
  far.forbidIo = true;
  runTable(far, {{"OLDER 1", false}, {"YOUNGER 1", true}}, ctx);
}

TEST_CASE("search: header keys") {
  const std::string msg =
      "From: =?ISO-8859-1?Q?Andr=E9?= Pirard <PIRARD@vm1.ulg.ac.be>\r\n"
      "To: Bob <bob@example.net>, \"Dave, Jr.\" <dave@Example.COM>\r\n"
      "To: second-to@example.org\r\n"
      "Cc: team: one@example.org, =?UTF-8?B?0JjQstCw0L0=?= <ivan@example.ru>;\r\n"
      "Bcc: <@relay1,@relay2:routed@example.org>\r\n"
      "Subject: =?UTF-8?Q?Caf=C3=A9_au_lait?=\r\n"
      " and a folded\r\n"
      "\tcontinuation\r\n"
      "X-Empty:\r\n"
      "X-Spam-Flag: YES\r\n"
      "Date: Mon, 7 Feb 1994 21:52:25 -0800\r\n"
      "\r\n"
      "The body mentions Zebra and bob.\r\n";
  FakeMessage m(msg, infoOf(1));
  runTable(m, {
                  {"FROM \"andr\xC3\xA9\"", true},  // decoded encoded word
                  {"FROM \"ANDR\xC3\x89\"", true},  // folded
                  {"FROM \"Andr\xC3\xA9 Pirard\"", true},
                  {"FROM pirard@vm1.ulg.ac.be", true},
                  {"FROM \"Andr\xC3\xA9 Pirard <pirard@vm1\"", true},
                  {"FROM bob", false},
                  {"FROM \"=?ISO\"", false},  // the encoded form is not searched
                  {"TO bob@example.net", true},
                  {"TO \"dave, jr.\"", true},
                  {"TO dave@example.com", true},
                  {"TO second-to", true},  // a second To: field
                  {"TO andre", false},
                  {"CC team", true},  // group name
                  {"CC \"\xD0\x98\xD0\xB2\xD0\xB0\xD0\xBD\"", true},  // Иван folded to иван
                  {"CC ivan@example.ru", true},
                  {"CC one@example.org", true},
                  {"CC bob", false},
                  {"BCC routed@example.org", true},
                  {"BCC relay3", false},
                  {"SUBJECT \"caf\xC3\xA9 AU\"", true},
                  {"SUBJECT \"folded\tcontinuation\"", true},  // unfolded, blanks kept
                  {"SUBJECT \"and a folded\"", true},
                  {"SUBJECT zebra", false},
                  {"SUBJECT \"\"", true},  // present
                  {"HEADER X-Spam-Flag yes", true},
                  {"HEADER x-spam-flag \"\"", true},
                  {"HEADER X-Spam-Flag no", false},
                  {"HEADER X-Empty \"\"", true},
                  {"HEADER X-Empty x", false},
                  {"HEADER X-Missing \"\"", false},
                  {"HEADER Subject lait", true},  // decoded too
                  {"HEADER Date \"7 Feb\"", true},
                  {"HEADER \"X-Spam\" yes", false},  // field names compare whole
                  {"NOT HEADER X-Missing \"\"", true},
              });
  // Every header key above parsed the header once per matches() call and
  // never read the whole message.
  CHECK(m.wholeCalls == 0);

  FakeMessage bare("Subject: only\r\n\r\n", infoOf(1));
  runTable(bare, {{"FROM \"\"", false}, {"TO x", false}, {"CC \"\"", false},
                  {"SUBJECT \"\"", true}, {"SUBJECT ONLY", true}});
}

TEST_CASE("search: SENTBEFORE, SENTON, SENTSINCE use the Date: header's own day") {
  struct DateCase {
    std::string date;
    std::string on;  // "" = does not parse
  };
  const std::vector<DateCase> table = {
      {"Mon, 7 Feb 1994 21:52:25 -0800", "7-Feb-1994"},  // 8 Feb in UTC: the header's day counts
      {"7 Feb 1994 21:52:25 -0800", "7-Feb-1994"},
      {"Tue, 01 Jan 2030 00:00:00 +1400", "1-Jan-2030"},
      {"  Sat,\r\n 29 Feb 2020 10:00 GMT (comment, 1 Jan 1999)", "29-Feb-2020"},
      {"(lead 5 Mar 2001) 6 mar 2001 1:2:3 +0000", "6-Mar-2001"},
      {"Thu, 1 January 2015 08:00:00 +0000", "1-Jan-2015"},
      {"1 Jan 99 00:00 EST", "1-Jan-1999"},  // obsolete two-digit years
      {"1 Jan 49 00:00 EST", "1-Jan-2049"},
      {"1 Jan 103 00:00 +0000", "1-Jan-2003"},  // three digits: + 1900
      {"Tue Jan  2 10:00:00 2024", "2-Jan-2024"},  // asctime order
      {"30 Feb 2020 10:00 +0000", ""},
      {"29 Feb 2021 10:00 +0000", ""},
      {"garbage", ""},
      {"", ""},
      {"2024-01-02T10:00:00Z", ""},
      {"0 Jan 2020", ""},
      {"1 Foo 2020", ""},
      {"Jan", ""},
      {"(unterminated 1 Jan 2020", ""},
  };
  for (const auto& c : table) {
    INFO("Date: " << c.date);
    FakeMessage m("Subject: d\r\nDate: " + c.date + "\r\n\r\nx\r\n", infoOf(1));
    if (c.on.empty()) {
      CHECK_FALSE(check("SENTON 1-Jan-2020", m));
      CHECK_FALSE(check("SENTBEFORE 1-Jan-9999", m));
      CHECK_FALSE(check("SENTSINCE 1-Jan-1900", m));
      CHECK(check("NOT SENTSINCE 1-Jan-1900", m));
      continue;
    }
    CHECK(check("SENTON " + c.on, m));
    CHECK(check("SENTSINCE " + c.on, m));
    CHECK_FALSE(check("SENTBEFORE " + c.on, m));
    auto d = yubin::imap::parseDate(c.on);
    REQUIRE(d.ok());
    const int64_t day = yubin::imap::daysFromCivil(*d);
    const auto next = yubin::imap::dateTimeFromUnix((day + 1) * 86400).date;
    const auto prev = yubin::imap::dateTimeFromUnix((day - 1) * 86400).date;
    CHECK(check("SENTBEFORE " + yubin::imap::formatDate(next), m));
    CHECK_FALSE(check("SENTON " + yubin::imap::formatDate(next), m));
    CHECK_FALSE(check("SENTON " + yubin::imap::formatDate(prev), m));
    CHECK_FALSE(check("SENTSINCE " + yubin::imap::formatDate(next), m));
    CHECK(check("SENTSINCE " + yubin::imap::formatDate(prev), m));
  }
  // No Date: at all; only the first Date: counts.
  FakeMessage none("Subject: d\r\n\r\nx\r\n", infoOf(1));
  CHECK_FALSE(check("SENTSINCE 1-Jan-1900", none));
  FakeMessage twice("Date: bad\r\nDate: 1 Jan 2020 00:00 +0000\r\n\r\n", infoOf(1));
  CHECK_FALSE(check("SENTON 1-Jan-2020", twice));
}

TEST_CASE("search: BODY and TEXT through transfer encodings and charsets") {
  const std::string qp =
      "Subject: qp\r\n"
      "Content-Type: text/plain; charset=iso-8859-1\r\n"
      "Content-Transfer-Encoding: quoted-printable\r\n"
      "\r\n"
      "Gr=FC=DFe aus K=F6ln, soft=\r\n"
      "break and =3D sign\r\n";
  FakeMessage q(qp, infoOf(1));
  runTable(q, {{"BODY \"Gr\xC3\xBC\xC3\x9F" "e\"", true},     // Grüße
               {"BODY \"GR\xC3\x9C\xC3\x9F" "E AUS\"", true},  // folded ü
               {"BODY \"k\xC3\xB6ln\"", true},
               {"BODY softbreak", true},                       // soft line break removed
               {"BODY \"= sign\"", true},
               {"BODY =3D", false},
               {"BODY Gr=FC", false},
               {"BODY qp", false},                             // the subject is not body
               {"TEXT \"subject: qp\"", true},                 // TEXT has the header
               {"TEXT softbreak", true},
               {"TEXT nowhere", false},
               {"BODY \"\"", true}});

  const std::string b64 =
      "Subject: =?UTF-8?B?w7xiZXI=?=\r\n"
      "Content-Type: text/plain; charset=utf-8\r\n"
      "Content-Transfer-Encoding: base64\r\n"
      "\r\n"
      "0J/RgNC40LLQtdGCLCDQvNC40YAhIGhlbGxvIHdvcmxk\r\n";  // "Привет, мир! hello world"
  FakeMessage b(b64, infoOf(1));
  runTable(b, {{"BODY \"\xD0\xBF\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82\"", true},  // привет
               {"BODY \"HELLO WORLD\"", true},
               {"BODY 0J/RgNC4", false},
               {"TEXT \"\xC3\x9C" "BER\"", true},  // decoded, folded subject
               {"BODY \"\xC3\xBC" "ber\"", false}});

  // Windows-1252 and an unknown charset (ASCII words still found).
  FakeMessage w("Content-Type: text/plain; charset=windows-1252\r\n\r\n\x93quoted\x94 \x80 5\r\n",
                infoOf(1));
  runTable(w, {{"BODY \"\xE2\x80\x9Cquoted\xE2\x80\x9D\"", true}, {"BODY \"\xE2\x82\xAC 5\"", true}});
  FakeMessage u("Content-Type: text/plain; charset=x-klingon\r\n\r\nqapla' batlh\r\n", infoOf(1));
  runTable(u, {{"BODY QAPLA", true}, {"BODY tlh", true}, {"BODY x-klingon", false}});
  // 8-bit UTF-8 without MIME headers at all (us-ascii by default, read as UTF-8).
  FakeMessage raw(readTestFile("eightbit-header.eml"), infoOf(1));
  runTable(raw, {{"BODY \"D\xC3\x89J\xC3\x80 VU\"", true}, {"SUBJECT \"caf\xC3\xA9 \xC3\xBC\"", true},
                 {"FROM \"jos\xC3\xA9\"", true}, {"TEXT \"\xC3\xBC" "ber\"", true}});
}

TEST_CASE("search: non-text parts are skipped; alternatives, nesting and attached messages are searched") {
  FakeMessage nested(readTestFile("nested-multipart.eml"), infoOf(1));
  runTable(nested, {{"BODY \"plain text\"", true},
                    {"BODY <p>html</p>", true},
                    {"BODY iVBORw0KGgo", false},  // image/png
                    {"BODY preamble", false},
                    {"BODY epilogue", false},
                    {"BODY dot.png", false},      // MIME headers of a part are not body text
                    {"TEXT nested", true}});

  FakeMessage fwd(readTestFile("rfc822-in-multipart.eml"), infoOf(1));
  runTable(fwd, {{"BODY \"see attached\"", true},
                 {"BODY \"inner plain\"", true},   // inside message/rfc822 and alternative
                 {"BODY \"INNER ENRICHED\"", true},
                 {"BODY orig@example.com", true},  // the attached message's header
                 {"BODY \"Subject: original\"", true},
                 {"BODY \"Fwd: original\"", false},  // the top header is not BODY
                 {"TEXT \"Fwd: original\"", true},
                 {"FROM orig@example.com", false},   // header keys: the top header only
                 {"SUBJECT fwd", true}});

  // The attached message's header is decoded; its base64 text part too.
  const std::string att =
      "From: a@example.org\r\n"
      "Content-Type: multipart/mixed; boundary=\"==b\"\r\n"
      "\r\n"
      "--==b\r\n"
      "Content-Type: text/plain\r\n"
      "\r\n"
      "see below\r\n"
      "--==b\r\n"
      "Content-Type: message/rfc822\r\n"
      "\r\n"
      "Subject: =?ISO-8859-1?Q?r=E9sum=E9?=\r\n"
      "Content-Type: text/plain; charset=utf-8\r\n"
      "Content-Transfer-Encoding: base64\r\n"
      "\r\n"
      "aW5uZXIgc2VjcmV0\r\n"  // "inner secret"
      "--==b\r\n"
      "Content-Type: application/octet-stream\r\n"
      "Content-Transfer-Encoding: base64\r\n"
      "\r\n"
      "aGlkZGVuIHdvcmQ=\r\n"  // "hidden word"
      "--==b--\r\n";
  FakeMessage a(att, infoOf(1));
  runTable(a, {{"BODY \"inner secret\"", true}, {"BODY \"R\xC3\x89SUM\xC3\x89\"", true},
               {"BODY \"hidden word\"", false}, {"TEXT \"see below\"", true},
               {"BODY aW5uZXIg", false}});

  // Corpus messages: one word from each, and a word that is not there.
  const std::vector<std::tuple<std::string, std::string, bool>> corpus = {
      {"simple.eml", "BODY \"just a line\"", true},
      {"simple.eml", "TEXT \"hello there\"", true},
      {"simple.eml", "CC \"dave, jr.\"", true},
      {"simple.eml", "SENTON 7-Feb-1994", true},
      {"encoded-words.eml", "BODY \"caf\xC3\xA9 soft\"", true},
      {"encoded-words.eml", "SUBJECT \"if you can read this yo\"", true},
      {"encoded-words.eml", "TO \"\xF0\x9F\x98\x82\"", true},
      {"encoded-words.eml", "FROM \"andr\xC3\xA9 pirard\"", true},
      {"digest.eml", "BODY \"subject: first\"", true},  // digest parts are messages
      {"digest.eml", "BODY one", true},
      {"digest.eml", "BODY \"not a message\"", true},
      {"missing-final-boundary.eml", "BODY \"never closed\"", true},
      {"lf-only.eml", "BODY line1", true},
      {"lf-only.eml", "BODY line2", true},
      {"group-syntax.eml", "TO undisclosed-recipients", true},
      {"group-syntax.eml", "CC two", true},
      {"group-syntax.eml", "BCC routed@example.org", true},
      {"rfc2231.eml", "BODY AAAA", false},  // application/pdf
      {"no-headers.eml", "TEXT \"\"", true},
      {"missing-headers.eml", "SENTSINCE 1-Jan-1900", false},
  };
  for (const auto& [file, keys, expected] : corpus) {
    INFO(file << ": SEARCH " << keys);
    FakeMessage m(readTestFile(file), infoOf(1));
    CHECK(check(keys, m) == expected);
  }
}

TEST_CASE("search: a match may straddle decoding chunks but not parts") {
  // 64 KiB chunks: put the needle across the boundary, in base64 too.
  std::string body(65536 - 3, 'x');
  body += " NEEDLE here\r\n";
  FakeMessage plain("Content-Type: text/plain\r\n\r\n" + body, infoOf(1));
  CHECK(check("BODY needle", plain));
  CHECK(check("BODY \"xx needle h\"", plain));

  std::string text(100000, 'y');
  text.replace(70000, 6, "NEEDLE");
  std::string b64;
  const std::string enc = base64Encode(text);
  for (size_t i = 0; i < enc.size(); i += 76) b64 += enc.substr(i, 76) + "\r\n";
  FakeMessage based("Content-Transfer-Encoding: base64\r\n\r\n" + b64, infoOf(1));
  CHECK(check("BODY yneedley", based));
  CHECK_FALSE(check("BODY yneedlez", based));

  // "end" at the end of one part and "start" at the start of the next.
  FakeMessage two("Content-Type: multipart/mixed; boundary=b\r\n\r\n"
                  "--b\r\n\r\nthe end\r\n--b\r\n\r\nstart again\r\n--b--\r\n",
                  infoOf(1));
  CHECK(check("BODY end", two));
  CHECK(check("BODY start", two));
  CHECK_FALSE(check("BODY endstart", two));
  CHECK_FALSE(check("BODY \"end start\"", two));
}

TEST_CASE("search: a decided message is never read; header() and whole() at most once") {
  const std::string msg =
      "From: x@example.org\r\nSubject: hello\r\n\r\nbody text\r\n";
  SECTION("info decides an And before header or body keys") {
    FakeMessage m(msg, infoOf(1));
    m.forbidIo = true;
    for (const char* keys : {"BODY text SEEN", "SUBJECT hello DELETED", "TEXT x FROM y UID 2",
                             "(BODY a (SUBJECT b)) (OR DRAFT FLAGGED)", "NOT ALL BODY q",
                             "SENTON 1-Jan-2000 LARGER 5000", "HEADER X y 2:*"}) {
      INFO(keys);
      CHECK_FALSE(check(keys, m));
    }
    for (const char* keys : {"OR BODY text ALL", "OR SUBJECT hello UNSEEN",
                             "OR (BODY a) OR (SUBJECT b) UID 1", "NOT (BODY a SEEN)",
                             "BODY \"\"", "TEXT \"\" UNSEEN"}) {
      INFO(keys);
      CHECK(check(keys, m));
    }
  }
  SECTION("header keys decide before the body is read") {
    FakeMessage m(msg, infoOf(1));
    CHECK_FALSE(check("BODY text SUBJECT nope", m));
    CHECK(m.headerCalls == 1);
    CHECK(m.wholeCalls == 0);
    CHECK(check("OR BODY zzz FROM example", m));
    CHECK(m.wholeCalls == 0);
  }
  SECTION("several keys read each part once") {
    FakeMessage m(msg, infoOf(1));
    CHECK(check("FROM x SUBJECT hello HEADER subject \"\" NOT CC y BODY body TEXT hello "
                "BODY text SENTBEFORE 1-Jan-2000",
                m) == false);  // no Date: decided before any body key
    CHECK(m.headerCalls == 1);
    CHECK(m.wholeCalls == 0);
    FakeMessage n(msg, infoOf(1));
    CHECK(check("FROM x SUBJECT hello BODY body TEXT hello BODY text", n));
    CHECK(n.headerCalls == 1);
    CHECK(n.wholeCalls == 1);
  }
  SECTION("searchNeeds tells the cost") {
    CHECK(searchNeeds(parseSearch("SEEN UID 1:* OLDER 5").key) == SearchNeeds::Info);
    CHECK(searchNeeds(parseSearch("SEEN OR FROM x ALL").key) == SearchNeeds::Header);
    CHECK(searchNeeds(parseSearch("NOT (SEEN SENTON 1-Jan-2000)").key) == SearchNeeds::Header);
    CHECK(searchNeeds(parseSearch("SEEN NOT TEXT x").key) == SearchNeeds::Whole);
    CHECK(searchNeeds(parseSearch("BODY \"\"").key) == SearchNeeds::Info);
  }
}

TEST_CASE("search: read errors become errors") {
  FakeMessage m("Subject: x\r\n\r\ny\r\n", infoOf(1));
  m.fail = true;
  for (const char* keys : {"SUBJECT x", "BODY y", "TEXT y", "NOT SENTON 1-Jan-2000",
                           "OR SUBJECT x BODY y"}) {
    INFO(keys);
    auto r = matches(parseSearch(keys).key, m, defaultCtx(), nullptr);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message == "read failed");
  }
  // ... unless the info decides first.
  CHECK(check("OR ALL SUBJECT x", m));
  CHECK_FALSE(check("DELETED BODY x", m));
}

TEST_CASE("search: hostile messages") {
  SECTION("broken base64 and quoted-printable") {
    FakeMessage b("Content-Transfer-Encoding: base64\r\n\r\n!!!!aGVs$$bG8=\r\n=====\r\nZZZ\r\n",
                  infoOf(1));
    CHECK(check("BODY hello", b));  // skipped junk, as common servers do
    CHECK_FALSE(check("BODY zzz", b));
    FakeMessage q("Content-Transfer-Encoding: quoted-printable\r\n\r\n=ZZ =4 =\r\n=A=\r\n",
                  infoOf(1));
    CHECK(check("BODY \"=ZZ\"", q));
    CHECK_FALSE(check("BODY nothing", q));
  }
  SECTION("endless nesting") {
    std::string msg = "Content-Type: multipart/mixed; boundary=b0\r\n\r\n";
    for (int i = 1; i < 3000; ++i)
      msg += "--b" + std::to_string(i - 1) + "\r\nContent-Type: multipart/mixed; boundary=b" +
             std::to_string(i) + "\r\n\r\n";
    msg += "--b2999\r\n\r\ndeep text\r\n";
    FakeMessage m(msg, infoOf(1));
    CHECK_FALSE(check("BODY \"deep text\"", m));  // below the depth limit: not searched
    CHECK(check("TEXT multipart", m));
    std::string rfc = "Subject: top\r\n";
    for (int i = 0; i < 3000; ++i) rfc += "Content-Type: message/rfc822\r\n\r\nSubject: s\r\n";
    rfc += "\r\ninnermost\r\n";
    FakeMessage r(rfc, infoOf(1));
    CHECK(check("OR BODY innermost BODY s", r));
  }
  SECTION("huge header lines and no empty line") {
    std::string big = "Subject: " + std::string(2 << 20, 'a') + "needle\r\nX: y\r\n";
    FakeMessage m(big, infoOf(1));
    CHECK_FALSE(check("SUBJECT needle", m));  // beyond the kept bytes
    CHECK(check("SUBJECT aaaa", m));
    CHECK(check("TEXT aaaa", m));
    std::string many;
    for (int i = 0; i < 5000; ++i) many += "X-F" + std::to_string(i) + ": v\r\n";
    many += "Subject: late\r\n\r\nbody\r\n";
    FakeMessage f(many, infoOf(1));
    CHECK_FALSE(check("SUBJECT late", f));  // past maxFields
    CHECK(check("HEADER X-F10 v", f));
    CHECK(check("BODY body", f));
  }
  SECTION("NUL, invalid UTF-8 and broken encoded words") {
    std::string msg("Subject: =?UTF-8?B?/w==?= =?UTF-8?Q?=FF=00?= =?x?q?y?= =?UTF-8?\r\n"
                    "From: <@@@>, \"unterminated\r\n"
                    "Date: (((\r\n"
                    "\r\nA\0B \xFF\xFE caf\xC3\r\n",
                    120);
    FakeMessage m(msg, infoOf(1));
    CHECK_FALSE(check("SUBJECT zzz", m));
    CHECK_FALSE(check("FROM zzz", m));
    CHECK(check("FROM \"\"", m));
    CHECK_FALSE(check("SENTSINCE 1-Jan-1900", m));
    CHECK(check("BODY caf", m));
    CHECK_FALSE(check("BODY zzz", m));
  }
  SECTION("many parts") {
    std::string msg = "Content-Type: multipart/mixed; boundary=b\r\n\r\n";
    for (int i = 0; i < 20000; ++i) msg += "--b\r\n\r\np" + std::to_string(i) + "\r\n";
    msg += "--b--\r\n";
    FakeMessage m(msg, infoOf(1));
    CHECK(check("BODY p10", m));
    CHECK_FALSE(check("BODY p19999", m));  // past the parts limit
  }
  SECTION("the scan stops after kMaxScanBytes of decoded text") {
    std::string line(998, 'a');
    line += "\r\n";
    std::string msg = "Subject: big\r\n\r\n";
    msg.reserve(kMaxScanBytes + 4096);
    while (msg.size() < kMaxScanBytes + 1024) msg += line;
    msg += "needle\r\n";
    FakeMessage m(msg, infoOf(1));
    CHECK_FALSE(check("BODY needle", m));  // beyond the limit
    CHECK(check("BODY aaaa", m));
    CHECK(check("BODY \"big\"", m) == false);
  }
  SECTION("empty and truncated messages") {
    for (const std::string& text : {std::string(), std::string("\r\n"), std::string("Subj"),
                                    std::string("Content-Type: multipart/mixed; boundary=b"),
                                    std::string("Content-Transfer-Encoding: base64\r\n\r\nQ")}) {
      FakeMessage m(text, infoOf(1));
      CHECK_FALSE(check("OR BODY zz OR TEXT zz OR SUBJECT zz SENTON 1-Jan-2000", m));
      CHECK(check("TEXT \"\"", m));
    }
  }
}

// ---- The header cache (header_cache.hpp) ----

namespace {

// A folder's view: messages with sequence numbers 1..n in UID order.
struct View {
  std::vector<std::unique_ptr<FakeMessage>> msgs;
  void add(uint32_t uid, std::string text) {
    msgs.push_back(std::make_unique<FakeMessage>(std::move(text), infoOf(uid),
                                                 static_cast<uint32_t>(msgs.size() + 1)));
  }
  // The view after the message with this UID was expunged (and reported).
  View without(uint32_t uid) const {
    View v;
    for (const auto& m : msgs) {
      if (m->info().uid == uid) continue;
      auto w = m->whole();
      v.add(m->info().uid, std::string(*w));
    }
    return v;
  }
  int headerCalls() const {
    int n = 0;
    for (const auto& m : msgs) n += m->headerCalls;
    return n;
  }
  // The UIDs matching keys, every message looked at in order (as the session).
  std::vector<uint32_t> search(const std::string& keys, HeaderCache* cache) {
    const auto args = parseSearch(keys);
    SearchContext ctx = defaultCtx();
    ctx.maxSeq = static_cast<uint32_t>(msgs.size());
    ctx.maxUid = msgs.empty() ? 0 : msgs.back()->info().uid;
    std::vector<uint32_t> out;
    for (auto& m : msgs) {
      m->cache = cache;
      auto r = matches(args.key, *m, ctx, nullptr);
      REQUIRE(r.ok());
      if (*r) out.push_back(m->info().uid);
    }
    return out;
  }
};

std::string cacheMsg(int i) {
  const std::string n = std::to_string(i);
  return "From: Sender " + n + " <s" + n + "@example.org>\r\n"
         "To: r" + n + "@example.net\r\n" +
         (i % 3 == 0 ? "Cc: copy@example.com\r\n" : "") +
         "Subject: =?UTF-8?Q?note_" + n + (i % 5 == 0 ? "_rare" : "") + "?=\r\n"
         "X-Tag: t" + std::to_string(i % 4) + "\r\n"
         "Status: RO\r\n"
         "Date: " + std::to_string(1 + i % 28) + " Feb 2024 10:00:00 +0000\r\n"
         "\r\n"
         "body of " + n + " rare\r\n";
}

View cacheView(int n, uint32_t firstUid = 1) {
  View v;
  for (int i = 0; i < n; ++i) v.add(firstUid + static_cast<uint32_t>(i) * 2, cacheMsg(i));
  return v;
}

}  // namespace

TEST_CASE("header cache: a second search reads no message and answers the same") {
  const std::vector<std::string> keys = {
      "SUBJECT rare", "FROM \"sender 7\"", "FROM s3@example.org", "TO r4@", "CC copy",
      "BCC x", "HEADER X-Tag t2", "HEADER x-tag \"\"", "SENTON 3-Feb-2024",
      "SENTSINCE 20-Feb-2024", "OR SUBJECT note_1 HEADER X-TAG t0", "NOT SUBJECT rare",
      "SUBJECT rare BODY rare", "HEADER Missing \"\""};
  for (const auto& k : keys) {
    INFO("SEARCH " << k);
    View plain = cacheView(40);
    const auto expected = plain.search(k, nullptr);
    View v = cacheView(40);
    HeaderCache cache;
    CHECK(v.search(k, &cache) == expected);
    const int first = v.headerCalls();
    CHECK(first <= 40);
    CHECK(v.search(k, &cache) == expected);
    CHECK(v.headerCalls() == first);  // nothing read again
    CHECK(cache.entries() == 40);
    CHECK(cache.stats().hits >= 40);
  }
}

TEST_CASE("header cache: another session's view shares the entries") {
  View a = cacheView(30);
  View b = cacheView(30);
  HeaderCache cache;
  const auto r = a.search("SUBJECT rare", &cache);
  CHECK(r == std::vector<uint32_t>{1, 11, 21, 31, 41, 51});
  CHECK(b.search("SUBJECT rare", &cache) == r);
  CHECK(b.headerCalls() == 0);
}

TEST_CASE("header cache: a new message is read once") {
  View v = cacheView(20);
  HeaderCache cache;
  v.search("SUBJECT rare", &cache);
  CHECK(v.headerCalls() == 20);
  v.add(1000, cacheMsg(25));  // rare
  CHECK(v.search("SUBJECT rare", &cache) == std::vector<uint32_t>{1, 11, 21, 31, 1000});
  CHECK(v.headerCalls() == 21);
  CHECK(v.search("SUBJECT rare", &cache).size() == 5);
  CHECK(v.headerCalls() == 21);
  CHECK(cache.entries() == 21);
}

TEST_CASE("header cache: expunged messages leave the cache") {
  HeaderCache cache;
  View v = cacheView(10);  // UIDs 1, 3, ..., 19
  v.search("FROM sender", &cache);
  CHECK(cache.entries() == 10);
  const size_t full = cache.bytes();
  SECTION("one in the middle") {
    View w = v.without(7);
    CHECK(w.search("FROM sender", &cache).size() == 9);
    CHECK(w.headerCalls() == 0);
    CHECK(cache.entries() == 9);
    CHECK(cache.stats().dropped == 1);
    CHECK(cache.bytes() < full);
  }
  SECTION("the first and several in a row") {
    View w = v.without(1).without(9).without(11).without(13);
    CHECK(w.search("SUBJECT note", &cache).size() == 6);  // a new field: read once more
    CHECK(cache.entries() == 6);
    CHECK(w.search("SUBJECT note FROM sender", &cache).size() == 6);
    CHECK(w.headerCalls() == 6);
  }
  SECTION("a key that the info decides still sweeps") {
    View w = v.without(5);
    CHECK(w.search("ALL", &cache).size() == 9);
    CHECK(cache.entries() == 9);
  }
  SECTION("messages not looked at in a row drop nothing") {
    View w = v.without(5);
    const auto args = parseSearch("FROM sender");
    SearchContext ctx = defaultCtx();
    ctx.maxSeq = 9;
    ctx.maxUid = 19;
    for (size_t i : {1u, 3u, 5u, 7u}) {  // seqs 2, 4, 6, 8: never consecutive
      w.msgs[i]->cache = &cache;
      REQUIRE(matches(args.key, *w.msgs[i], ctx, nullptr).ok());
    }
    CHECK(cache.entries() == 10);
  }
}

TEST_CASE("header cache: memory stays within the budget") {
  View v = cacheView(200);
  View plain = cacheView(200);
  HeaderCache cache(4096);
  const auto expected = plain.search("SUBJECT rare", nullptr);
  CHECK(v.search("SUBJECT rare", &cache) == expected);
  CHECK(cache.bytes() <= 4096);
  CHECK(cache.entries() > 0);
  CHECK(cache.entries() < 200);
  CHECK(cache.stats().refused > 0);
  const int before = v.headerCalls();
  CHECK(v.search("SUBJECT rare", &cache) == expected);
  // Only the messages left out are read again.
  CHECK(v.headerCalls() - before == static_cast<int>(200 - cache.entries()));
  SECTION("a huge field is refused, not truncated") {
    HeaderCache small(1024);
    View h;
    h.add(1, "Subject: " + std::string(5000, 'x') + " rare\r\n\r\n");
    CHECK(h.search("SUBJECT rare", &small) == std::vector<uint32_t>{1});
    CHECK(small.entries() == 0);
    CHECK(small.bytes() == 0);
    CHECK(h.search("SUBJECT rare", &small) == std::vector<uint32_t>{1});
    CHECK(h.headerCalls() == 2);
  }
}

TEST_CASE("header cache: mbox state fields and too many names are read, not cached") {
  View v = cacheView(10);
  View plain = cacheView(10);
  HeaderCache cache;
  SECTION("Status and X-UID") {
    for (const char* k : {"HEADER Status RO", "HEADER X-UID 1", "SUBJECT note HEADER x-status q"}) {
      INFO(k);
      CHECK(v.search(k, &cache) == plain.search(k, nullptr));
    }
    CHECK(v.headerCalls() == 30);
    CHECK(cache.entries() == 0);
  }
  SECTION("past kMaxCachedFields") {
    for (size_t i = 0; i < kMaxCachedFields; ++i)
      v.search("HEADER X-F" + std::to_string(i) + " a", &cache);
    CHECK(cache.trackedFields().size() == kMaxCachedFields);
    const int before = v.headerCalls();
    CHECK(v.search("HEADER X-Tag t1", &cache) == plain.search("HEADER X-Tag t1", nullptr));
    CHECK(v.search("HEADER X-Tag t1", &cache).size() == 3);
    CHECK(v.headerCalls() - before == 20);  // read both times
    CHECK(v.search("HEADER X-F3 a", &cache).empty());
    CHECK(v.headerCalls() - before == 20);  // a tracked one still cached
  }
}

TEST_CASE("header cache: field names of a key") {
  CHECK(searchFields(parseSearch("SEEN").key).empty());
  CHECK(searchFields(parseSearch("SUBJECT a OR FROM b HEADER X-Y c").key) ==
        FieldNames{"subject", "from", "x-y"});
  CHECK(searchFields(parseSearch("NOT (SENTON 1-Jan-2000 SENTBEFORE 1-Jan-2001) TO a CC b "
                                 "BCC c HEADER SUBJECT d BODY e")
                         .key) == FieldNames{"date", "to", "cc", "bcc", "subject"});
}

TEST_CASE("header cache: the registry") {
  HeaderCaches reg(1 << 20, 2);
  auto a = reg.forFolder("alice", "INBOX", 7);
  CHECK(reg.forFolder("alice", "INBOX", 7) == a);
  CHECK(reg.forFolder("bob", "INBOX", 7) != a);
  CHECK(reg.forFolder("alice", "INBOX.x", 7) != a);
  auto b = reg.forFolder("alice", "INBOX", 8);  // a new UIDVALIDITY replaces the old
  CHECK(b != a);
  CHECK(reg.forFolder("alice", "INBOX", 8) == b);
  a.reset();
  b.reset();
  for (int i = 0; i < 5; ++i) reg.forFolder("u", "f" + std::to_string(i), 1);
  CHECK(reg.folders() == 3);  // idle folders kept: 2, and the one last asked for
  auto held = reg.forFolder("u", "held", 1);
  for (int i = 0; i < 5; ++i) reg.forFolder("v", "f" + std::to_string(i), 1);
  CHECK(reg.folders() == 4);  // plus the one a session holds
  CHECK(reg.forFolder("u", "held", 1) == held);
  CHECK(&processHeaderCaches() == &processHeaderCaches());
}

TEST_CASE("header cache: rendered envelopes, per UTF-8 form, beside the header fields") {
  HeaderCache cache;
  std::string out = "x ";
  CHECK_FALSE(cache.envelope(5, false, out));
  cache.storeEnvelope(5, false, "(NIL \"s\" NIL NIL NIL NIL NIL NIL NIL NIL)");
  CHECK(cache.envelope(5, false, out));
  CHECK(out == "x (NIL \"s\" NIL NIL NIL NIL NIL NIL NIL NIL)");
  CHECK_FALSE(cache.envelope(5, true, out));  // the other form is rendered anew
  CHECK(cache.stats().envelopeHits == 1);
  CHECK(cache.stats().envelopeMisses == 2);
  const size_t withEnvelope = cache.bytes();
  CHECK(withEnvelope > 0);

  // A search's fields join the entry and keep its envelope; the envelope
  // alone answers no field lookup.
  std::vector<mime::HeaderField> fields;
  CHECK_FALSE(cache.lookup(5, {"subject"}, fields));
  cache.fill(5, {{"Subject", "a subject past the short-string size"}, {"X-Other", "o"}},
             {"subject"});
  CHECK(cache.lookup(5, {"subject"}, fields));
  REQUIRE(fields.size() == 1);
  CHECK(fields[0].value == "a subject past the short-string size");
  out.clear();
  CHECK(cache.envelope(5, false, out));
  CHECK(out == "(NIL \"s\" NIL NIL NIL NIL NIL NIL NIL NIL)");
  CHECK(cache.bytes() > withEnvelope);
  // And an envelope stored later keeps the fields.
  cache.storeEnvelope(5, true, "(NIL \"\xc3\xa9\" NIL NIL NIL NIL NIL NIL NIL NIL)");
  CHECK(cache.lookup(5, {"subject"}, fields));
  out.clear();
  CHECK(cache.envelope(5, true, out));
  CHECK_FALSE(cache.envelope(5, false, out));
  CHECK(cache.entries() == 1);

  SECTION("expunged: dropped with the entry") {
    cache.dropBetween(4, 6);
    CHECK(cache.entries() == 0);
    CHECK(cache.bytes() == 0);
    CHECK_FALSE(cache.envelope(5, true, out));
  }
  SECTION("over the budget: not kept") {
    HeaderCache small(512);
    small.storeEnvelope(1, false, std::string(1000, 'e'));
    CHECK(small.entries() == 0);
    CHECK(small.bytes() == 0);
    CHECK(small.stats().refused == 1);
    CHECK_FALSE(small.envelope(1, false, out));
  }
}

TEST_CASE("header cache: lookups in any order and drops agree with a plain set") {
  // The cache starts its lookups from the last entry found (FETCH and
  // SEARCH walk in UID order); any other order must find the same.
  std::mt19937 rng(7);
  HeaderCache cache;
  std::set<uint32_t> ref;
  std::string out;
  for (int round = 0; round < 3000; ++round) {
    const uint32_t uid = 1 + rng() % 400;
    switch (rng() % 4) {
      case 0:
      case 1:
        cache.storeEnvelope(uid, false, "(env " + std::to_string(uid) + ")");
        ref.insert(uid);
        break;
      case 2: {
        const uint32_t next = uid + 1 + rng() % 20;
        cache.dropBetween(uid, next);
        ref.erase(ref.upper_bound(uid), ref.lower_bound(next));
        break;
      }
      default:
        for (uint32_t u = uid; u < uid + 10; ++u) {  // a short walk upwards
          out.clear();
          REQUIRE(cache.envelope(u, false, out) == (ref.count(u) == 1));
          if (ref.count(u)) REQUIRE(out == "(env " + std::to_string(u) + ")");
        }
    }
    REQUIRE(cache.entries() == ref.size());
  }
}

TEST_CASE("header keys: plain one-line values, folded ones and encoded words match alike") {
  // One-line values without encoded words are searched as they stand
  // (trimmed); the others unfolded and decoded first: the same answers.
  FakeMessage plain("Subject:   Hello World  \r\nX-Note: \tTabbed\r\n\r\nbody\r\n", infoOf(1));
  CHECK(check("SUBJECT \"hello world\"", plain));
  CHECK(check("SUBJECT WORLD", plain));
  CHECK_FALSE(check("SUBJECT \"world  \"", plain));  // outer blanks are not part of the value
  CHECK_FALSE(check("SUBJECT \"  hello\"", plain));
  CHECK(check("HEADER X-Note tabbed", plain));
  CHECK_FALSE(check("HEADER X-Note \"\ttabbed\"", plain));
  FakeMessage folded("Subject: a long\r\n  folded line\r\n\r\nbody\r\n", infoOf(2));
  CHECK(check("SUBJECT \"long  folded\"", folded));
  CHECK(check("SUBJECT \"folded line\"", folded));
  FakeMessage encoded("Subject: =?UTF-8?Q?Caf=C3=A9?= au lait\r\n\r\nbody\r\n", infoOf(3));
  CHECK(check("SUBJECT \"CAFÉ AU\"", encoded));
  CHECK_FALSE(check("SUBJECT \"=?UTF-8\"", encoded));
  FakeMessage literal("Subject: a =? b\r\n\r\nbody\r\n", infoOf(4));
  CHECK(check("SUBJECT \"a =? b\"", literal));
}
