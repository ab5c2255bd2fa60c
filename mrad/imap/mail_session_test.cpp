// Tests of the IMAP mail session (mail_session.hpp, fetch.hpp) over
// MemoryStore: every command with the exact lines it answers, fed whole and
// one byte at a time; expunge rules with two sessions on one store; IDLE;
// APPEND then FETCH byte for byte; partial fetch edges; BODYSTRUCTURE of a
// multipart from libcommon/mime/testdata; streaming with produce(); an
// APPEND waiting for its commit while another session is answered (a
// runner the test drives); hostile input.
// Trust: test code.
#include "mrad/imap/mail_session.hpp"
#include "mrad/imap/header_cache.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "store/append_commit_testing.hpp"
#include "store/maildir_store.hpp"
#include "store/mail_store_cases.hpp"  // appendTo
#include "store/memory_store.hpp"
#include "store/test_util.hpp"         // TempDir

namespace yubin::mrad::imap {
namespace {

std::string readTestdata(const std::string& name) {
  std::ifstream f(std::string(MIME_TESTDATA) + "/" + name, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// The line of a .expected file that starts with `prefix`.
std::string expectedLine(const std::string& name, const std::string& prefix) {
  std::istringstream in(readTestdata(name));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(prefix, 0) == 0) return line;
  }
  return "";
}

std::string crlf(std::string_view lf) {
  std::string out;
  for (char c : lf) {
    if (c == '\n') out += '\r';
    out += c;
  }
  return out;
}

const char* const kCaps =
    "IMAP4rev1 IMAP4rev2 SASL-IR ID ENABLE IDLE LITERAL+ NAMESPACE UIDPLUS MOVE UNSELECT "
    "CHILDREN LIST-EXTENDED LIST-STATUS SPECIAL-USE ESEARCH SEARCHRES STATUS=SIZE BINARY "
    "CONDSTORE";

const char* const kSimple = "From: a@b.c\nSubject: hi\n\nbody line\n";  // 39 octets as CRLF

// One session on a store (shared with other rigs when given).
struct Rig {
  explicit Rig(std::shared_ptr<store::MemoryStoreData> d = nullptr, bool bytewise = false,
               MailSettings ms = {})
      : data(d ? std::move(d) : std::make_shared<store::MemoryStoreData>(true)),
        st(data),
        s(st, std::move(ms)),
        byteByByte(bytewise) {
    s.start("L", "");
    (void)s.takeOutput();
  }
  std::string cmd(std::string_view in) {
    if (byteByByte) {
      for (char c : in) {
        s.feed(std::string_view(&c, 1));
        drain();
      }
    } else {
      s.feed(in);
      drain();
    }
    return s.takeOutput();
  }
  void drain() {
    while (s.producing()) s.produce(97);
  }
  uint32_t deliver(const std::string& bytes, const std::string& box = "INBOX") {
    auto r = st.deliver(box, bytes);
    REQUIRE(r);
    return *r;
  }
  uint32_t validity(const std::string& box = "INBOX") { return data->folders[box]->uidValidity; }

  std::shared_ptr<store::MemoryStoreData> data;
  store::MemoryStore st;
  MailSession s;
  bool byteByByte;
};

std::string selectLines(uint32_t exists, uint32_t recent, std::optional<uint32_t> unseen,
                        uint32_t validity, uint32_t next, uint64_t modseq, const char* tag = "s",
                        bool readOnly = false, const std::string& keywords = "") {
  std::string r = "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft" + keywords + ")\r\n";
  r += "* " + std::to_string(exists) + " EXISTS\r\n";
  r += "* " + std::to_string(recent) + " RECENT\r\n";
  if (unseen) r += "* OK [UNSEEN " + std::to_string(*unseen) + "] First unseen message\r\n";
  if (readOnly) {
    r += "* OK [PERMANENTFLAGS ()] No permanent flags permitted\r\n";
  } else {
    r += "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft" + keywords +
         " \\*)] Flags permitted\r\n";
  }
  r += "* OK [UIDVALIDITY " + std::to_string(validity) + "] UIDs valid\r\n";
  r += "* OK [UIDNEXT " + std::to_string(next) + "] Predicted next UID\r\n";
  r += "* OK [HIGHESTMODSEQ " + std::to_string(modseq) + "] Highest\r\n";
  r += std::string(tag) + (readOnly ? " OK [READ-ONLY] EXAMINE completed\r\n"
                                    : " OK [READ-WRITE] SELECT completed\r\n");
  return r;
}

TEST_CASE("start answers the login tag with the capabilities and runs pipelined commands") {
  auto data = std::make_shared<store::MemoryStoreData>(true);
  store::MemoryStore st(data);
  MailSession s(st, {});
  s.start("A001", "a NOOP\r\nb CAPABILITY\r\n");
  CHECK(s.takeOutput() == std::string("A001 OK [CAPABILITY ") + kCaps + "] Logged in\r\n" +
                              "a OK NOOP completed\r\n* CAPABILITY " + kCaps +
                              "\r\nb OK CAPABILITY completed\r\n");
  CHECK_FALSE(s.closing());
  CHECK(s.changeFd() == -1);
  s.feed("c LOGOUT\r\n");
  CHECK(s.takeOutput() == "* BYE Logging out\r\nc OK LOGOUT completed\r\n");
  CHECK(s.closing());
}

TEST_CASE("state checks: selected-state commands without a mailbox, login commands") {
  bool bytewise = GENERATE(false, true);
  Rig r(nullptr, bytewise);
  for (const char* c : {"FETCH 1 FLAGS", "STORE 1 +FLAGS (\\Seen)", "SEARCH ALL", "COPY 1 Trash",
                        "MOVE 1 Trash", "EXPUNGE", "CLOSE", "UNSELECT", "CHECK", "UID FETCH 1 UID",
                        "UID EXPUNGE 1"}) {
    INFO(c);
    CHECK(r.cmd(std::string("t ") + c + "\r\n") == "t BAD No mailbox selected\r\n");
  }
  CHECK(r.cmd("t LOGIN a b\r\n") == "t BAD Already authenticated\r\n");
  CHECK(r.cmd("t STARTTLS\r\n") == "t BAD Already authenticated\r\n");
}

TEST_CASE("SELECT, EXAMINE, re-SELECT, failed SELECT") {
  bool bytewise = GENERATE(false, true);
  Rig r(nullptr, bytewise);
  r.deliver(kSimple);
  r.deliver(kSimple);
  const uint32_t v = r.validity();
  CHECK(r.cmd("s SELECT INBOX\r\n") == selectLines(2, 2, 1, v, 3, 3));
  CHECK(r.s.changeFd() >= 0);
  // A second read-write session does not get \Recent again.
  Rig r2(r.data);
  CHECK(r2.cmd("s SELECT inbox\r\n") == selectLines(2, 0, 1, v, 3, 3));
  CHECK(r2.cmd("e EXAMINE INBOX\r\n") == selectLines(2, 0, 1, v, 3, 3, "e", true));
  // A failed SELECT leaves no mailbox selected.
  CHECK(r2.cmd("f SELECT Nope\r\n") == "f NO [NONEXISTENT] No such mailbox\r\n");
  CHECK(r2.cmd("g FETCH 1 UID\r\n") == "g BAD No mailbox selected\r\n");
  CHECK(r2.s.changeFd() == -1);
  CHECK(r2.cmd("h SELECT \"a..b\"\r\n") == "h BAD Invalid mailbox name\r\n");
}

TEST_CASE("IMAP4rev2: ENABLE, SELECT without RECENT/UNSEEN, OK [CLOSED], LIST line") {
  Rig r;
  r.deliver(kSimple);
  CHECK(r.cmd("e ENABLE IMAP4rev2\r\n") == "* ENABLED IMAP4rev2\r\ne OK ENABLE completed\r\n");
  CHECK(r.cmd("e2 ENABLE IMAP4rev2 QRESYNC\r\n") == "* ENABLED\r\ne2 OK ENABLE completed\r\n");
  const uint32_t v = r.validity();
  std::string sel =
      "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n* 1 EXISTS\r\n"
      "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Flags permitted\r\n"
      "* OK [UIDVALIDITY " + std::to_string(v) + "] UIDs valid\r\n"
      "* OK [UIDNEXT 2] Predicted next UID\r\n"
      "* OK [HIGHESTMODSEQ 2] Highest\r\n"
      "* LIST () \".\" INBOX\r\n"
      "s OK [READ-WRITE] SELECT completed\r\n";
  CHECK(r.cmd("s SELECT INBOX\r\n") == sel);
  CHECK(r.cmd("s SELECT INBOX\r\n") == "* OK [CLOSED] Previous mailbox closed\r\n" + sel);
  // No \Recent, and SEARCH answers with ESEARCH.
  CHECK(r.cmd("f FETCH 1 FLAGS\r\n") == "* 1 FETCH (FLAGS ())\r\nf OK FETCH completed\r\n");
  CHECK(r.cmd("g SEARCH ALL\r\n") == "* ESEARCH (TAG \"g\") ALL 1\r\ng OK SEARCH completed\r\n");
  CHECK(r.cmd("g UID SEARCH DELETED\r\n") == "* ESEARCH (TAG \"g\") UID\r\ng OK SEARCH completed\r\n");
  r.deliver(kSimple);
  CHECK(r.cmd("n NOOP\r\n") == "* 2 EXISTS\r\nn OK NOOP completed\r\n");
  // UTF-8 names are sent as they are.
  CHECK(r.cmd("c CREATE \"Bücher\"\r\n") == "c OK CREATE completed\r\n");
  CHECK(r.cmd("l LIST \"\" B*\r\n") ==
        "* LIST (\\HasNoChildren) \".\" \"Bücher\"\r\nl OK LIST completed\r\n");
}

TEST_CASE("FETCH: FLAGS, UID, RFC822.SIZE, INTERNALDATE, ENVELOPE, BODY, BODYSTRUCTURE") {
  bool bytewise = GENERATE(false, true);
  Rig r(nullptr, bytewise);
  store::Flags f;
  f.system = store::kFlagFlagged | store::kFlagAnswered;
  f.keywords = {"$Label1"};
  REQUIRE(r.st.deliver("INBOX", kSimple, f, 837000000));
  const std::string nested = readTestdata("nested-multipart.eml");
  REQUIRE(r.st.deliver("INBOX", nested, {}, 837000000));
  (void)r.cmd("s SELECT INBOX\r\n");
  CHECK(r.cmd("f FETCH 1:* (FLAGS UID RFC822.SIZE INTERNALDATE)\r\n") ==
        "* 1 FETCH (FLAGS (\\Answered \\Flagged $Label1 \\Recent) UID 1 RFC822.SIZE 39 "
        "INTERNALDATE \"10-Jul-1996 12:00:00 +0000\")\r\n"
        "* 2 FETCH (FLAGS (\\Recent) UID 2 RFC822.SIZE " + std::to_string(nested.size()) +
        " INTERNALDATE \"10-Jul-1996 12:00:00 +0000\")\r\n"
        "f OK FETCH completed\r\n");
  CHECK(r.cmd("f FETCH 2 (ENVELOPE BODY)\r\n") ==
        "* 2 FETCH (" + expectedLine("nested-multipart.expected", "ENVELOPE ") + " " +
        expectedLine("nested-multipart.expected", "BODY ") + ")\r\nf OK FETCH completed\r\n");
  CHECK(r.cmd("f FETCH 2 BODYSTRUCTURE\r\n") ==
        "* 2 FETCH (" + expectedLine("nested-multipart.expected", "BODYSTRUCTURE ") +
        ")\r\nf OK FETCH completed\r\n");
  // The macros; UID FETCH adds UID.
  CHECK(r.cmd("f FETCH 1 FAST\r\n") ==
        "* 1 FETCH (FLAGS (\\Answered \\Flagged $Label1 \\Recent) INTERNALDATE "
        "\"10-Jul-1996 12:00:00 +0000\" RFC822.SIZE 39)\r\nf OK FETCH completed\r\n");
  CHECK(r.cmd("u UID FETCH 2 RFC822.SIZE\r\n") ==
        "* 2 FETCH (UID 2 RFC822.SIZE " + std::to_string(nested.size()) +
        ")\r\nu OK FETCH completed\r\n");
  // UID sets name no message without an error.
  CHECK(r.cmd("u UID FETCH 5:7 FLAGS\r\n") == "u OK FETCH completed\r\n");
  CHECK(r.cmd("u UID FETCH 7:* UID\r\n") == "* 2 FETCH (UID 2)\r\nu OK FETCH completed\r\n");
}

// CRLF for every bare LF (what RFC822.SIZE counts and BODY[] sends).
std::string toCrlf(std::string_view in) {
  std::string out;
  char prev = 0;
  for (char c : in) {
    if (c == '\n' && prev != '\r') out += '\r';
    out += c;
    prev = c;
  }
  return out;
}

TEST_CASE("FETCH over the mime corpus: ENVELOPE, BODY, BODYSTRUCTURE and BODY[] of every message") {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(MIME_TESTDATA)) {
    if (e.path().extension() == ".eml") names.push_back(e.path().stem().string());
  }
  REQUIRE(names.size() >= 15);
  for (const auto& name : names) {
    INFO(name);
    Rig r;
    const std::string msg = readTestdata(name + ".eml");
    r.deliver(msg);
    (void)r.cmd("s SELECT INBOX\r\n");
    // The .expected file holds the three items on lines of their own.
    std::string expected = readTestdata(name + ".expected");
    REQUIRE(!expected.empty());
    expected.pop_back();
    const std::string envelope = expected.substr(0, expected.find("\nBODY "));
    for (const char* item : {"\nBODY ", "\nBODYSTRUCTURE "}) {
      const auto at = expected.find(item);
      REQUIRE(at != std::string::npos);
      expected[at] = ' ';
    }
    CHECK(r.cmd("f FETCH 1 (ENVELOPE BODY BODYSTRUCTURE)\r\n") ==
          "* 1 FETCH (" + expected + ")\r\nf OK FETCH completed\r\n");
    // ENVELOPE alone, in a new session (nothing cached): from the header
    // read alone, the same as from the whole structure.
    Rig fresh;
    fresh.deliver(msg);
    (void)fresh.cmd("s SELECT INBOX\r\n");
    CHECK(fresh.cmd("f FETCH 1 ENVELOPE\r\n") ==
          "* 1 FETCH (" + envelope + ")\r\nf OK FETCH completed\r\n");
    const std::string wire = toCrlf(msg);
    CHECK(r.cmd("f FETCH 1 (RFC822.SIZE BODY.PEEK[])\r\n") ==
          "* 1 FETCH (RFC822.SIZE " + std::to_string(wire.size()) + " BODY[] {" +
              std::to_string(wire.size()) + "}\r\n" + wire + ")\r\nf OK FETCH completed\r\n");
    // The header read alone equals the header the structure finds.
    const auto hdrEnd = wire.find("\r\n\r\n");
    const std::string header = wire.rfind("\r\n", 0) == 0 ? "\r\n"  // starts with the empty line
                               : hdrEnd == std::string::npos ? wire
                                                             : wire.substr(0, hdrEnd + 4);
    CHECK(r.cmd("f FETCH 1 BODY.PEEK[HEADER]\r\n") ==
          "* 1 FETCH (BODY[HEADER] {" + std::to_string(header.size()) + "}\r\n" + header +
              ")\r\nf OK FETCH completed\r\n");
  }
}

// ENVELOPE alone reads the header in pieces of 4 KiB, then 8, 16...: the
// empty line that ends it may fall anywhere, also across two reads, and the
// body after it (a multipart here) must not change the answer.
TEST_CASE("FETCH ENVELOPE alone: headers across read pieces") {
  for (size_t target : {4090u, 4094u, 4095u, 4096u, 4097u, 12287u, 12288u, 70000u}) {
    for (bool crlfEnds : {false, true}) {
      INFO(target << (crlfEnds ? " CRLF" : " LF"));
      const std::string nl = crlfEnds ? "\r\n" : "\n";
      std::string head = "From: Ann <ann@example.org>" + nl + "Subject: pieces" + nl +
                         "Content-Type: multipart/mixed; boundary=b" + nl;
      while (head.size() + 12 < target) head += "X-Pad: " + std::string(40, 'p') + nl;
      head += "X-End: " + std::string(target > head.size() + 9 ? target - head.size() - 9 : 0, 'e');
      head += nl + nl;
      const std::string msg = head + "--b" + nl + "Subject: not this one" + nl + nl + "x" + nl +
                              "--b--" + nl;
      Rig a;
      a.deliver(msg);
      (void)a.cmd("s SELECT INBOX\r\n");
      const std::string alone = a.cmd("f FETCH 1 ENVELOPE\r\n");
      CHECK(alone.find("\"pieces\"") != std::string::npos);
      CHECK(alone.find("not this one") == std::string::npos);
      // The same ENVELOPE as the one from the whole structure.
      const std::string both = a.cmd("f FETCH 1 (ENVELOPE BODY)\r\n");
      const auto body = both.find(" BODY (");
      REQUIRE(body != std::string::npos);
      CHECK(alone == both.substr(0, body) + ")\r\nf OK FETCH completed\r\n");
    }
  }
}

TEST_CASE("FETCH ENVELOPE: kept for the folder, shared by its sessions; expunged ones leave") {
  auto data = std::make_shared<store::MemoryStoreData>(true);
  Rig a(data);
  Rig b(data);
  for (int i = 0; i < 5; ++i) {
    const std::string n = std::to_string(i);
    a.deliver("From: S" + n + " <s" + n + "@example.org>\nSubject: note " + n + "\n\nbody\n");
  }
  (void)a.cmd("s SELECT INBOX\r\n");
  (void)b.cmd("s SELECT INBOX\r\n");
  auto cache = processHeaderCaches().forFolder("", "INBOX", a.validity());
  const std::string first = a.cmd("f FETCH 1:* ENVELOPE\r\n");
  CHECK(first.find("* 5 FETCH (ENVELOPE (NIL \"note 4\" ((\"S4\" NIL \"s4\" \"example.org\"))") !=
        std::string::npos);
  CHECK(cache->entries() == 5);
  CHECK(cache->stats().envelopeMisses == 5);
  // b's FETCH opens no message: an open would fail now, and it is not used.
  data->failNext("open", EIO);
  CHECK(b.cmd("f FETCH 1:* ENVELOPE\r\n") == first);
  CHECK(cache->stats().envelopeHits == 5);
  CHECK_FALSE(data->fault("open").ok());  // still pending
  // With other items, from the same entries.
  CHECK(b.cmd("f FETCH 2 (UID ENVELOPE FLAGS)\r\n")
            .rfind("* 2 FETCH (UID 2 ENVELOPE (NIL \"note 1\" ((\"S1\" NIL \"s1\"", 0) == 0);
  CHECK(cache->stats().envelopeHits == 6);
  // An expunge in a; b sees it at NOOP, then its next FETCH over the
  // folder drops the entry (consecutive sequence numbers, a UID between).
  (void)a.cmd("x STORE 3 +FLAGS.SILENT (\\Deleted)\r\n");
  CHECK(a.cmd("x EXPUNGE\r\n") == "* 3 EXPUNGE\r\nx OK EXPUNGE completed\r\n");
  CHECK(b.cmd("n NOOP\r\n") == "* 3 EXPUNGE\r\nn OK NOOP completed\r\n");
  CHECK(cache->entries() == 5);
  const std::string after = b.cmd("f FETCH 1:* ENVELOPE\r\n");
  CHECK(after.find("note 2") == std::string::npos);
  CHECK(after.find("* 4 FETCH (ENVELOPE (NIL \"note 4\"") != std::string::npos);
  CHECK(cache->entries() == 4);
  CHECK(cache->stats().dropped == 1);
  // A message that could not be read gets NIL fields, which are not kept:
  // the next FETCH reads it again.
  const uint32_t sixth = a.deliver("From: s5@example.org\nSubject: note 5\n\nbody\n");
  (void)a.cmd("n NOOP\r\n");
  data->failNext("open", EIO);
  CHECK(a.cmd("f FETCH 5 ENVELOPE\r\n")
            .rfind("* 5 FETCH (ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL))", 0) == 0);
  std::string out;
  CHECK_FALSE(cache->envelope(sixth, false, out));
  CHECK(a.cmd("f FETCH 5 ENVELOPE\r\n").find("\"note 5\"") != std::string::npos);
  CHECK(cache->envelope(sixth, false, out));
}

TEST_CASE("FETCH body sections: byte-exact, CRLF, partial edges, \\Seen") {
  bool bytewise = GENERATE(false, true);
  Rig r(nullptr, bytewise);
  r.deliver(kSimple);
  const std::string nested = readTestdata("nested-multipart.eml");
  r.deliver(nested);
  (void)r.cmd("s SELECT INBOX\r\n");
  const std::string simple = crlf(kSimple);
  // PEEK keeps \Seen off.
  CHECK(r.cmd("f FETCH 1 BODY.PEEK[]\r\n") ==
        "* 1 FETCH (BODY[] {39}\r\n" + simple + ")\r\nf OK FETCH completed\r\n");
  CHECK(r.cmd("f FETCH 1 BODY.PEEK[HEADER]\r\n") ==
        "* 1 FETCH (BODY[HEADER] {28}\r\nFrom: a@b.c\r\nSubject: hi\r\n\r\n)\r\n"
        "f OK FETCH completed\r\n");
  CHECK(r.cmd("f FETCH 1 (BODY.PEEK[TEXT] RFC822.HEADER)\r\n") ==
        "* 1 FETCH (BODY[TEXT] {11}\r\nbody line\r\n RFC822.HEADER {28}\r\n"
        "From: a@b.c\r\nSubject: hi\r\n\r\n)\r\nf OK FETCH completed\r\n");
  CHECK(r.cmd("f FETCH 1 BODY.PEEK[1]\r\n") ==
        "* 1 FETCH (BODY[1] {11}\r\nbody line\r\n)\r\nf OK FETCH completed\r\n");
  CHECK(r.cmd("f FETCH 1 BODY.PEEK[2]\r\n") == "* 1 FETCH (BODY[2] NIL)\r\nf OK FETCH completed\r\n");
  CHECK(r.cmd("f FETCH 1 BODY.PEEK[HEADER.FIELDS (SUBJECT x-none)]\r\n") ==
        "* 1 FETCH (BODY[HEADER.FIELDS (SUBJECT x-none)] {15}\r\nSubject: hi\r\n\r\n)\r\n"
        "f OK FETCH completed\r\n");
  CHECK(r.cmd("f FETCH 1 BODY.PEEK[HEADER.FIELDS.NOT (Subject)]\r\n") ==
        "* 1 FETCH (BODY[HEADER.FIELDS.NOT (Subject)] {15}\r\nFrom: a@b.c\r\n\r\n)\r\n"
        "f OK FETCH completed\r\n");
  // Partial: start, middle, cut at the end, exactly at the end, past it.
  struct P {
    const char* spec;
    std::string expect;
  };
  for (const P& p : std::vector<P>{
           {"<0.4>", "BODY[]<0> {4}\r\nFrom"},
           {"<6.5>", "BODY[]<6> {5}\r\na@b.c"},
           {"<30.100>", "BODY[]<30> {9}\r\ndy line\r\n"},
           {"<38.1>", "BODY[]<38> {1}\r\n\n"},
           {"<39.1>", "BODY[]<39> \"\""},
           {"<1000.5>", "BODY[]<1000> \"\""},
       }) {
    INFO(p.spec);
    CHECK(r.cmd(std::string("f FETCH 1 BODY.PEEK[]") + p.spec + "\r\n") ==
          "* 1 FETCH (" + p.expect + ")\r\nf OK FETCH completed\r\n");
  }
  // Parts of the multipart: a nested text part, the MIME header, the
  // decoded forms (BINARY, RFC 3516).
  const std::string mime =
      "Content-Type: image/png; name=\"dot.png\"\r\nContent-Transfer-Encoding: base64\r\n"
      "Content-Disposition: attachment; filename=\"dot.png\"\r\nContent-ID: <dot@example.org>\r\n"
      "Content-Description: a dot\r\n\r\n";
  CHECK(r.cmd("f FETCH 2 (BODY.PEEK[1.2] BODY.PEEK[2.MIME])\r\n") ==
        "* 2 FETCH (BODY[1.2] {11}\r\n<p>html</p> BODY[2.MIME] {" + std::to_string(mime.size()) +
        "}\r\n" + mime + ")\r\nf OK FETCH completed\r\n");
  CHECK(r.cmd("f FETCH 2 (BINARY.SIZE[2] BINARY.PEEK[2] BINARY.PEEK[1.1]<6.10>)\r\n") ==
        "* 2 FETCH (BINARY.SIZE[2] 8 BINARY[2] {8}\r\n" + std::string("\x89PNG\r\n\x1a\n", 8) +
        " BINARY[1.1]<6> {4}\r\ntext)\r\nf OK FETCH completed\r\n");
  CHECK(r.cmd("f FETCH 1:2 FLAGS\r\n") ==
        "* 1 FETCH (FLAGS (\\Recent))\r\n* 2 FETCH (FLAGS (\\Recent))\r\nf OK FETCH completed\r\n");
  // Without PEEK, \Seen is set and FLAGS reported with the body.
  CHECK(r.cmd("f FETCH 1 BODY[TEXT]\r\n") ==
        "* 1 FETCH (BODY[TEXT] {11}\r\nbody line\r\n FLAGS (\\Seen \\Recent))\r\n"
        "f OK FETCH completed\r\n");
  CHECK(r.cmd("f FETCH 1 (FLAGS RFC822)\r\n") ==
        "* 1 FETCH (FLAGS (\\Seen \\Recent) RFC822 {39}\r\n" + simple + ")\r\nf OK FETCH completed\r\n");
  CHECK(r.cmd("f FETCH 2 RFC822.TEXT\r\n").find("FLAGS (\\Seen \\Recent))\r\nf OK FETCH completed") !=
        std::string::npos);
}

TEST_CASE("FETCH sections inside an attached message/rfc822") {
  bool bytewise = GENERATE(false, true);
  Rig r(nullptr, bytewise);
  r.deliver(readTestdata("rfc822-in-multipart.eml"));
  (void)r.cmd("s EXAMINE INBOX\r\n");
  const std::string inner =
      "From: orig@example.com\r\nTo: someone@example.net\r\nSubject: original\r\n"
      "Message-ID: <orig@example.com>\r\nContent-Type: multipart/alternative; boundary=b2\r\n\r\n";
  CHECK(r.cmd("f FETCH 1 BODY[2.HEADER]\r\n") ==
        "* 1 FETCH (BODY[2.HEADER] {" + std::to_string(inner.size()) + "}\r\n" + inner +
            ")\r\nf OK FETCH completed\r\n");
  CHECK(r.cmd("f FETCH 1 BODY[2.HEADER.FIELDS (to)]\r\n") ==
        "* 1 FETCH (BODY[2.HEADER.FIELDS (to)] {27}\r\nTo: someone@example.net\r\n\r\n)\r\n"
        "f OK FETCH completed\r\n");
  CHECK(r.cmd("f FETCH 1 (BODY[2.2] BODY[2.1.MIME] BODY[1])\r\n") ==
        "* 1 FETCH (BODY[2.2] {14}\r\ninner enriched BODY[2.1.MIME] {28}\r\n"
        "Content-Type: text/plain\r\n\r\n BODY[1] {12}\r\nsee attached)\r\nf OK FETCH completed\r\n");
  CHECK(r.cmd("f FETCH 1 BODY[2.TEXT]<0.7>\r\n") ==
        "* 1 FETCH (BODY[2.TEXT]<0> {7}\r\n--b2\r\nC)\r\nf OK FETCH completed\r\n");
  // Part 1 of a non-multipart part is the part itself (mime/section.hpp).
  CHECK(r.cmd("f FETCH 1 (BODY[3] BODY[2.3] BODY[1.1.1] BODY[1.2])\r\n") ==
        "* 1 FETCH (BODY[3] NIL BODY[2.3] NIL BODY[1.1.1] {12}\r\nsee attached BODY[1.2] NIL)\r\n"
        "f OK FETCH completed\r\n");
}

TEST_CASE("BINARY: decoded parts, literal8 for NUL, unknown encodings") {
  Rig r;
  r.deliver(
      "Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n"
      "Content-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9 =3D ok=\r\n!\r\n--x\r\n"
      "Content-Transfer-Encoding: base64\r\n\r\nAAEC/w==\r\n--x\r\n"
      "Content-Transfer-Encoding: x-uuencode\r\n\r\nbegin\r\n--x--\r\n");
  (void)r.cmd("s EXAMINE INBOX\r\n");
  CHECK(r.cmd("f FETCH 1 (BINARY.SIZE[1] BINARY[1])\r\n") ==
        "* 1 FETCH (BINARY.SIZE[1] 11 BINARY[1] {11}\r\ncaf\xC3\xA9 = ok!)\r\nf OK FETCH completed\r\n");
  CHECK(r.cmd("f FETCH 1 BINARY[2]\r\n") ==
        "* 1 FETCH (BINARY[2] ~{4}\r\n" + std::string("\0\x01\x02\xff", 4) +
            ")\r\nf OK FETCH completed\r\n");
  CHECK(r.cmd("f FETCH 1 BINARY[2]<1.2>\r\n") ==
        "* 1 FETCH (BINARY[2]<1> ~{2}\r\n\x01\x02)\r\nf OK FETCH completed\r\n");
  CHECK(r.cmd("f FETCH 1 BINARY[3]\r\n") ==
        "* 1 FETCH (BINARY[3] NIL)\r\nf NO [UNKNOWN-CTE] Cannot decode a part's content transfer "
        "encoding\r\n");
  CHECK(r.cmd("f FETCH 1 BINARY.SIZE[4]\r\n") ==
        "* 1 FETCH (BINARY.SIZE[4] 0)\r\nf OK FETCH completed\r\n");
}

TEST_CASE("FETCH: bad sets and items") {
  Rig r;
  r.deliver(kSimple);
  (void)r.cmd("s SELECT INBOX\r\n");
  CHECK(r.cmd("f FETCH 2 FLAGS\r\n") == "f BAD Invalid message sequence number\r\n");
  CHECK(r.cmd("f FETCH 1:5 FLAGS\r\n") == "f BAD Invalid message sequence number\r\n");
  CHECK(r.cmd("f FETCH 1:* FLAGS\r\n") ==
        "* 1 FETCH (FLAGS (\\Recent))\r\nf OK FETCH completed\r\n");
  for (const char* c : {"f FETCH 0 FLAGS\r\n", "f FETCH a FLAGS\r\n", "f FETCH 1 (FLAGS\r\n",
                        "f FETCH 1 BODY[x]\r\n", "f FETCH 1 NOPE\r\n", "f FETCH\r\n"}) {
    INFO(c);
    CHECK(r.cmd(c).rfind("f BAD ", 0) == 0);
  }
  // "*" in an empty mailbox names nothing.
  (void)r.cmd("s SELECT Trash\r\n");
  CHECK(r.cmd("f FETCH 1:* FLAGS\r\n") == "f OK FETCH completed\r\n");
}

TEST_CASE("FETCH streams a large body with produce() and holds pipelined commands") {
  Rig r;
  std::string big = "Subject: big\r\n\r\n";
  for (int i = 0; big.size() < 3 * 1024 * 1024; ++i) big += "line " + std::to_string(i) + "\r\n";
  r.deliver(big);
  (void)r.cmd("s SELECT INBOX\r\n");
  r.s.feed("f FETCH 1 BODY.PEEK[]\r\nn NOOP\r\n");
  CHECK(r.s.producing());
  std::string out = r.s.takeOutput();
  CHECK(out.size() < 512 * 1024);  // the first step is bounded
  size_t maxStep = 0;
  while (r.s.producing()) {
    r.s.produce(64 * 1024);
    std::string piece = r.s.takeOutput();
    maxStep = std::max(maxStep, piece.size());
    out += piece;
  }
  CHECK(maxStep < 200 * 1024);
  const std::string head = "* 1 FETCH (BODY[] {" + std::to_string(big.size()) + "}\r\n";
  REQUIRE(out.size() == head.size() + big.size() + 3 + 22 + 21);
  CHECK(out.substr(0, head.size()) == head);
  CHECK(out.substr(head.size(), big.size()) == big);
  CHECK(out.substr(head.size() + big.size()) ==
        ")\r\nf OK FETCH completed\r\nn OK NOOP completed\r\n");
}

TEST_CASE("STORE: FLAGS, +FLAGS, -FLAGS, .SILENT, UID STORE, keywords, read-only") {
  bool bytewise = GENERATE(false, true);
  Rig r(nullptr, bytewise);
  r.deliver(kSimple);
  r.deliver(kSimple);
  (void)r.cmd("s SELECT INBOX\r\n");
  CHECK(r.cmd("a STORE 1 +FLAGS (\\Seen \\flagged)\r\n") ==
        "* 1 FETCH (FLAGS (\\Flagged \\Seen \\Recent))\r\na OK STORE completed\r\n");
  CHECK(r.cmd("a STORE 1:2 FLAGS.SILENT (\\Deleted $Work)\r\n") == "a OK STORE completed\r\n");
  CHECK(r.cmd("a FETCH 1:2 FLAGS\r\n") ==
        "* 1 FETCH (FLAGS (\\Deleted $Work \\Recent))\r\n* 2 FETCH (FLAGS (\\Deleted $Work \\Recent))\r\n"
        "a OK FETCH completed\r\n");
  CHECK(r.cmd("a UID STORE 2 -FLAGS ($work)\r\n") ==
        "* 2 FETCH (UID 2 FLAGS (\\Deleted \\Recent))\r\na OK STORE completed\r\n");
  CHECK(r.cmd("a STORE 1 -FLAGS.SILENT (\\Deleted)\r\n") == "a OK STORE completed\r\n");
  CHECK(r.cmd("a STORE 1 +FLAGS (\\Bogus)\r\n") == "a BAD Unknown system flag\r\n");
  CHECK(r.cmd("a STORE 3 +FLAGS (\\Seen)\r\n") == "a BAD Invalid message sequence number\r\n");
  CHECK(r.cmd("a UID STORE 9 +FLAGS (\\Seen)\r\n") == "a OK STORE completed\r\n");
  // The new keyword is announced at the next SELECT.
  Rig r2(r.data);
  CHECK(r2.cmd("e EXAMINE INBOX\r\n") ==
        selectLines(2, 0, 1, r.validity(), 3, r.data->folders["INBOX"]->highestModSeq, "e", true,
                    " $Work"));
  CHECK(r2.cmd("a STORE 1 +FLAGS (\\Seen)\r\n") == "a NO [READ-ONLY] Mailbox is read-only\r\n");
  CHECK(r2.cmd("a EXPUNGE\r\n") == "a NO [READ-ONLY] Mailbox is read-only\r\n");
  CHECK(r2.cmd("a MOVE 1 Trash\r\n") == "a NO [READ-ONLY] Mailbox is read-only\r\n");
  // A body fetch in EXAMINE does not set \Seen.
  CHECK(r2.cmd("f FETCH 2 BODY[1]\r\n") ==
        "* 2 FETCH (BODY[1] {11}\r\nbody line\r\n)\r\nf OK FETCH completed\r\n");
}

TEST_CASE("EXPUNGE, UID EXPUNGE, CLOSE, UNSELECT") {
  Rig r;
  for (int i = 0; i < 5; ++i) r.deliver(kSimple);
  (void)r.cmd("s SELECT INBOX\r\n");
  (void)r.cmd("a STORE 2,4:5 +FLAGS.SILENT (\\Deleted)\r\n");
  CHECK(r.cmd("a UID EXPUNGE 1:4\r\n") == "* 4 EXPUNGE\r\n* 2 EXPUNGE\r\na OK EXPUNGE completed\r\n");
  CHECK(r.cmd("a EXPUNGE\r\n") == "* 3 EXPUNGE\r\na OK EXPUNGE completed\r\n");
  CHECK(r.cmd("a EXPUNGE\r\n") == "a OK EXPUNGE completed\r\n");
  CHECK(r.cmd("f FETCH 1:* UID\r\n") ==
        "* 1 FETCH (UID 1)\r\n* 2 FETCH (UID 3)\r\nf OK FETCH completed\r\n");
  (void)r.cmd("a STORE 1 +FLAGS.SILENT (\\Deleted)\r\n");
  CHECK(r.cmd("u UNSELECT\r\n") == "u OK UNSELECT completed\r\n");
  CHECK(r.cmd("t STATUS INBOX (MESSAGES DELETED)\r\n") ==
        "* STATUS INBOX (MESSAGES 2 DELETED 1)\r\nt OK STATUS completed\r\n");
  (void)r.cmd("s SELECT INBOX\r\n");
  CHECK(r.cmd("c CLOSE\r\n") == "c OK CLOSE completed\r\n");  // silent
  CHECK(r.cmd("t STATUS INBOX (MESSAGES DELETED)\r\n") ==
        "* STATUS INBOX (MESSAGES 1 DELETED 0)\r\nt OK STATUS completed\r\n");
  CHECK(r.cmd("f FETCH 1 UID\r\n") == "f BAD No mailbox selected\r\n");
}

TEST_CASE("two sessions: no EXPUNGE during FETCH, STORE, SEARCH; sent at NOOP") {
  Rig a;
  for (int i = 0; i < 3; ++i) a.deliver(kSimple);
  Rig b(a.data);
  (void)a.cmd("s SELECT INBOX\r\n");
  (void)b.cmd("s SELECT INBOX\r\n");
  (void)b.cmd("x STORE 2 +FLAGS.SILENT (\\Deleted)\r\n");
  CHECK(b.cmd("x EXPUNGE\r\n") == "* 2 EXPUNGE\r\nx OK EXPUNGE completed\r\n");
  // a still sees three messages; the flag change comes as FETCH, the
  // expunge waits.
  CHECK(a.cmd("f FETCH 1 UID\r\n") ==
        "* 1 FETCH (UID 1)\r\nf OK FETCH completed\r\n");
  CHECK(a.cmd("f FETCH 3 UID\r\n") == "* 3 FETCH (UID 3)\r\nf OK FETCH completed\r\n");
  CHECK(a.cmd("f FETCH 2 BODY.PEEK[]\r\n") == "f NO [EXPUNGEISSUED] Some messages were expunged\r\n");
  CHECK(a.cmd("g SEARCH ALL\r\n") == "* SEARCH 1 2 3\r\ng OK SEARCH completed\r\n");
  CHECK(a.cmd("h STORE 3 +FLAGS (\\Seen)\r\n") ==
        "* 3 FETCH (FLAGS (\\Seen \\Recent))\r\nh OK STORE completed\r\n");
  CHECK(a.cmd("n NOOP\r\n") == "* 2 EXPUNGE\r\nn OK NOOP completed\r\n");
  CHECK(a.cmd("f FETCH 1:* UID\r\n") ==
        "* 1 FETCH (UID 1)\r\n* 2 FETCH (UID 3)\r\nf OK FETCH completed\r\n");
  // b sees a's flag change at its next command.
  CHECK(b.cmd("n NOOP\r\n") == "* 2 FETCH (FLAGS (\\Seen))\r\nn OK NOOP completed\r\n");
}

// The same over Maildir, two sessions of one process sharing the folder's
// state: the session that did not expunge still FETCHes by its old
// sequence numbers (flags of the expunged one from the state's tombstone)
// until its NOOP.
// Sessions of one mail process over one Maildir: their stores share the
// folder states.
struct MaildirProcess {
  store::test::TempDir tmp;
  const std::string root = tmp / "Maildir";
  std::shared_ptr<store::MaildirFolderStates> states = store::makeMaildirFolderStates();
  std::unique_ptr<store::MailStore> open() {
    auto s = store::openMaildirStore(root, states);
    REQUIRE(s);
    return std::move(*s);
  }
};

// A session logged in, its greeting taken.
void login(MailSession& s) {
  s.start("L", "");
  (void)s.takeOutput();
}

// The output of a command, a streamed FETCH pumped to its end.
std::string cmd(MailSession& s, std::string_view in) {
  s.feed(in);
  while (s.producing()) s.produce(97);
  return s.takeOutput();
}

TEST_CASE("two sessions on one Maildir folder state: old sequence numbers until NOOP") {
  MaildirProcess p;
  auto sa = p.open();
  auto sb = p.open();
  for (int i = 0; i < 3; ++i) store::test::appendTo(*sa, "INBOX", kSimple);
  MailSession a(*sa, {}), b(*sb, {});
  login(a);
  login(b);
  (void)cmd(a, "s SELECT INBOX\r\n");
  (void)cmd(b, "s SELECT INBOX\r\n");
  (void)cmd(b, "x STORE 2 +FLAGS.SILENT (\\Deleted \\Flagged)\r\n");
  CHECK(cmd(b, "x EXPUNGE\r\n") == "* 2 EXPUNGE\r\nx OK EXPUNGE completed\r\n");
  CHECK(cmd(a, "f FETCH 1:3 (UID FLAGS RFC822.SIZE)\r\n") ==
        "* 1 FETCH (UID 1 FLAGS (\\Recent) RFC822.SIZE 39)\r\n"
        "* 2 FETCH (UID 2 FLAGS (\\Flagged \\Deleted \\Recent) RFC822.SIZE 39)\r\n"
        "* 3 FETCH (UID 3 FLAGS (\\Recent) RFC822.SIZE 39)\r\n"
        "f OK FETCH completed\r\n");
  CHECK(cmd(a, "f FETCH 3 BODY.PEEK[HEADER.FIELDS (SUBJECT)]\r\n") ==
        "* 3 FETCH (BODY[HEADER.FIELDS (SUBJECT)] {15}\r\nSubject: hi\r\n\r\n)\r\n"
        "f OK FETCH completed\r\n");
  CHECK(cmd(a, "f FETCH 2 BODY.PEEK[]\r\n") == "f NO [EXPUNGEISSUED] Some messages were expunged\r\n");
  CHECK(cmd(a, "g SEARCH ALL\r\n") == "* SEARCH 1 2 3\r\ng OK SEARCH completed\r\n");
  CHECK(cmd(a, "h STORE 3 +FLAGS (\\Seen)\r\n") ==
        "* 3 FETCH (FLAGS (\\Seen \\Recent))\r\nh OK STORE completed\r\n");
  CHECK(cmd(a, "n NOOP\r\n") == "* 2 EXPUNGE\r\nn OK NOOP completed\r\n");
  CHECK(cmd(a, "f FETCH 1:* UID\r\n") ==
        "* 1 FETCH (UID 1)\r\n* 2 FETCH (UID 3)\r\nf OK FETCH completed\r\n");
  // b hears of a's STORE at its next command, a not again.
  CHECK(cmd(b, "n NOOP\r\n") == "* 2 FETCH (FLAGS (\\Seen))\r\nn OK NOOP completed\r\n");
  CHECK(cmd(a, "n NOOP\r\n") == "n OK NOOP completed\r\n");
}

TEST_CASE("APPEND waits for its commit; the other sessions are answered meanwhile") {
  MaildirProcess p;
  auto sa = p.open();
  auto sb = p.open();
  store::test::appendTo(*sa, "INBOX", kSimple);
  store::test::ManualRunner runner;
  int resumed = 0;
  MailSession a(*sa, {}, Offload{&runner, [&] { ++resumed; }}), b(*sb, {});
  login(a);
  login(b);
  (void)cmd(a, "s SELECT INBOX\r\n");
  (void)cmd(b, "s SELECT INBOX\r\n");
  const auto validity = std::to_string(sa->status("INBOX")->uidValidity);
  // The APPEND and a NOOP pipelined behind it: no answer while the commit
  // is with the runner, whole or fed byte by byte.
  const bool bytewise = GENERATE(false, true);
  const std::string in = "a APPEND INBOX (\\Seen) {5+}\r\nhello\r\nn NOOP\r\n";
  std::string out;
  if (bytewise) {
    for (char c : in) out += cmd(a, std::string_view(&c, 1));
  } else {
    out = cmd(a, in);
  }
  CHECK(out == "");
  CHECK(a.waiting());
  CHECK_FALSE(a.producing());
  REQUIRE(runner.waiting() == 1);
  CHECK(cmd(a, "m NOOP\r\n") == "");  // kept for later, as the glue would not feed it
  // Another session is answered, and sees nothing of the message yet.
  CHECK(cmd(b, "n NOOP\r\n") == "n OK NOOP completed\r\n");
  CHECK(cmd(b, "f FETCH 1 (UID RFC822.SIZE)\r\n") ==
        "* 1 FETCH (UID 1 RFC822.SIZE 39)\r\nf OK FETCH completed\r\n");
  runner.step();  // fsync, link, directory fsync; then the UID
  CHECK(a.takeOutput() == "");
  CHECK(resumed == 0);
  CHECK(cmd(b, "n NOOP\r\n") == "n OK NOOP completed\r\n");
  runner.step();  // the uid log's fdatasync; then the answer
  CHECK_FALSE(a.waiting());
  CHECK(resumed == 1);
  CHECK(a.takeOutput() == "* 2 EXISTS\r\n* 2 RECENT\r\na OK [APPENDUID " + validity +
                              " 2] APPEND completed\r\nn OK NOOP completed\r\n"
                              "m OK NOOP completed\r\n");
  CHECK(cmd(b, "n NOOP\r\n") == "* 2 EXISTS\r\n* 0 RECENT\r\nn OK NOOP completed\r\n");
  CHECK(cmd(b, "f FETCH 2 (UID FLAGS BODY.PEEK[])\r\n") ==
        "* 2 FETCH (UID 2 FLAGS (\\Seen) BODY[] {5}\r\nhello)\r\nf OK FETCH completed\r\n");
  // MULTIAPPEND: one message after the other, one answer at the end.
  CHECK(cmd(a, "c APPEND Trash {1+}\r\nx {1+}\r\ny\r\n") == "");
  for (int i = 0; i < 4; ++i) {
    REQUIRE(runner.waiting() == 1);
    runner.step();
  }
  CHECK(runner.waiting() == 0);
  CHECK(a.takeOutput() == "c OK [APPENDUID " +
                              std::to_string(sa->status("Trash")->uidValidity) +
                              " 1:2] APPEND completed\r\n");
  CHECK(resumed == 2);
  // A session gone before its commit ends: the message is committed all the same.
  {
    auto sc = p.open();
    MailSession c(*sc, {}, Offload{&runner, [&] { ++resumed; }});
    c.start("L", "");
    CHECK(cmd(c, "a APPEND INBOX {6+}\r\norphan\r\n") == "L OK [CAPABILITY " +
                                                              std::string(kCaps) +
                                                              "] Logged in\r\n");
  }
  runner.step();
  runner.step();
  CHECK(resumed == 2);
  CHECK(cmd(b, "n NOOP\r\n") == "* 3 EXISTS\r\n* 1 RECENT\r\nn OK NOOP completed\r\n");
}

TEST_CASE("IDLE: a delivered message is announced at once; DONE ends it") {
  bool bytewise = GENERATE(false, true);
  Rig r(nullptr, bytewise);
  r.deliver(kSimple);
  (void)r.cmd("s SELECT INBOX\r\n");
  CHECK(r.cmd("i IDLE\r\n") == "+ idling\r\n");
  CHECK(r.s.idling());
  const int fd = r.s.changeFd();
  REQUIRE(fd >= 0);
  r.deliver(kSimple);
  r.s.changed();
  CHECK(r.s.takeOutput() == "* 2 EXISTS\r\n* 2 RECENT\r\n");
  r.s.changed();  // nothing new
  CHECK(r.s.takeOutput() == "");
  CHECK(r.cmd("done\r\n") == "i OK IDLE terminated\r\n");
  CHECK_FALSE(r.s.idling());
  CHECK(r.cmd("i IDLE\r\n") == "+ idling\r\n");
  CHECK(r.cmd("nope\r\n") == "i BAD Expected DONE\r\n");
  CHECK_FALSE(r.s.idling());
  CHECK(r.cmd("n NOOP\r\n") == "n OK NOOP completed\r\n");
}

TEST_CASE("APPEND then FETCH byte for byte; flags, date, APPENDUID, TRYCREATE, MULTIAPPEND") {
  bool bytewise = GENERATE(false, true);
  Rig r(nullptr, bytewise);
  const std::string msg = "Subject: appended\r\n\r\nline 1\r\nline 2 \x01\r\n";
  const std::string cmd = "a APPEND Drafts (\\Draft $x) \"17-Jul-1996 02:44:25 -0700\" {" +
                          std::to_string(msg.size()) + "}\r\n";
  CHECK(r.cmd(cmd) == "+ Ready for literal\r\n");
  CHECK(r.cmd(msg + "\r\n") ==
        "a OK [APPENDUID " + std::to_string(r.validity("Drafts")) + " 1] APPEND completed\r\n");
  (void)r.cmd("s SELECT Drafts\r\n");
  CHECK(r.cmd("f FETCH 1 (FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])\r\n") ==
        "* 1 FETCH (FLAGS (\\Draft $x \\Recent) INTERNALDATE \"17-Jul-1996 09:44:25 +0000\" "
        "RFC822.SIZE " + std::to_string(msg.size()) + " BODY[] {" + std::to_string(msg.size()) +
        "}\r\n" + msg + ")\r\nf OK FETCH completed\r\n");
  // LITERAL+ into the selected mailbox: EXISTS follows.
  CHECK(r.cmd("b APPEND Drafts {3+}\r\nxyz\r\n") ==
        "* 2 EXISTS\r\n* 2 RECENT\r\nb OK [APPENDUID " + std::to_string(r.validity("Drafts")) +
        " 2] APPEND completed\r\n");
  CHECK(r.cmd("c APPEND Nope {3+}\r\nxyz\r\n") == "c NO [TRYCREATE] No such mailbox\r\n");
  CHECK(r.cmd("d APPEND Trash {2+}\r\nab {2+}\r\ncd\r\n") ==
        "d OK [APPENDUID " + std::to_string(r.validity("Trash")) + " 1:2] APPEND completed\r\n");
  CHECK(r.cmd("e STATUS Trash (MESSAGES SIZE)\r\n") ==
        "* STATUS \"Trash\" (MESSAGES 2 SIZE 4)\r\ne OK STATUS completed\r\n");
  CHECK(r.cmd("g APPEND Trash (\\Bogus) {2+}\r\nab\r\n") == "g BAD Unknown system flag\r\n");
  CHECK(r.cmd("e STATUS Trash (MESSAGES)\r\n") ==
        "* STATUS \"Trash\" (MESSAGES 2)\r\ne OK STATUS completed\r\n");
}

TEST_CASE("APPEND over the message limit: NO [TOOBIG], the session goes on") {
  MailSettings ms;
  ms.parser.maxMessage = 100;
  Rig r(nullptr, false, ms);
  CHECK(r.cmd("a APPEND INBOX {101}\r\n") == "a NO [TOOBIG] message too large\r\n");
  CHECK(r.cmd("b NOOP\r\n") == "b OK NOOP completed\r\n");
  // A non-synchronising literal far over the limit: closed.
  std::string out = r.cmd("c APPEND INBOX {99999999999+}\r\n");
  CHECK(out.find("c NO [TOOBIG]") == 0);
  CHECK(out.find("* BYE") != std::string::npos);
  CHECK(r.s.closing());
}

TEST_CASE("SEARCH, UID SEARCH, ESEARCH, SAVE and $, BADCHARSET") {
  bool bytewise = GENERATE(false, true);
  Rig r(nullptr, bytewise);
  r.deliver(kSimple);
  r.deliver(readTestdata("nested-multipart.eml"));
  r.deliver("Subject: third\n\nnested words\n");
  (void)r.cmd("s SELECT INBOX\r\n");
  (void)r.cmd("x STORE 2 +FLAGS.SILENT (\\Seen)\r\n");
  CHECK(r.cmd("a SEARCH ALL\r\n") == "* SEARCH 1 2 3\r\na OK SEARCH completed\r\n");
  CHECK(r.cmd("a SEARCH UNSEEN\r\n") == "* SEARCH 1 3\r\na OK SEARCH completed\r\n");
  CHECK(r.cmd("a SEARCH SUBJECT nested\r\n") == "* SEARCH 2\r\na OK SEARCH completed\r\n");
  CHECK(r.cmd("a SEARCH BODY nested\r\n") == "* SEARCH 3\r\na OK SEARCH completed\r\n");
  CHECK(r.cmd("a UID SEARCH 2:*\r\n") == "* SEARCH 2 3\r\na OK SEARCH completed\r\n");
  CHECK(r.cmd("a SEARCH CHARSET UTF-8 FROM b.c\r\n") == "* SEARCH 1\r\na OK SEARCH completed\r\n");
  CHECK(r.cmd("a SEARCH KEYWORD nothing\r\n") == "* SEARCH\r\na OK SEARCH completed\r\n");
  CHECK(r.cmd("b SEARCH CHARSET KOI8-R ALL\r\n") ==
        "b NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset\r\n");
  CHECK(r.cmd("c SEARCH RETURN () ALL\r\n") ==
        "* ESEARCH (TAG \"c\") ALL 1:3\r\nc OK SEARCH completed\r\n");
  CHECK(r.cmd("c UID SEARCH RETURN (MIN MAX COUNT) UNSEEN\r\n") ==
        "* ESEARCH (TAG \"c\") UID MIN 1 MAX 3 COUNT 2\r\nc OK SEARCH completed\r\n");
  CHECK(r.cmd("c SEARCH RETURN (COUNT) KEYWORD none\r\n") ==
        "* ESEARCH (TAG \"c\") COUNT 0\r\nc OK SEARCH completed\r\n");
  CHECK(r.cmd("d SEARCH RETURN (SAVE) UNSEEN\r\n") == "d OK SEARCH completed\r\n");
  CHECK(r.cmd("e FETCH $ UID\r\n") ==
        "* 1 FETCH (UID 1)\r\n* 3 FETCH (UID 3)\r\ne OK FETCH completed\r\n");
  CHECK(r.cmd("e UID FETCH $ FLAGS\r\n") ==
        "* 1 FETCH (UID 1 FLAGS (\\Recent))\r\n* 3 FETCH (UID 3 FLAGS (\\Recent))\r\n"
        "e OK FETCH completed\r\n");
  CHECK(r.cmd("e SEARCH $ SMALLER 100\r\n") == "* SEARCH 1 3\r\ne OK SEARCH completed\r\n");
  CHECK(r.cmd("f SEARCH RETURN (SAVE MIN) UNSEEN\r\n") ==
        "* ESEARCH (TAG \"f\") MIN 1\r\nf OK SEARCH completed\r\n");
  CHECK(r.cmd("g FETCH $ UID\r\n") == "* 1 FETCH (UID 1)\r\ng OK FETCH completed\r\n");
  CHECK(r.cmd("h SEARCH NOPE\r\n").rfind("h BAD ", 0) == 0);
}

TEST_CASE("SEARCH over a large mailbox runs in steps through produce()") {
  Rig r;
  const std::string filler(20000, 'x');
  for (int i = 0; i < 40; ++i) {
    r.deliver("Subject: m" + std::to_string(i) + "\r\n\r\n" + filler + (i % 10 == 3 ? " needle" : "") +
              "\r\n");
  }
  (void)r.cmd("s SELECT INBOX\r\n");
  r.s.feed("a SEARCH BODY needle\r\nb NOOP\r\n");
  CHECK(r.s.producing());
  CHECK(r.s.takeOutput() == "");
  int steps = 0;
  while (r.s.producing()) {
    r.s.produce(64 * 1024);
    ++steps;
  }
  CHECK(steps >= 3);
  CHECK(r.s.takeOutput() == "* SEARCH 4 14 24 34\r\na OK SEARCH completed\r\nb OK NOOP completed\r\n");
}

TEST_CASE("COPY, MOVE, UID variants: COPYUID, TRYCREATE, EXPUNGE after MOVE") {
  bool bytewise = GENERATE(false, true);
  Rig r(nullptr, bytewise);
  for (int i = 0; i < 4; ++i) r.deliver(kSimple);
  (void)r.cmd("s SELECT INBOX\r\n");
  const std::string tv = std::to_string(r.validity("Trash"));
  CHECK(r.cmd("c COPY 2:3 Trash\r\n") == "c OK [COPYUID " + tv + " 2:3 1:2] COPY completed\r\n");
  CHECK(r.cmd("c UID COPY 4 Trash\r\n") == "c OK [COPYUID " + tv + " 4 3] COPY completed\r\n");
  CHECK(r.cmd("c COPY 1 Nope\r\n") == "c NO [TRYCREATE] No such mailbox\r\n");
  CHECK(r.cmd("c UID COPY 99 Trash\r\n") == "c OK COPY completed\r\n");
  CHECK(r.cmd("m MOVE 2:3 Trash\r\n") ==
        "* OK [COPYUID " + tv + " 2:3 4:5] Moved\r\n* 3 EXPUNGE\r\n* 2 EXPUNGE\r\nm OK MOVE completed\r\n");
  CHECK(r.cmd("m UID MOVE 4 Archive\r\n") ==
        "* OK [COPYUID " + std::to_string(r.validity("Archive")) +
        " 4 1] Moved\r\n* 2 EXPUNGE\r\nm OK MOVE completed\r\n");
  CHECK(r.cmd("m MOVE 1 Nope\r\n") == "m NO [TRYCREATE] No such mailbox\r\n");
  CHECK(r.cmd("t STATUS Trash (MESSAGES UIDNEXT)\r\n") ==
        "* STATUS \"Trash\" (MESSAGES 5 UIDNEXT 6)\r\nt OK STATUS completed\r\n");
  // Copy into the selected mailbox: EXISTS at the end of the command.
  CHECK(r.cmd("c COPY 1 INBOX\r\n") ==
        "* 2 EXISTS\r\n* 2 RECENT\r\nc OK [COPYUID " + std::to_string(r.validity()) +
        " 1 5] COPY completed\r\n");
}

TEST_CASE("CREATE, DELETE, RENAME, SUBSCRIBE, LIST, LSUB, STATUS, NAMESPACE, ID") {
  bool bytewise = GENERATE(false, true);
  Rig r(nullptr, bytewise);
  CHECK(r.cmd("a CREATE Work.Projects.\r\n") == "a OK CREATE completed\r\n");
  CHECK(r.cmd("a CREATE Work\r\n") == "a NO [ALREADYEXISTS] Mailbox already exists\r\n");
  CHECK(r.cmd("a CREATE inbox\r\n") == "a NO [ALREADYEXISTS] INBOX always exists\r\n");
  CHECK(r.cmd("a CREATE Sent2 (USE (\\Sent))\r\n") == "a OK CREATE completed\r\n");
  CHECK(r.cmd("a CREATE Odd (USE (\\Important))\r\n") ==
        "a NO [USEATTR] Unsupported special-use attribute\r\n");
  CHECK(r.cmd("a CREATE \"&AOQ-rger\"\r\n") == "a OK CREATE completed\r\n");
  CHECK(r.cmd("l LIST \"\" %\r\n") ==
        "* LIST (\\HasNoChildren) \".\" INBOX\r\n"
        "* LIST (\\HasNoChildren \\Archive) \".\" \"Archive\"\r\n"
        "* LIST (\\HasNoChildren \\Drafts) \".\" \"Drafts\"\r\n"
        "* LIST (\\HasNoChildren \\Junk) \".\" \"Junk\"\r\n"
        "* LIST (\\HasNoChildren \\Sent) \".\" \"Sent\"\r\n"
        "* LIST (\\HasNoChildren \\Sent) \".\" \"Sent2\"\r\n"
        "* LIST (\\HasNoChildren \\Trash) \".\" \"Trash\"\r\n"
        "* LIST (\\HasChildren) \".\" \"Work\"\r\n"
        "* LIST (\\HasNoChildren) \".\" \"&AOQ-rger\"\r\n"
        "l OK LIST completed\r\n");
  CHECK(r.cmd("l LIST Work. *\r\n") ==
        "* LIST (\\HasNoChildren) \".\" \"Work.Projects\"\r\nl OK LIST completed\r\n");
  CHECK(r.cmd("l LIST \"\" \"\"\r\n") == "* LIST (\\Noselect) \".\" \"\"\r\nl OK LIST completed\r\n");
  CHECK(r.cmd("l LIST \"\" W*s\r\n") ==
        "* LIST (\\HasNoChildren) \".\" \"Work.Projects\"\r\nl OK LIST completed\r\n");
  CHECK(r.cmd("b SUBSCRIBE Work.Projects\r\n") == "b OK SUBSCRIBE completed\r\n");
  CHECK(r.cmd("b SUBSCRIBE Gone\r\n") == "b OK SUBSCRIBE completed\r\n");
  CHECK(r.cmd("l LSUB \"\" *\r\n") ==
        "* LSUB () \".\" \"Archive\"\r\n* LSUB () \".\" \"Drafts\"\r\n* LSUB () \".\" \"Junk\"\r\n"
        "* LSUB () \".\" \"Sent\"\r\n* LSUB () \".\" \"Trash\"\r\n* LSUB () \".\" \"Work.Projects\"\r\n* LSUB (\\Noselect) \".\" \"Gone\"\r\n"
        "l OK LSUB completed\r\n");
  CHECK(r.cmd("l LIST (SUBSCRIBED) \"\" W*\r\n") ==
        "* LIST (\\HasNoChildren \\Subscribed) \".\" \"Work.Projects\"\r\n"
        "l OK LIST completed\r\n");
  CHECK(r.cmd("l LIST (SUBSCRIBED) \"\" G*\r\n") ==
        "* LIST (\\NonExistent \\Subscribed) \".\" \"Gone\"\r\nl OK LIST completed\r\n");
  CHECK(r.cmd("l LIST \"\" (Work* Junk) RETURN (SUBSCRIBED CHILDREN STATUS (MESSAGES UNSEEN))\r\n") ==
        "* LIST (\\HasNoChildren \\Subscribed \\Junk) \".\" \"Junk\"\r\n"
        "* STATUS \"Junk\" (MESSAGES 0 UNSEEN 0)\r\n"
        "* LIST (\\HasChildren) \".\" \"Work\"\r\n"
        "* STATUS \"Work\" (MESSAGES 0 UNSEEN 0)\r\n"
        "* LIST (\\HasNoChildren \\Subscribed) \".\" \"Work.Projects\"\r\n"
        "* STATUS \"Work.Projects\" (MESSAGES 0 UNSEEN 0)\r\nl OK LIST completed\r\n");
  CHECK(r.cmd("l LIST (SPECIAL-USE) \"\" *\r\n") ==
        "* LIST (\\HasNoChildren \\Archive) \".\" \"Archive\"\r\n"
        "* LIST (\\HasNoChildren \\Drafts) \".\" \"Drafts\"\r\n"
        "* LIST (\\HasNoChildren \\Junk) \".\" \"Junk\"\r\n"
        "* LIST (\\HasNoChildren \\Sent) \".\" \"Sent\"\r\n"
        "* LIST (\\HasNoChildren \\Sent) \".\" \"Sent2\"\r\n"
        "* LIST (\\HasNoChildren \\Trash) \".\" \"Trash\"\r\nl OK LIST completed\r\n");
  // RECURSIVEMATCH: Work is not subscribed but holds a subscribed child.
  CHECK(r.cmd("l LIST (SUBSCRIBED RECURSIVEMATCH) \"\" W%\r\n") ==
        "* LIST (\\HasChildren) \".\" \"Work\" (\"CHILDINFO\" (\"SUBSCRIBED\"))\r\n"
        "l OK LIST completed\r\n");
  CHECK(r.cmd("b UNSUBSCRIBE Gone\r\n") == "b OK UNSUBSCRIBE completed\r\n");
  CHECK(r.cmd("r RENAME Work Play\r\n") == "r OK RENAME completed\r\n");
  CHECK(r.cmd("r RENAME Work Other\r\n") == "r NO [NONEXISTENT] No such mailbox\r\n");
  CHECK(r.cmd("r RENAME Junk Play\r\n") == "r NO [ALREADYEXISTS] Mailbox already exists\r\n");
  CHECK(r.cmd("l LIST \"\" Play*\r\n") ==
        "* LIST (\\HasChildren) \".\" \"Play\"\r\n* LIST (\\HasNoChildren) \".\" \"Play.Projects\"\r\n"
        "l OK LIST completed\r\n");
  CHECK(r.cmd("d DELETE Play.Projects\r\n") == "d OK DELETE completed\r\n");
  CHECK(r.cmd("d DELETE Play.Projects\r\n") == "d NO [NONEXISTENT] No such mailbox\r\n");
  CHECK(r.cmd("d DELETE INBOX\r\n") == "d NO [CANNOT] INBOX cannot be deleted\r\n");
  CHECK(r.cmd("d DELETE \"a\tb\"\r\n").rfind("d BAD ", 0) == 0);
  CHECK(r.cmd("t STATUS INBOX (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE)\r\n") ==
        "* STATUS INBOX (MESSAGES 0 RECENT 0 UIDNEXT 1 UIDVALIDITY " +
        std::to_string(r.validity()) + " UNSEEN 0 DELETED 0 SIZE 0)\r\nt OK STATUS completed\r\n");
  CHECK(r.cmd("t STATUS Nope (MESSAGES)\r\n") == "t NO [NONEXISTENT] No such mailbox\r\n");
  CHECK(r.cmd("n NAMESPACE\r\n") == "* NAMESPACE ((\"\" \".\")) NIL NIL\r\nn OK NAMESPACE completed\r\n");
  CHECK(r.cmd("i ID (\"name\" \"test\")\r\n") == "* ID (\"name\" \"yubin\")\r\ni OK ID completed\r\n");
  CHECK(r.cmd("i ID NIL\r\n") == "* ID (\"name\" \"yubin\")\r\ni OK ID completed\r\n");
}

TEST_CASE("hostile input: bad tags, NUL, huge literals, deep nesting, too many bad commands") {
  MailSettings ms;
  ms.maxBadCommands = 5;
  Rig r(nullptr, false, ms);
  CHECK(r.cmd("\r\n").rfind("* BAD ", 0) == 0);
  CHECK(r.cmd(std::string("a NOOP\0x\r\n", 10)).rfind("a BAD ", 0) == 0);
  CHECK(r.cmd("b SELECT {99999999}\r\n").rfind("b BAD [TOOBIG] ", 0) == 0);
  std::string deep = "c SEARCH ";
  for (int i = 0; i < 100; ++i) deep += "(";
  deep += "ALL";
  for (int i = 0; i < 100; ++i) deep += ")";
  CHECK(r.cmd(deep + "\r\n").rfind("c BAD ", 0) == 0);
  CHECK(r.cmd("ok NOOP\r\n") == "ok OK NOOP completed\r\n");
  CHECK_FALSE(r.s.closing());
  CHECK(r.cmd("d FOO\r\n") == "d BAD unknown command\r\n* BYE Too many invalid commands\r\n");
  CHECK(r.s.closing());
  CHECK(r.cmd("e NOOP\r\n") == "");
}

TEST_CASE("a pipelined script gives the same output whole and one byte at a time") {
  const std::string script =
      "a SELECT INBOX\r\nb FETCH 1:* (UID FLAGS BODY.PEEK[HEADER.FIELDS (Subject)])\r\n"
      "c STORE 1 +FLAGS (\\Answered)\r\nd APPEND INBOX {5+}\r\nhello\r\n"
      "e UID SEARCH RETURN (ALL) ALL\r\nf FETCH 3 BODY[]<1.3>\r\ng LOGOUT\r\n";
  std::string outs[2];
  for (int i = 0; i < 2; ++i) {
    auto data = std::make_shared<store::MemoryStoreData>(true);
    data->folders["INBOX"]->uidValidity = 42;
    Rig r(data, i == 1);
    r.deliver(kSimple);
    r.deliver(readTestdata("nested-multipart.eml"));
    outs[i] = r.cmd(script);
    CHECK(r.s.closing());
  }
  CHECK(outs[0] == outs[1]);
  CHECK(outs[0].find("* 3 FETCH (BODY[]<1> {3}\r\nell FLAGS (\\Seen \\Recent))\r\n") != std::string::npos);
  CHECK(outs[0].find("* ESEARCH (TAG \"e\") UID ALL 1:3\r\n") != std::string::npos);
}


// ---- CONDSTORE (RFC 7162) ----

// A store whose mailboxes keep no mod-sequences (highestModSeq() == 0, the
// interface's default): every call but that one goes to a MemoryStore.
class NoModSeqMailbox final : public store::ImapMailbox {
 public:
  explicit NoModSeqMailbox(std::unique_ptr<store::ImapMailbox> b) : b_(std::move(b)) {}
  uint32_t uidValidity() const override { return b_->uidValidity(); }
  uint32_t uidNext() const override { return b_->uidNext(); }
  bool readOnly() const override { return b_->readOnly(); }
  std::vector<std::string> keywords() const override { return b_->keywords(); }
  bool canCreateKeywords() const override { return b_->canCreateKeywords(); }
  size_t messageCount() const override { return b_->messageCount(); }
  uint32_t uidAt(size_t i) const override { return b_->uidAt(i); }
  store::MessageInfo messageAt(size_t i) const override { return b_->messageAt(i); }
  size_t sessionBytes() const override { return b_->sessionBytes(); }
  Result<store::MailboxChanges> sync(bool allowExpunge) override { return b_->sync(allowExpunge); }
  Result<std::unique_ptr<store::MessageReader>> open(size_t index) override {
    return b_->open(index);
  }
  Status setFlags(const std::vector<size_t>& i, store::FlagOp op, const store::Flags& f) override {
    return b_->setFlags(i, op, f);
  }
  Status expunge(const std::vector<size_t>& i) override { return b_->expunge(i); }
  Result<store::CopiedUids> copy(const std::vector<size_t>& i, const std::string& d,
                                 bool move) override {
    return b_->copy(i, d, move);
  }
  int changeFd() const override { return b_->changeFd(); }
  void drainChangeFd() override { b_->drainChangeFd(); }

 private:
  std::unique_ptr<store::ImapMailbox> b_;
};

class NoModSeqStore final : public store::MailStore {
 public:
  explicit NoModSeqStore(std::shared_ptr<store::MemoryStoreData> d) : s_(std::move(d)) {}
  char delimiter() const override { return s_.delimiter(); }
  Result<std::vector<store::MailboxListEntry>> list() override { return s_.list(); }
  Result<std::vector<std::string>> subscriptions() override { return s_.subscriptions(); }
  Status subscribe(const std::string& n, bool on) override { return s_.subscribe(n, on); }
  Status create(const std::string& n, const std::string& u) override { return s_.create(n, u); }
  Status remove(const std::string& n) override { return s_.remove(n); }
  Status rename(const std::string& a, const std::string& b) override { return s_.rename(a, b); }
  Result<store::MailboxStatus> status(const std::string& n) override {
    auto st = s_.status(n);
    if (st) st->highestModSeq = 0;
    return st;
  }
  Result<std::unique_ptr<store::ImapMailbox>> select(const std::string& n, bool ro) override {
    auto b = s_.select(n, ro);
    if (!b) return b.error();
    return std::unique_ptr<store::ImapMailbox>(std::make_unique<NoModSeqMailbox>(std::move(*b)));
  }
  Result<std::unique_ptr<store::AppendTransaction>> beginAppend(const std::string& n) override {
    return s_.beginAppend(n);
  }

 private:
  store::MemoryStore s_;
};

TEST_CASE("CONDSTORE: ENABLE, SELECT with HIGHESTMODSEQ, FETCH MODSEQ and CHANGEDSINCE") {
  bool bytewise = GENERATE(false, true);
  Rig r(nullptr, bytewise);
  for (int i = 0; i < 3; ++i) r.deliver(kSimple);  // modseqs 2, 3, 4
  CHECK(r.cmd("e ENABLE CONDSTORE\r\n") == "* ENABLED CONDSTORE\r\ne OK ENABLE completed\r\n");
  CHECK(r.cmd("e ENABLE CONDSTORE\r\n") == "* ENABLED\r\ne OK ENABLE completed\r\n");
  CHECK(r.cmd("s SELECT INBOX\r\n") == selectLines(3, 3, 1, r.validity(), 4, 4));
  CHECK(r.cmd("f FETCH 1:* (FLAGS MODSEQ)\r\n") ==
        "* 1 FETCH (FLAGS (\\Recent) MODSEQ (2))\r\n* 2 FETCH (FLAGS (\\Recent) MODSEQ (3))\r\n"
        "* 3 FETCH (FLAGS (\\Recent) MODSEQ (4))\r\nf OK FETCH completed\r\n");
  CHECK(r.cmd("a STORE 2 +FLAGS (\\Seen)\r\n") ==
        "* 2 FETCH (UID 2 FLAGS (\\Seen \\Recent) MODSEQ (5))\r\na OK STORE completed\r\n");
  // A STORE that changes nothing keeps the mod-sequence.
  CHECK(r.cmd("a STORE 2 +FLAGS (\\Seen)\r\n") ==
        "* 2 FETCH (UID 2 FLAGS (\\Seen \\Recent) MODSEQ (5))\r\na OK STORE completed\r\n");
  // CHANGEDSINCE: only the newer messages, MODSEQ implied.
  CHECK(r.cmd("f FETCH 1:* (FLAGS) (CHANGEDSINCE 4)\r\n") ==
        "* 2 FETCH (FLAGS (\\Seen \\Recent) MODSEQ (5))\r\nf OK FETCH completed\r\n");
  CHECK(r.cmd("f UID FETCH 1:* (FLAGS) (CHANGEDSINCE 3)\r\n") ==
        "* 2 FETCH (UID 2 FLAGS (\\Seen \\Recent) MODSEQ (5))\r\n"
        "* 3 FETCH (UID 3 FLAGS (\\Recent) MODSEQ (4))\r\nf OK FETCH completed\r\n");
  CHECK(r.cmd("f FETCH 1:* (UID MODSEQ) (CHANGEDSINCE 5)\r\n") == "f OK FETCH completed\r\n");
  CHECK(r.cmd("f UID FETCH 1:* (FLAGS) (CHANGEDSINCE 3 VANISHED)\r\n") ==
        "f BAD VANISHED needs QRESYNC\r\n");
  // A body fetch that sets \Seen: FLAGS and MODSEQ.
  CHECK(r.cmd("f FETCH 3 (BODY[HEADER.FIELDS (SUBJECT)])\r\n") ==
        "* 3 FETCH (BODY[HEADER.FIELDS (SUBJECT)] {15}\r\nSubject: hi\r\n\r\n"
        " FLAGS (\\Seen \\Recent) UID 3 MODSEQ (6))\r\nf OK FETCH completed\r\n");
  CHECK(r.cmd("t STATUS INBOX (HIGHESTMODSEQ MESSAGES)\r\n") ==
        "* STATUS INBOX (HIGHESTMODSEQ 6 MESSAGES 3)\r\nt OK STATUS completed\r\n");
}

TEST_CASE("CONDSTORE: STORE UNCHANGEDSINCE, MODIFIED, .SILENT with MODSEQ") {
  bool bytewise = GENERATE(false, true);
  Rig r(nullptr, bytewise);
  for (int i = 0; i < 3; ++i) r.deliver(kSimple);  // modseqs 2, 3, 4
  CHECK(r.cmd("s SELECT INBOX (CONDSTORE)\r\n") == selectLines(3, 3, 1, r.validity(), 4, 4));
  // .SILENT: no FLAGS, but UID and the new MODSEQ.
  CHECK(r.cmd("a UID STORE 1 +FLAGS.SILENT (\\Flagged)\r\n") ==
        "* 1 FETCH (UID 1 MODSEQ (5))\r\na OK STORE completed\r\n");
  CHECK(r.cmd("a STORE 1 +FLAGS.SILENT (\\Flagged)\r\n") == "a OK STORE completed\r\n");
  // Message 1 (modseq 5) fails the test, 2 and 3 pass.
  CHECK(r.cmd("a STORE 1:3 (UNCHANGEDSINCE 4) +FLAGS (\\Deleted)\r\n") ==
        "* 2 FETCH (UID 2 FLAGS (\\Deleted \\Recent) MODSEQ (6))\r\n"
        "* 3 FETCH (UID 3 FLAGS (\\Deleted \\Recent) MODSEQ (6))\r\n"
        "a OK [MODIFIED 1] Conditional STORE failed\r\n");
  CHECK(r.cmd("a UID STORE 1:3 (UNCHANGEDSINCE 0) -FLAGS (\\Deleted)\r\n") ==
        "a OK [MODIFIED 1:3] Conditional STORE failed\r\n");
  CHECK(r.cmd("a STORE 2,3 (UNCHANGEDSINCE 6) -FLAGS.SILENT (\\Deleted)\r\n") ==
        "* 2 FETCH (UID 2 MODSEQ (7))\r\n* 3 FETCH (UID 3 MODSEQ (7))\r\na OK STORE completed\r\n");
  // Another session changes message 2: this one's conditional STORE with
  // the modseq it knew fails, and the change shows with its MODSEQ.
  Rig r2(r.data);
  CHECK(r2.cmd("s SELECT INBOX\r\n").find("[HIGHESTMODSEQ 7]") != std::string::npos);
  CHECK(r2.cmd("a STORE 2 +FLAGS.SILENT (\\Answered)\r\n") == "a OK STORE completed\r\n");
  CHECK(r.cmd("a STORE 2 (UNCHANGEDSINCE 7) +FLAGS (\\Draft)\r\n") ==
        "* 2 FETCH (UID 2 FLAGS (\\Answered \\Recent) MODSEQ (8))\r\n"
        "a OK [MODIFIED 2] Conditional STORE failed\r\n");
  CHECK(r.cmd("n NOOP\r\n") == "n OK NOOP completed\r\n");
}

TEST_CASE("CONDSTORE: SEARCH MODSEQ and ESEARCH MODSEQ") {
  bool bytewise = GENERATE(false, true);
  Rig r(nullptr, bytewise);
  for (int i = 0; i < 4; ++i) r.deliver(kSimple);  // modseqs 2..5
  CHECK(r.cmd("s SELECT INBOX\r\n").find("* OK [HIGHESTMODSEQ 5] Highest\r\n") !=
        std::string::npos);
  CHECK(r.cmd("a STORE 2 +FLAGS.SILENT (\\Seen)\r\n") == "a OK STORE completed\r\n");  // 6
  CHECK(r.cmd("g SEARCH MODSEQ 4\r\n") == "* SEARCH 2 3 4 (MODSEQ 6)\r\ng OK SEARCH completed\r\n");
  CHECK(r.cmd("g UID SEARCH MODSEQ \"/flags/\\\\draft\" all 5 UNSEEN\r\n") ==
        "* SEARCH 4 (MODSEQ 5)\r\ng OK SEARCH completed\r\n");
  CHECK(r.cmd("g SEARCH MODSEQ 7\r\n") == "* SEARCH\r\ng OK SEARCH completed\r\n");
  CHECK(r.cmd("g SEARCH OR MODSEQ 6 NOT MODSEQ 3\r\n") ==
        "* SEARCH 1 2 (MODSEQ 6)\r\ng OK SEARCH completed\r\n");
  CHECK(r.cmd("g SEARCH RETURN (ALL COUNT) MODSEQ 3\r\n") ==
        "* ESEARCH (TAG \"g\") ALL 2:4 COUNT 3 MODSEQ 6\r\ng OK SEARCH completed\r\n");
  CHECK(r.cmd("g SEARCH RETURN (MIN) MODSEQ 3\r\n") ==
        "* ESEARCH (TAG \"g\") MIN 2 MODSEQ 6\r\ng OK SEARCH completed\r\n");
  CHECK(r.cmd("g UID SEARCH RETURN (MAX) MODSEQ 3\r\n") ==
        "* ESEARCH (TAG \"g\") UID MAX 4 MODSEQ 5\r\ng OK SEARCH completed\r\n");
  CHECK(r.cmd("g SEARCH RETURN (COUNT) MODSEQ 99\r\n") ==
        "* ESEARCH (TAG \"g\") COUNT 0\r\ng OK SEARCH completed\r\n");
  // The SEARCH made CONDSTORE active: flag changes now carry MODSEQ.
  CHECK(r.cmd("a STORE 1 +FLAGS (\\Flagged)\r\n") ==
        "* 1 FETCH (UID 1 FLAGS (\\Flagged \\Recent) MODSEQ (7))\r\na OK STORE completed\r\n");
}

TEST_CASE("CONDSTORE: enabled implicitly; before that no MODSEQ in FETCH") {
  Rig r;
  r.deliver(kSimple);
  r.deliver(kSimple);
  Rig r2(r.data);
  CHECK(r.cmd("s SELECT INBOX\r\n") == selectLines(2, 2, 1, r.validity(), 3, 3));
  CHECK(r2.cmd("s SELECT INBOX\r\n") == selectLines(2, 0, 1, r.validity(), 3, 3));
  CHECK(r2.cmd("a STORE 1 +FLAGS.SILENT (\\Seen)\r\n") == "a OK STORE completed\r\n");
  CHECK(r.cmd("n NOOP\r\n") == "* 1 FETCH (FLAGS (\\Seen \\Recent))\r\nn OK NOOP completed\r\n");
  CHECK(r.cmd("a STORE 2 +FLAGS (\\Seen)\r\n") ==
        "* 2 FETCH (FLAGS (\\Seen \\Recent))\r\na OK STORE completed\r\n");
  // FETCH MODSEQ turns it on.
  CHECK(r.cmd("f FETCH 1 (MODSEQ)\r\n") == "* 1 FETCH (MODSEQ (4))\r\nf OK FETCH completed\r\n");
  // (r2 hears of r's STORE on message 2, without MODSEQ: not enabled there.)
  CHECK(r2.cmd("a STORE 1 -FLAGS.SILENT (\\Seen)\r\n") ==
        "* 2 FETCH (FLAGS (\\Seen))\r\na OK STORE completed\r\n");
  CHECK(r.cmd("n NOOP\r\n") ==
        "* 1 FETCH (UID 1 FLAGS (\\Recent) MODSEQ (6))\r\nn OK NOOP completed\r\n");
  // STATUS HIGHESTMODSEQ turns it on too.
  Rig r3(r.data);
  CHECK(r3.cmd("t STATUS INBOX (HIGHESTMODSEQ)\r\n") ==
        "* STATUS INBOX (HIGHESTMODSEQ 6)\r\nt OK STATUS completed\r\n");
  CHECK(r3.cmd("s EXAMINE INBOX\r\n") == selectLines(2, 0, 1, r.validity(), 3, 6, "s", true));
  CHECK(r2.cmd("a STORE 2 +FLAGS.SILENT (\\Answered)\r\n") == "a OK STORE completed\r\n");
  CHECK(r3.cmd("n NOOP\r\n") ==
        "* 2 FETCH (UID 2 FLAGS (\\Answered \\Seen) MODSEQ (7))\r\nn OK NOOP completed\r\n");
  // And LIST ... RETURN (STATUS (HIGHESTMODSEQ)).
  Rig r4(r.data);
  CHECK(r4.cmd("l LIST \"\" INBOX RETURN (STATUS (HIGHESTMODSEQ))\r\n") ==
        "* LIST (\\HasNoChildren) \".\" INBOX\r\n* STATUS INBOX (HIGHESTMODSEQ 7)\r\n"
        "l OK LIST completed\r\n");
  CHECK(r4.cmd("s EXAMINE INBOX\r\n").find("[HIGHESTMODSEQ 7]") != std::string::npos);
  CHECK(r2.cmd("a STORE 2 -FLAGS.SILENT (\\Answered)\r\n") == "a OK STORE completed\r\n");
  CHECK(r4.cmd("n NOOP\r\n") ==
        "* 2 FETCH (UID 2 FLAGS (\\Seen) MODSEQ (8))\r\nn OK NOOP completed\r\n");
}

TEST_CASE("CONDSTORE: a mailbox without mod-sequences answers NOMODSEQ and BAD") {
  bool bytewise = GENERATE(false, true);
  auto data = std::make_shared<store::MemoryStoreData>(true);
  NoModSeqStore st(data);
  MailSession s(st, {});
  s.start("L", "");
  (void)s.takeOutput();
  REQUIRE(store::MemoryStore(data).deliver("INBOX", kSimple));
  auto cmd = [&](std::string_view in) {
    if (bytewise) {
      for (char c : in) s.feed(std::string_view(&c, 1));
    } else {
      s.feed(in);
    }
    while (s.producing()) s.produce(97);
    return s.takeOutput();
  };
  std::string sel = cmd("s SELECT INBOX (CONDSTORE)\r\n");
  CHECK(sel.find("* OK [NOMODSEQ] No mod-sequences in this mailbox\r\n") != std::string::npos);
  CHECK(sel.find("HIGHESTMODSEQ") == std::string::npos);
  const char* bad = " BAD Mailbox does not support mod-sequences\r\n";
  CHECK(cmd("f FETCH 1 (FLAGS MODSEQ)\r\n") == std::string("f") + bad);
  CHECK(cmd("f FETCH 1 (FLAGS) (CHANGEDSINCE 1)\r\n") == std::string("f") + bad);
  CHECK(cmd("a STORE 1 (UNCHANGEDSINCE 1) +FLAGS (\\Seen)\r\n") == std::string("a") + bad);
  CHECK(cmd("g SEARCH NOT MODSEQ 1\r\n") == std::string("g") + bad);
  CHECK(cmd("t STATUS INBOX (HIGHESTMODSEQ)\r\n") ==
        "* STATUS INBOX (HIGHESTMODSEQ 0)\r\nt OK STATUS completed\r\n");
  // CONDSTORE is enabled, but without mod-sequences no MODSEQ is made up.
  CHECK(cmd("a STORE 1 +FLAGS (\\Seen)\r\n") ==
        "* 1 FETCH (FLAGS (\\Seen \\Recent))\r\na OK STORE completed\r\n");
}

}  // namespace
}  // namespace yubin::mrad::imap
