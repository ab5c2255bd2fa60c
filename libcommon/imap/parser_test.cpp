// Tests for the incremental IMAP command parser: every command form, fed
// whole and one byte at a time; literals (synchronising, LITERAL+/-,
// literal8, APPEND streaming); hostile input and resynchronisation; line
// mode for AUTHENTICATE and IDLE.
#include "imap/parser.hpp"

#include <catch2/catch.hpp>

#include "imap/test_describe.hpp"

using namespace yubin::imap;
using yubin::imap::test::describe;
using namespace std::string_literals;

namespace {

struct Collected {
  std::vector<std::string> commands;  // describe() of each Command
  std::vector<ParseError> errors;
  std::vector<std::string> lines;     // RawLine texts
  std::vector<uint64_t> continues;    // sizes of ContinueRequests
  std::vector<std::string> order;     // "C", "E", "L", "+" in arrival order
};

void drain(Parser& p, Collected& out) {
  while (true) {
    Event e = p.next();
    if (std::holds_alternative<NeedMore>(e)) return;
    if (auto* c = std::get_if<Command>(&e)) {
      out.commands.push_back(describe(*c));
      out.order.push_back("C");
    } else if (auto* err = std::get_if<ParseError>(&e)) {
      out.errors.push_back(*err);
      out.order.push_back("E");
    } else if (auto* l = std::get_if<RawLine>(&e)) {
      out.lines.push_back(l->text);
      out.order.push_back("L");
    } else if (auto* k = std::get_if<ContinueRequest>(&e)) {
      out.continues.push_back(k->size);
      out.order.push_back("+");
    }
  }
}

Collected run(const std::string& input, bool byteAtATime, ParserSettings st = {},
              MessageSink* sink = nullptr) {
  Parser p(st, sink);
  Collected out;
  if (byteAtATime) {
    for (char c : input) {
      p.feed(std::string_view(&c, 1));
      drain(p, out);
    }
  } else {
    p.feed(input);
    drain(p, out);
  }
  return out;
}

struct Case {
  const char* in;
  const char* want;
  int continues;  // synchronising literals in the input
};

void checkCommand(const Case& c, ParserSettings st = {}) {
  for (bool bytewise : {false, true}) {
    INFO("input: " << c.in << (bytewise ? " (byte at a time)" : ""));
    Collected r = run(c.in, bytewise, st);
    for (const auto& e : r.errors) INFO("error: " << e.text);
    REQUIRE(r.errors.empty());
    REQUIRE(r.commands.size() == 1);
    CHECK(r.commands[0] == c.want);
    CHECK(r.continues.size() == static_cast<size_t>(c.continues));
  }
}

}  // namespace

TEST_CASE("commands without arguments", "[imap][parser]") {
  auto c = GENERATE(values<Case>({
      {"a1 CAPABILITY\r\n", "a1 CAPABILITY", 0},
      {"a2 noop\r\n", "a2 NOOP", 0},
      {"A3 Logout\r\n", "A3 LOGOUT", 0},
      {"x STARTTLS\r\n", "x STARTTLS", 0},
      {"x NAMESPACE\r\n", "x NAMESPACE", 0},
      {"x CHECK\r\n", "x CHECK", 0},
      {"x CLOSE\r\n", "x CLOSE", 0},
      {"x UNSELECT\r\n", "x UNSELECT", 0},
      {"x EXPUNGE\r\n", "x EXPUNGE", 0},
      {"x IDLE\r\n", "x IDLE", 0},
      {"x NOOP\n", "x NOOP", 0},  // bare LF tolerated
      {"tag.with]bracket NOOP\r\n", "tag.with]bracket NOOP", 0},
  }));
  checkCommand(c);
}

TEST_CASE("LOGIN, AUTHENTICATE, ENABLE, ID", "[imap][parser]") {
  auto c = GENERATE(values<Case>({
      {"a LOGIN alice secret\r\n", "a LOGIN [alice] [secret]", 0},
      {"a LOGIN \"al ice\" \"se\\\"c\\\\ret\"\r\n", "a LOGIN [al ice] [se\"c\\ret]", 0},
      {"a LOGIN {5}\r\nalice {6}\r\nsecret\r\n", "a LOGIN [alice] [secret]", 2},
      {"a LOGIN {5+}\r\nalice {6+}\r\nsecret\r\n", "a LOGIN [alice] [secret]", 0},
      {"a LOGIN \"\" {0}\r\n\r\n", "a LOGIN [] []", 1},
      {"a LOGIN ali]ce pass\r\n", "a LOGIN [ali]ce] [pass]", 0},
      {"a AUTHENTICATE plain\r\n", "a AUTHENTICATE PLAIN", 0},
      {"a AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==\r\n",
       "a AUTHENTICATE PLAIN ir=[AGFsaWNlAHNlY3JldA==]", 0},
      {"a AUTHENTICATE PLAIN =\r\n", "a AUTHENTICATE PLAIN ir=[]", 0},
      {"a AUTHENTICATE SCRAM-SHA-256 biwsbj11c2VyLHI9ZnlrbytkMmxiYkZnT05Sdjlxa3hkYXdM\r\n",
       "a AUTHENTICATE SCRAM-SHA-256 ir=[biwsbj11c2VyLHI9ZnlrbytkMmxiYkZnT05Sdjlxa3hkYXdM]", 0},
      {"a ENABLE CONDSTORE\r\n", "a ENABLE CONDSTORE", 0},
      {"a ENABLE imap4rev2 utf8=accept\r\n", "a ENABLE IMAP4REV2 UTF8=ACCEPT", 0},
      {"a ID NIL\r\n", "a ID NIL", 0},
      {"a ID (\"name\" \"mutt\" \"version\" NIL)\r\n", "a ID ([name]=[mutt];[version]=NIL;)", 0},
      {"a ID ()\r\n", "a ID ()", 0},
  }));
  checkCommand(c);
}

TEST_CASE("mailbox commands", "[imap][parser]") {
  auto c = GENERATE(values<Case>({
      {"a SELECT INBOX\r\n", "a SELECT [INBOX]", 0},
      {"a SELECT inbox (CONDSTORE)\r\n", "a SELECT [inbox] CONDSTORE", 0},
      {"a EXAMINE \"Sent Items\"\r\n", "a EXAMINE [Sent Items]", 0},
      {"a SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))\r\n",
       "a SELECT [INBOX] QRESYNC(67890007,20050715194045000,known=41,43:211,214:541)", 0},
      {"a SELECT INBOX (QRESYNC (67890007 90060115194045000 1:29997 (5000,7500 25000,37500)))\r\n",
       "a SELECT [INBOX] QRESYNC(67890007,90060115194045000,known=1:29997,match=5000,7500/25000,37500)",
       0},
      {"a SELECT INBOX (QRESYNC (1 2 (1 3)))\r\n", "a SELECT [INBOX] QRESYNC(1,2,match=1/3)", 0},
      {"a CREATE Drafts\r\n", "a CREATE [Drafts]", 0},
      {"a CREATE MySpecial (USE (\\Drafts \\Sent))\r\n", "a CREATE [MySpecial] USE \\Drafts \\Sent",
       0},
      {"a DELETE {4}\r\nTrash\r\n", "", 1},  // placeholder replaced below
      {"a RENAME \"Old\" New\r\n", "a RENAME [Old] [New]", 0},
      {"a SUBSCRIBE &ZeVnLIqe-\r\n", "a SUBSCRIBE [&ZeVnLIqe-]", 0},
      {"a UNSUBSCRIBE Junk\r\n", "a UNSUBSCRIBE [Junk]", 0},
      {"a STATUS INBOX (MESSAGES UIDNEXT uidvalidity UNSEEN DELETED SIZE RECENT HIGHESTMODSEQ)\r\n",
       "a STATUS [INBOX] (MESSAGES UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE RECENT HIGHESTMODSEQ)",
       0},
  }));
  if (std::string(c.want).empty()) {
    // "{4}" with 5 octets following: "Trash" would leave "h" on the line.
    Collected r = run(c.in, false);
    REQUIRE(r.errors.size() == 1);
    CHECK(r.errors[0].tag == "a");
    return;
  }
  checkCommand(c);
}

TEST_CASE("LIST and LSUB, with LIST-EXTENDED", "[imap][parser]") {
  auto c = GENERATE(values<Case>({
      {"a LIST \"\" *\r\n", "a LIST [] pat[*]", 0},
      {"a LIST \"\" \"\"\r\n", "a LIST [] pat[]", 0},
      {"a LIST ~/Mail/ %\r\n", "a LIST [~/Mail/] pat[%]", 0},
      {"a LIST \"\" INBOX.%.foo]*\r\n", "a LIST [] pat[INBOX.%.foo]*]", 0},
      {"a LIST () \"\" %\r\n", "a LIST sel() [] pat[%]", 0},
      {"a LIST (SUBSCRIBED RECURSIVEMATCH) \"\" %\r\n", "a LIST sel(SM) [] pat[%]", 0},
      {"a LIST (special-use remote) \"\" *\r\n", "a LIST sel(RU) [] pat[*]", 0},
      {"a LIST \"\" (INBOX Drafts \"Sent Items\")\r\n",
       "a LIST [] pats[INBOX][Drafts][Sent Items]", 0},
      {"a LIST \"\" % RETURN (CHILDREN SUBSCRIBED)\r\n", "a LIST [] pat[%] ret(SC)", 0},
      {"a LIST \"\" % RETURN ()\r\n", "a LIST [] pat[%] ret()", 0},
      {"a LIST \"\" % RETURN (STATUS (MESSAGES UNSEEN) SPECIAL-USE)\r\n",
       "a LIST [] pat[%] ret(USTATUS(MESSAGES UNSEEN))", 0},
      {"a LSUB \"\" *\r\n", "a LSUB [] pat[*]", 0},
      {"a LSUB \"#news.\" comp.mail.*\r\n", "a LSUB [#news.] pat[comp.mail.*]", 0},
  }));
  checkCommand(c);
}

TEST_CASE("APPEND", "[imap][parser]") {
  auto c = GENERATE(values<Case>({
      {"a APPEND INBOX {5}\r\nHello\r\n", "a APPEND [INBOX] msg(5,[Hello])", 1},
      {"a APPEND INBOX {5+}\r\nHello\r\n", "a APPEND [INBOX] msg(5,[Hello])", 0},
      {"a APPEND saved-messages (\\Seen) {3}\r\nabc\r\n",
       "a APPEND [saved-messages] msg(\\Seen,3,[abc])", 1},
      {"a APPEND INBOX (\\Seen $Forwarded) \"17-Jul-1996 02:44:25 -0700\" {2}\r\nab\r\n",
       "a APPEND [INBOX] msg(\\Seen,$Forwarded,17-Jul-1996 02:44:25 -0700,2,[ab])", 1},
      {"a APPEND INBOX \" 7-Jul-1996 02:44:25 +0000\" {1}\r\nx\r\n",
       "a APPEND [INBOX] msg(07-Jul-1996 02:44:25 +0000,1,[x])", 1},
      {"a APPEND INBOX () {0}\r\n\r\n", "a APPEND [INBOX] msg(0)", 1},
      {"a APPEND INBOX ~{3}\r\na\0b\r\n", "", 1},  // literal8 with NUL: checked below
      {"a APPEND {5}\r\nDraft (\\Draft) {4+}\r\nbody\r\n", "a APPEND [Draft] msg(\\Draft,4,[body])",
       1},
      {"a APPEND INBOX {3}\r\none (\\Seen) {3}\r\ntwo {5+}\r\nthree\r\n",
       "a APPEND [INBOX] msg(3,[one]) msg(\\Seen,3,[two]) msg(5,[three])", 2},
      {"a APPEND INBOX {4}\r\nA\r\nB\r\n", "a APPEND [INBOX] msg(4,[A\r\nB])", 1},
  }));
  if (std::string(c.want).empty()) {
    for (bool bytewise : {false, true}) {
      Collected r = run("a APPEND INBOX ~{3}\r\na\0b\r\n"s, bytewise);
      REQUIRE(r.errors.empty());
      REQUIRE(r.commands.size() == 1);
      CHECK(r.commands[0] == "a APPEND [INBOX] msg(3,bin,[a\0b])"s);
    }
    return;
  }
  checkCommand(c);
}

TEST_CASE("SEARCH keys", "[imap][parser]") {
  auto c = GENERATE(values<Case>({
      {"a SEARCH ALL\r\n", "a SEARCH AND(ALL)", 0},
      {"a SEARCH FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\"\r\n",
       "a SEARCH AND(FLAGGED,SINCE(1-Feb-1994),NOT(FROM[Smith]))", 0},
      {"a SEARCH OR (SEEN FLAGGED) NOT (DELETED)\r\n",
       "a SEARCH AND(OR(AND(SEEN,FLAGGED),NOT(AND(DELETED))))", 0},
      {"a SEARCH CHARSET UTF-8 TEXT {6}\r\nXXXXXX\r\n",
       "a SEARCH charset=[UTF-8] AND(TEXT[XXXXXX])", 1},
      {"a SEARCH charset \"us-ascii\" subject hello\r\n",
       "a SEARCH charset=[us-ascii] AND(SUBJECT[hello])", 0},
      {"a SEARCH 1:5,7 UID 2:* $\r\n", "a SEARCH AND(SEQ(1:5,7),UID(2:*),SEQ($))", 0},
      {"a SEARCH ANSWERED DELETED DRAFT NEW OLD RECENT SEEN UNANSWERED UNDELETED UNDRAFT "
       "UNFLAGGED UNSEEN\r\n",
       "a SEARCH AND(ANSWERED,DELETED,DRAFT,NEW,OLD,RECENT,SEEN,UNANSWERED,UNDELETED,UNDRAFT,"
       "UNFLAGGED,UNSEEN)",
       0},
      {"a SEARCH KEYWORD $Junk UNKEYWORD $NotJunk BCC b CC c BODY x TO t\r\n",
       "a SEARCH AND(KEYWORD[$Junk],UNKEYWORD[$NotJunk],BCC[b],CC[c],BODY[x],TO[t])", 0},
      {"a SEARCH HEADER Message-ID \"<x@y>\" HEADER X-Empty \"\"\r\n",
       "a SEARCH AND(HEADER[Message-ID][<x@y>],HEADER[X-Empty][])", 0},
      {"a SEARCH BEFORE \"1-Jan-2020\" ON 29-Feb-2020 SENTBEFORE 1-Mar-2020 SENTON 2-Mar-2020 "
       "SENTSINCE 3-Mar-2020\r\n",
       "a SEARCH AND(BEFORE(1-Jan-2020),ON(29-Feb-2020),SENTBEFORE(1-Mar-2020),"
       "SENTON(2-Mar-2020),SENTSINCE(3-Mar-2020))",
       0},
      {"a SEARCH LARGER 1024 SMALLER 99999999999 OLDER 3600 YOUNGER 60\r\n",
       "a SEARCH AND(LARGER(1024),SMALLER(99999999999),OLDER(3600),YOUNGER(60))", 0},
      {"a SEARCH MODSEQ 620162338\r\n", "a SEARCH AND(MODSEQ(620162338))", 0},
      {"a SEARCH MODSEQ \"/flags/\\\\draft\" all 620162338\r\n",
       "a SEARCH AND(MODSEQ(/flags/\\draft,all,620162338))", 0},
      // RFC 7162: nested, the entry types in any case, a keyword entry, 0
      // and the largest mod-sequence.
      {"a SEARCH OR MODSEQ 0 NOT MODSEQ \"/flags/$Junk\" SHARED 9223372036854775807\r\n",
       "a SEARCH AND(OR(MODSEQ(0),NOT(MODSEQ(/flags/$Junk,shared,9223372036854775807))))", 0},
      {"a UID SEARCH RETURN (MIN) (MODSEQ \"/flags/\\\\Seen\" Priv 5 UNSEEN)\r\n",
       "a UID SEARCH ret(MIN) AND(AND(MODSEQ(/flags/\\Seen,priv,5),UNSEEN))", 0},
      {"a SEARCH RETURN (MIN COUNT) UNSEEN\r\n", "a SEARCH ret(MIN COUNT) AND(UNSEEN)", 0},
      {"a SEARCH RETURN () ALL\r\n", "a SEARCH ret(ALL) AND(ALL)", 0},
      {"a SEARCH RETURN (SAVE MAX ALL) CHARSET UTF-8 ALL\r\n",
       "a SEARCH ret(MAX ALL SAVE) charset=[UTF-8] AND(ALL)", 0},
      {"a UID SEARCH UID 1:*\r\n", "a UID SEARCH AND(UID(1:*))", 0},
      {"a SEARCH NOT NOT OR OR SEEN DRAFT (ALL) UID 1\r\n",
       "a SEARCH AND(NOT(NOT(OR(OR(SEEN,DRAFT),AND(ALL)))),UID(1))", 0},
      {"a SEARCH (((ALL)))\r\n", "a SEARCH AND(AND(AND(AND(ALL))))", 0},
  }));
  checkCommand(c);
}

TEST_CASE("FETCH attributes, macros and modifiers", "[imap][parser]") {
  auto c = GENERATE(values<Case>({
      {"a FETCH 1 ALL\r\n", "a FETCH 1 (FLAGS INTERNALDATE RFC822.SIZE ENVELOPE)", 0},
      {"a FETCH 1:* fast\r\n", "a FETCH 1:* (FLAGS INTERNALDATE RFC822.SIZE)", 0},
      {"a FETCH * FULL\r\n", "a FETCH * (FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODY)", 0},
      {"a FETCH 2:4 FLAGS\r\n", "a FETCH 2:4 (FLAGS)", 0},
      {"a FETCH 1 (FLAGS UID RFC822.SIZE INTERNALDATE ENVELOPE BODY BODYSTRUCTURE RFC822 "
       "RFC822.HEADER RFC822.TEXT MODSEQ)\r\n",
       "a FETCH 1 (FLAGS UID RFC822.SIZE INTERNALDATE ENVELOPE BODY BODYSTRUCTURE RFC822 "
       "RFC822.HEADER RFC822.TEXT MODSEQ)",
       0},
      {"a FETCH 1 BODY[]\r\n", "a FETCH 1 (BODY[])", 0},
      {"a FETCH 1 body.peek[header]\r\n", "a FETCH 1 (BODY.PEEK[HEADER])", 0},
      {"a FETCH 1 (BODY[TEXT]<0.2048>)\r\n", "a FETCH 1 (BODY[TEXT]<0.2048>)", 0},
      {"a FETCH 1 (BODY.PEEK[1.2.3.MIME] BODY[4.TEXT] BODY[2] BODY[3.HEADER])\r\n",
       "a FETCH 1 (BODY.PEEK[1.2.3.MIME] BODY[4.TEXT] BODY[2] BODY[3.HEADER])", 0},
      {"a FETCH 1 (BODY.PEEK[HEADER.FIELDS (From To \"Subject\" {4}\r\nDate)])\r\n",
       "a FETCH 1 (BODY.PEEK[HEADER.FIELDS (From To Subject Date)])", 1},
      {"a FETCH 1 BODY[1.HEADER.FIELDS.NOT (Received)]<10.5>\r\n",
       "a FETCH 1 (BODY[1.HEADER.FIELDS.NOT (Received)]<10.5>)", 0},
      {"a FETCH 1 (BINARY[] BINARY.PEEK[1.2]<0.100> BINARY.SIZE[3])\r\n",
       "a FETCH 1 (BINARY[] BINARY.PEEK[1.2]<0.100> BINARY.SIZE[3])", 0},
      {"a FETCH 1:* (FLAGS) (CHANGEDSINCE 12345)\r\n",
       "a FETCH 1:* (FLAGS) changedsince=12345", 0},
      {"a UID FETCH 300:500 (FLAGS) (CHANGEDSINCE 12345 VANISHED)\r\n",
       "a UID FETCH 300:500 (FLAGS) changedsince=12345 vanished", 0},
      {"a UID FETCH 1,3:5,9:* (UID FLAGS)\r\n", "a UID FETCH 1,3:5,9:* (UID FLAGS)", 0},
      {"a FETCH $ FLAGS\r\n", "a FETCH $ (FLAGS)", 0},
  }));
  checkCommand(c);
}

TEST_CASE("STORE, COPY, MOVE, UID EXPUNGE", "[imap][parser]") {
  auto c = GENERATE(values<Case>({
      {"a STORE 2:4 +FLAGS (\\Deleted)\r\n", "a STORE 2:4 +FLAGS (\\Deleted)", 0},
      {"a STORE 1 FLAGS ()\r\n", "a STORE 1 FLAGS ()", 0},
      {"a STORE 1 -flags.silent \\Seen $Junk\r\n", "a STORE 1 -FLAGS.SILENT (\\Seen $Junk)", 0},
      {"a STORE 1:* FLAGS.SILENT (\\Seen \\Answered \\Flagged \\Draft)\r\n",
       "a STORE 1:* FLAGS.SILENT (\\Seen \\Answered \\Flagged \\Draft)", 0},
      {"a STORE 7,5,9 (UNCHANGEDSINCE 320162338) +FLAGS.SILENT (\\Deleted)\r\n",
       "a STORE 7,5,9 +FLAGS.SILENT (\\Deleted) unchangedsince=320162338", 0},
      {"a STORE 1 (UNCHANGEDSINCE 0) FLAGS ()\r\n", "a STORE 1 FLAGS () unchangedsince=0", 0},
      {"a UID STORE 1:* (unchangedsince 9223372036854775807) -FLAGS.SILENT ($Junk)\r\n",
       "a UID STORE 1:* -FLAGS.SILENT ($Junk) unchangedsince=9223372036854775807", 0},
      {"a UID STORE 100 +FLAGS \\Seen\r\n", "a UID STORE 100 +FLAGS (\\Seen)", 0},
      {"a COPY 2:4 MEETING\r\n", "a COPY 2:4 [MEETING]", 0},
      {"a UID COPY 1:* \"Sent Items\"\r\n", "a UID COPY 1:* [Sent Items]", 0},
      {"a MOVE 1 Trash\r\n", "a MOVE 1 [Trash]", 0},
      {"a uid move 4:6 {5+}\r\nTrash\r\n", "a UID MOVE 4:6 [Trash]", 0},
      {"a UID EXPUNGE 3000:3002\r\n", "a UID EXPUNGE 3000:3002", 0},
  }));
  checkCommand(c);
}

TEST_CASE("8-bit quoted strings need UTF-8 mode", "[imap][parser]") {
  const std::string in = "a SEARCH CHARSET UTF-8 SUBJECT \"caf\xC3\xA9\"\r\n";
  Collected off = run(in, false);
  REQUIRE(off.errors.size() == 1);
  CHECK(off.errors[0].tag == "a");
  CHECK(off.errors[0].text == "8-bit character in quoted string");
  ParserSettings st;
  st.utf8 = true;
  checkCommand({in.c_str(), "a SEARCH charset=[UTF-8] AND(SUBJECT[caf\xC3\xA9])", 0}, st);
  Collected bad = run("a SEARCH SUBJECT \"caf\xC3\"\r\n", false, st);
  REQUIRE(bad.errors.size() == 1);
  CHECK(bad.errors[0].text == "invalid UTF-8 in quoted string");
  // Literals may always carry 8-bit octets.
  checkCommand({"a SEARCH SUBJECT {5}\r\ncaf\xC3\xA9\r\n", "a SEARCH AND(SUBJECT[caf\xC3\xA9])", 1});
  // setUtf8 switches at run time (ENABLE).
  Parser p;
  p.setUtf8(true);
  p.feed(in);
  CHECK(std::holds_alternative<Command>(p.next()));
}

TEST_CASE("syntax errors give BAD with the tag and the parser goes on", "[imap][parser]") {
  struct Bad {
    std::string in;
    const char* tag;
    const char* text;
  };
  auto c = GENERATE(values<Bad>({
      {"a FROB\r\n", "a", "unknown command"},
      {"a\r\n", "", "missing or bad tag"},
      {"\r\n", "", "empty command line"},
      {"+ NOOP\r\n", "", "missing or bad tag"},
      {"a* NOOP\r\n", "", "missing or bad tag"},
      {" NOOP\r\n", "", "missing or bad tag"},
      {"a  NOOP\r\n", "a", "missing command name"},
      {"a NOOP extra\r\n", "a", "unexpected characters after the command"},
      {"a NOOP \r\n", "a", "unexpected characters after the command"},
      {"a LOGIN alice\r\n", "a", "missing argument"},
      {"a LOGIN alice \"unterminated\r\n", "a", "unterminated quoted string"},
      {"a LOGIN \"a\\b\" x\r\n", "a", "bad escape in quoted string"},
      {"a LOGIN \"al\0ice\" x\r\n"s, "a", "NUL character"},
      {"a LOGIN {5}\r\nal\0ce x\r\n"s, "a", "NUL in literal"},
      {"a LOGIN al\0ice x\r\n"s, "a", "expected a space"},
      {"a LOGIN {5} x\r\n", "a", "a literal must end the line"},
      {"a UID NOOP\r\n", "a", "command not allowed after UID"},
      {"a UID\r\n", "a", "missing UID command"},
      {"a SELECT\r\n", "a", "missing argument"},
      {"a SELECT INBOX ()\r\n", "a", "empty list"},
      {"a SELECT INBOX (FOO)\r\n", "a", "unknown select parameter"},
      {"a SELECT INBOX (CONDSTORE CONDSTORE)\r\n", "a", "unknown select parameter"},
      {"a FETCH 0 FLAGS\r\n", "a", "bad sequence set"},
      {"a FETCH 1:2:3 FLAGS\r\n", "a", "bad sequence set"},
      {"a FETCH 4294967296 FLAGS\r\n", "a", "bad sequence set"},
      {"a FETCH 1 (FLAGS\r\n", "a", "missing argument"},
      {"a FETCH 1 FLAGS)\r\n", "a", "unexpected characters after the command"},
      {"a FETCH 1 ()\r\n", "a", "empty list"},
      {"a FETCH 1 (ALL)\r\n", "a", "unknown fetch attribute"},
      {"a FETCH 1 BODY[1.]\r\n", "a", "expected a keyword"},
      {"a FETCH 1 BODY[0]\r\n", "a", "number must not be zero"},
      {"a FETCH 1 BODY[MIME]\r\n", "a", "bad section"},
      {"a FETCH 1 BODY[HEADER.FIELDS ()]\r\n", "a", "empty list"},
      {"a FETCH 1 BODY[HEADER.FIELDS]\r\n", "a", "expected a space"},
      {"a FETCH 1 BODY.PEEK\r\n", "a", "expected '['"},
      {"a FETCH 1 BODY[]<0.0>\r\n", "a", "number must not be zero"},
      {"a FETCH 1 BODY[]<0>\r\n", "a", "bad partial"},
      {"a FETCH 1 BINARY[TEXT]\r\n", "a", "bad BINARY section"},
      {"a FETCH 1 BINARY[1.MIME]\r\n", "a", "bad BINARY section"},
      {"a FETCH 1 FLAGS (FOO)\r\n", "a", "unknown fetch modifier"},
      {"a FETCH 1 FLAGS (CHANGEDSINCE 0)\r\n", "a", "number must not be zero"},
      {"a FETCH 1 FLAGS (CHANGEDSINCE 9223372036854775808)\r\n", "a", "number too large"},
      {"a STORE 1 FLAGS (\\*)\r\n", "a", "expected an atom"},
      {"a STORE 1 FLAGS (\\Seen\r\n", "a", "missing argument"},
      {"a STORE 1 XFLAGS (\\Seen)\r\n", "a", "expected FLAGS"},
      {"a STORE 1 (FOO 1) FLAGS ()\r\n", "a", "unknown store modifier"},
      {"a STORE 1 (UNCHANGEDSINCE 1 UNCHANGEDSINCE 2) FLAGS ()\r\n", "a", "unknown store modifier"},
      {"a STORE 1 (UNCHANGEDSINCE 9223372036854775808) FLAGS ()\r\n", "a", "number too large"},
      {"a FETCH 1 FLAGS (CHANGEDSINCE 1 CHANGEDSINCE 2)\r\n", "a", "unknown fetch modifier"},
      {"a SEARCH MODSEQ\r\n", "a", "missing argument"},
      {"a SEARCH MODSEQ \"/flags/\\\\Seen\" all\r\n", "a", "missing argument"},
      {"a SEARCH\r\n", "a", "missing argument"},
      {"a SEARCH FOO\r\n", "a", "unknown search key"},
      {"a SEARCH OR SEEN\r\n", "a", "missing argument"},
      {"a SEARCH (SEEN\r\n", "a", "missing argument"},
      {"a SEARCH ()\r\n", "a", "expected a keyword"},
      {"a SEARCH SEEN)\r\n", "a", "expected a space"},
      {"a SEARCH SINCE 30-Feb-2020\r\n", "a", "bad date"},
      {"a SEARCH SINCE 1-Feb-94\r\n", "a", "bad date"},
      {"a SEARCH RETURN (FOO) ALL\r\n", "a", "unknown search return option"},
      {"a SEARCH MODSEQ \"/flags/\\\\Seen\" mine 5\r\n", "a", "bad MODSEQ entry type"},
      {"a SEARCH MODSEQ \"/other\" all 5\r\n", "a", "bad MODSEQ entry name"},
      {"a SEARCH KEYWORD \\Seen\r\n", "a", "expected an atom"},
      {"a SEARCH UID $:4\r\n", "a", "bad sequence set"},
      {"a SEARCH LARGER -1\r\n", "a", "expected a number"},
      {"a APPEND INBOX\r\n", "a", "missing argument"},
      {"a APPEND INBOX (\\Seen)\r\n", "a", "missing argument"},
      {"a APPEND INBOX \"17-Jul-1996 02:44:25\" {1}\r\nx\r\n", "a", "bad date-time"},
      {"a APPEND INBOX \"31-Jun-1996 02:44:25 +0000\" {1}\r\nx\r\n", "a", "bad date-time"},
      {"a APPEND INBOX \"x\"\r\n", "a", "bad date-time"},
      {"a APPEND INBOX {1}\r\nx extra\r\n", "a", "expected a literal"},
      {"a LIST \"\"\r\n", "a", "missing argument"},
      {"a LIST (FOO) \"\" *\r\n", "a", "unknown list selection option"},
      {"a LIST (RECURSIVEMATCH) \"\" *\r\n", "a", "RECURSIVEMATCH needs another selection option"},
      {"a LIST \"\" * RETURN (FOO)\r\n", "a", "unknown list return option"},
      {"a LIST \"\" * FOO (CHILDREN)\r\n", "a", "expected RETURN"},
      {"a LIST \"\" ()\r\n", "a", "empty list"},
      {"a LSUB () \"\" *\r\n", "a", "expected an atom"},
      {"a STATUS INBOX ()\r\n", "a", "empty list"},
      {"a STATUS INBOX (FOO)\r\n", "a", "unknown status item"},
      {"a STATUS INBOX MESSAGES\r\n", "a", "expected '('"},
      {"a AUTHENTICATE\r\n", "a", "missing argument"},
      {"a AUTHENTICATE PLAIN abc\r\n", "a", "bad initial response"},
      {"a AUTHENTICATE PLAIN a===\r\n", "a", "bad initial response"},
      {"a ENABLE\r\n", "a", "missing argument"},
      {"a ID\r\n", "a", "missing argument"},
      {"a ID (\"a\")\r\n", "a", "expected a space"},
      {"a ID FOO\r\n", "a", "expected a list or NIL"},
      {"a CREATE x (USE (Sent))\r\n", "a", "bad special-use attribute"},
      {"a CREATE x (FOO (\\Sent))\r\n", "a", "bad CREATE parameters"},
      {"a UID EXPUNGE\r\n", "a", "missing argument"},
      {"a COPY 1\r\n", "a", "missing argument"},
      {"a LOGIN a\rb c\r\n", "a", "expected a space"},
  }));
  for (bool bytewise : {false, true}) {
    INFO("input: " << c.in << (bytewise ? " (byte at a time)" : ""));
    Collected r = run(c.in + "z NOOP\r\n", bytewise);
    REQUIRE(r.errors.size() == 1);
    CHECK(r.errors[0].tag == c.tag);
    CHECK(r.errors[0].text == c.text);
    CHECK_FALSE(r.errors[0].tooBig);
    // Resynchronised: the next command parses.
    REQUIRE(r.commands.size() == 1);
    CHECK(r.commands[0] == "z NOOP");
  }
}

TEST_CASE("literal limits: refused before the octets are read", "[imap][parser]") {
  ParserSettings st;
  st.maxLiteral = 100;
  st.maxMessage = 1000;
  SECTION("a synchronising literal above the limit gets no continuation") {
    for (bool bytewise : {false, true}) {
      Collected r = run("a LOGIN {101}\r\nz NOOP\r\n", bytewise, st);
      REQUIRE(r.errors.size() == 1);
      CHECK(r.errors[0].tag == "a");
      CHECK(r.errors[0].command == "LOGIN");
      CHECK(r.errors[0].tooBig);
      CHECK_FALSE(r.errors[0].closeAdvised);
      CHECK(r.continues.empty());
      REQUIRE(r.commands.size() == 1);
      CHECK(r.commands[0] == "z NOOP");
    }
  }
  SECTION("huge counts") {
    for (const char* in : {"a LOGIN {99999999999}\r\n", "a LOGIN {99999999999999999999999}\r\n",
                           "a APPEND INBOX {18446744073709551616}\r\n"}) {
      Collected r = run(std::string(in) + "z NOOP\r\n", false, st);
      REQUIRE(r.errors.size() == 1);
      CHECK(r.errors[0].tag == "a");
      CHECK(r.errors[0].tooBig);
      CHECK(r.errors[0].text.find("too large") != std::string::npos);
      REQUIRE(r.commands.size() == 1);
    }
  }
  SECTION("APPEND message limit") {
    Collected ok = run("a APPEND INBOX {1000}\r\n" + std::string(1000, 'x') + "\r\n", false, st);
    REQUIRE(ok.commands.size() == 1);
    Collected big = run("a APPEND INBOX {1001}\r\nz NOOP\r\n", false, st);
    REQUIRE(big.errors.size() == 1);
    CHECK(big.errors[0].tooBig);
    CHECK(big.errors[0].text == "message too large");
    CHECK(big.errors[0].command == "APPEND");
    CHECK(big.commands == std::vector<std::string>{"z NOOP"});
  }
  SECTION("a non-synchronising literal above the limit is skipped, not stored") {
    const std::string payload(500, 'A');
    for (bool bytewise : {false, true}) {
      Collected r = run("a LOGIN {500+}\r\n" + payload + " more {3+}\r\nxyz\r\nz NOOP\r\n",
                        bytewise, st);
      REQUIRE(r.errors.size() == 1);
      CHECK(r.errors[0].tag == "a");
      CHECK(r.errors[0].tooBig);
      CHECK_FALSE(r.errors[0].closeAdvised);
      CHECK(r.commands == std::vector<std::string>{"z NOOP"});
    }
    Collected huge = run("a LOGIN {99999999999+}\r\n", false, st);
    REQUIRE(huge.errors.size() == 1);
    CHECK(huge.errors[0].closeAdvised);
  }
  SECTION("LITERAL- allows 4096 octets") {
    ParserSettings minus;
    minus.literalPlus = LiteralPlus::Minus;
    minus.maxLiteral = 10000;
    Collected ok = run("a LOGIN {4096+}\r\n" + std::string(4096, 'u') + " p\r\n", false, minus);
    REQUIRE(ok.commands.size() == 1);
    Collected big =
        run("a LOGIN {4097+}\r\n" + std::string(4097, 'u') + " p\r\nz NOOP\r\n", false, minus);
    REQUIRE(big.errors.size() == 1);
    CHECK(big.errors[0].tooBig);
    CHECK(big.commands == std::vector<std::string>{"z NOOP"});
  }
  SECTION("without LITERAL+ a non-synchronising literal is refused and skipped") {
    ParserSettings none;
    none.literalPlus = LiteralPlus::None;
    Collected r = run("a LOGIN {3+}\r\nz N a\r\nz NOOP\r\n", false, none);
    REQUIRE(r.errors.size() == 1);
    CHECK(r.errors[0].text == "non-synchronizing literals are not supported");
    CHECK(r.commands == std::vector<std::string>{"z NOOP"});
  }
  SECTION("literal8 outside APPEND") {
    Collected r = run("a LOGIN ~{3}\r\nz NOOP\r\n", false, st);
    REQUIRE(r.errors.size() == 1);
    CHECK(r.errors[0].text == "literal8 not allowed here");
    CHECK(r.commands == std::vector<std::string>{"z NOOP"});
  }
  SECTION("a literal without a tag is not accepted") {
    Collected r = run("{5}\r\nz NOOP\r\n", false, st);
    REQUIRE(r.errors.size() == 1);
    CHECK(r.errors[0].tag.empty());
    CHECK(r.continues.empty());
    CHECK(r.commands == std::vector<std::string>{"z NOOP"});
  }
  SECTION("a literal-looking end inside a quoted string is no literal") {
    Collected r = run("a LOGIN \"x {5}\r\nz NOOP\r\n", false, st);
    REQUIRE(r.errors.size() == 1);
    CHECK(r.errors[0].text == "unterminated quoted string");
    CHECK(r.continues.empty());
    CHECK(r.commands == std::vector<std::string>{"z NOOP"});
  }
}

TEST_CASE("line and command limits", "[imap][parser]") {
  ParserSettings st;
  st.maxLine = 100;
  st.maxCommand = 300;
  st.maxLiteral = 1000;
  for (bool bytewise : {false, true}) {
    INFO((bytewise ? "byte at a time" : "whole"));
    // Exactly at the limit is fine.
    std::string atLimit = "a LOGIN x " + std::string(100 - 10, 'p');
    Collected ok = run(atLimit + "\r\n", bytewise, st);
    CHECK(ok.commands.size() == 1);
    // One octet more: BAD [TOOBIG] with the tag, rest of the line dropped.
    Collected r = run(atLimit + "p\r\nz NOOP\r\n", bytewise, st);
    REQUIRE(r.errors.size() == 1);
    CHECK(r.errors[0].tag == "a");
    CHECK(r.errors[0].tooBig);
    CHECK(r.commands == std::vector<std::string>{"z NOOP"});
    // A long line that ends with a non-synchronising literal: its octets
    // are skipped too.
    Collected lit = run("a LOGIN " + std::string(200, 'x') + " {4+}\r\nq NO\r\nz NOOP\r\n",
                        bytewise, st);
    REQUIRE(lit.errors.size() == 1);
    CHECK(lit.commands == std::vector<std::string>{"z NOOP"});
    // The limit is crossed inside the literal header itself.
    for (size_t xs = 88; xs <= 93; ++xs) {  // 8 + xs + 5 > 100
      INFO("xs " << xs);
      Collected mid = run("a LOGIN " + std::string(xs, 'x') + " {4+}\r\nq NO\r\nz NOOP\r\n",
                          bytewise, st);
      REQUIRE(mid.errors.size() == 1);
      CHECK(mid.commands == std::vector<std::string>{"z NOOP"});
    }
    // The command as a whole (lines + literals) is bounded as well.
    Collected cmd = run("a LOGIN {250}\r\n" + std::string(250, 'u') + " {60}\r\nz NOOP\r\n",
                        bytewise, st);
    REQUIRE(cmd.errors.size() == 1);
    CHECK(cmd.errors[0].tooBig);
    CHECK(cmd.errors[0].text == "command too large");
    CHECK(cmd.commands == std::vector<std::string>{"z NOOP"});
  }
}

TEST_CASE("nesting depth and argument counts are bounded", "[imap][parser]") {
  ParserSettings st;
  st.maxDepth = 10;
  st.maxItems = 50;
  auto nested = [](int n) {
    return "a SEARCH " + std::string(static_cast<size_t>(n), '(') + "ALL" +
           std::string(static_cast<size_t>(n), ')') + "\r\n";
  };
  CHECK(run(nested(9), false, st).commands.size() == 1);
  Collected deep = run(nested(10), false, st);
  REQUIRE(deep.errors.size() == 1);
  CHECK(deep.errors[0].text == "nesting too deep");
  std::string nots = "a SEARCH ";
  for (int i = 0; i < 20; ++i) nots += "NOT ";
  Collected n = run(nots + "ALL\r\n", false, st);
  REQUIRE(n.errors.size() == 1);
  CHECK(n.errors[0].text == "nesting too deep");
  // Default limits: 100000 nested parentheses within the line limit do not
  // overflow the stack.
  Collected huge = run(nested(30000), false);
  REQUIRE(huge.errors.size() == 1);
  CHECK(huge.errors[0].text == "nesting too deep");
  std::string manyFlags = "a STORE 1 FLAGS (";
  for (int i = 0; i < 60; ++i) manyFlags += "k" + std::to_string(i) + " ";
  manyFlags.back() = ')';
  Collected many = run(manyFlags + "\r\n", false, st);
  REQUIRE(many.errors.size() == 1);
  CHECK(many.errors[0].text == "too many arguments");
  std::string manyKeys = "a SEARCH";
  for (int i = 0; i < 60; ++i) manyKeys += " SEEN";
  CHECK(run(manyKeys + "\r\n", false, st).errors.size() == 1);
  std::string manyRanges = "a FETCH ";
  for (int i = 1; i <= 60; ++i) manyRanges += std::to_string(i * 2) + ",";
  manyRanges.back() = ' ';
  CHECK(run(manyRanges + "FLAGS\r\n", false, st).errors.size() == 1);
}

namespace {

struct RecordingSink : MessageSink {
  std::vector<std::string> messages;
  std::vector<std::string> log;
  size_t largestChunk = 0;
  void messageBegin(size_t index, uint64_t size, bool binary) override {
    log.push_back("begin " + std::to_string(index) + " " + std::to_string(size) +
                  (binary ? " bin" : ""));
    messages.emplace_back();
  }
  void messageData(std::string_view chunk) override {
    messages.back().append(chunk);
    largestChunk = std::max(largestChunk, chunk.size());
  }
  void messageEnd() override { log.push_back("end"); }
};

}  // namespace

TEST_CASE("APPEND message literals stream to the sink", "[imap][parser]") {
  ParserSettings st;
  st.maxLiteral = 16;
  st.maxCommand = 4096;
  st.maxMessage = 1 << 20;
  std::string body;
  for (int i = 0; i < 20000; ++i) body += static_cast<char>('a' + i % 26);
  const std::string in = "a APPEND INBOX (\\Seen) {20000}\r\n" + body +
                         " ~{4}\r\n" + std::string("\0\1\2\3", 4) + " {0+}\r\n\r\nz NOOP\r\n";
  for (size_t piece : {size_t{1}, size_t{7}, size_t{4096}, in.size()}) {
    INFO("piece " << piece);
    RecordingSink sink;
    Parser p(st, &sink);
    Collected r;
    for (size_t off = 0; off < in.size(); off += piece) {
      p.feed(std::string_view(in).substr(off, piece));
      drain(p, r);
      // Nothing close to the message size is buffered inside the parser.
      CHECK(p.buffered() == 0);
    }
    REQUIRE(r.errors.empty());
    REQUIRE(r.commands.size() == 2);
    CHECK(r.commands[0] == "a APPEND [INBOX] msg(\\Seen,20000) msg(4,bin) msg(0)");
    CHECK(r.commands[1] == "z NOOP");
    CHECK(r.continues == std::vector<uint64_t>{20000, 4});
    CHECK(r.order == std::vector<std::string>{"+", "+", "C", "C"});
    REQUIRE(sink.messages.size() == 3);
    CHECK(sink.messages[0] == body);
    CHECK(sink.messages[1] == std::string("\0\1\2\3", 4));
    CHECK(sink.messages[2].empty());
    CHECK(sink.log == std::vector<std::string>{"begin 0 20000", "end", "begin 1 4 bin", "end",
                                               "begin 2 0", "end"});
    CHECK(sink.largestChunk <= std::max<size_t>(piece, 1));
  }
}

TEST_CASE("a streamed APPEND that turns out bad ends in a ParseError", "[imap][parser]") {
  RecordingSink sink;
  Parser p({}, &sink);
  Collected r;
  p.feed("a APPEND INBOX {3}\r\nabc garbage\r\nz NOOP\r\n");
  drain(p, r);
  CHECK(sink.log == std::vector<std::string>{"begin 0 3", "end"});
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].tag == "a");
  CHECK(r.order == std::vector<std::string>{"+", "E", "C"});
}

TEST_CASE("MULTIAPPEND can be turned off", "[imap][parser]") {
  ParserSettings st;
  st.multiAppend = false;
  Collected r = run("a APPEND INBOX {1+}\r\nx {1+}\r\ny\r\n", false, st);
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].text == "one message per APPEND");
}

TEST_CASE("pipelined commands arrive in order", "[imap][parser]") {
  const std::string in =
      "a NOOP\r\nb LOGIN {1+}\r\nu p\r\nc FETCH 1 FLAGS\r\nbad\r\nd SELECT {5}\r\nINBOX\r\n";
  for (bool bytewise : {false, true}) {
    Collected r = run(in, bytewise);
    CHECK(r.commands == std::vector<std::string>{"a NOOP", "b LOGIN [u] [p]",
                                                 "c FETCH 1 (FLAGS)", "d SELECT [INBOX]"});
    CHECK(r.order == std::vector<std::string>{"C", "C", "C", "E", "+", "C"});
  }
}

TEST_CASE("line mode for AUTHENTICATE and IDLE", "[imap][parser]") {
  Parser p;
  p.feed("a AUTHENTICATE SCRAM-SHA-256\r\nbiwsbj11c2Vy\r\n*\r\nb IDLE\r\nDONE\r\nc NOOP\r\n");
  Event e = p.next();
  REQUIRE(std::holds_alternative<Command>(e));
  CHECK(std::get<Command>(e).kind == CommandKind::Authenticate);
  p.setLineMode(true);
  e = p.next();
  REQUIRE(std::holds_alternative<RawLine>(e));
  CHECK(std::get<RawLine>(e).text == "biwsbj11c2Vy");
  e = p.next();
  REQUIRE(std::holds_alternative<RawLine>(e));
  CHECK(std::get<RawLine>(e).text == "*");
  p.setLineMode(false);
  e = p.next();
  REQUIRE(std::holds_alternative<Command>(e));
  CHECK(std::get<Command>(e).kind == CommandKind::Idle);
  p.setLineMode(true);
  e = p.next();
  REQUIRE(std::holds_alternative<RawLine>(e));
  CHECK(isIdleDone(std::get<RawLine>(e).text));
  CHECK(isIdleDone("done"));
  CHECK_FALSE(isIdleDone("DONE "));
  p.setLineMode(false);
  e = p.next();
  REQUIRE(std::holds_alternative<Command>(e));
  CHECK(std::get<Command>(e).tag == "c");
  CHECK(std::holds_alternative<NeedMore>(p.next()));
  CHECK(p.atCommandStart());
}

TEST_CASE("line mode bounds the line", "[imap][parser]") {
  ParserSettings st;
  st.maxLine = 10;
  Parser p(st);
  p.setLineMode(true);
  p.feed(std::string(50, 'x') + "\r\nshort\r\n");
  Event e = p.next();
  REQUIRE(std::holds_alternative<ParseError>(e));
  CHECK(std::get<ParseError>(e).tooBig);
  e = p.next();
  REQUIRE(std::holds_alternative<RawLine>(e));
  CHECK(std::get<RawLine>(e).text == "short");
}

TEST_CASE("responseName renders FETCH item names", "[imap][parser]") {
  auto first = [](const std::string& in) {
    Parser p;
    p.feed(in);
    Event e = p.next();
    REQUIRE(std::holds_alternative<Command>(e));
    return std::get<FetchArgs>(std::get<Command>(e).args).atts;
  };
  auto atts = first(
      "a FETCH 1 (BODY.PEEK[1.HEADER.FIELDS (From \"X Y\")]<5.10> BINARY.PEEK[2]<0.3> "
      "BINARY.SIZE[] rfc822.size BODY[])\r\n");
  REQUIRE(atts.size() == 5);
  CHECK(atts[0].responseName() == "BODY[1.HEADER.FIELDS (From \"X Y\")]<5>");
  CHECK(atts[1].responseName() == "BINARY[2]<0>");
  CHECK(atts[2].responseName() == "BINARY.SIZE[]");
  CHECK(atts[3].responseName() == "RFC822.SIZE");
  CHECK(atts[4].responseName() == "BODY[]");
  CHECK(atts[0].peek);
  CHECK(atts[0].section.part == std::vector<uint32_t>{1});
  CHECK(atts[0].section.fields == std::vector<std::string>{"From", "X Y"});
}

TEST_CASE("the input buffer does not grow without bound", "[imap][parser]") {
  Parser p;
  Collected r;
  for (int i = 0; i < 10000; ++i) {
    p.feed("a" + std::to_string(i) + " NOOP\r\n");
    drain(p, r);
    CHECK(p.buffered() == 0);
  }
  CHECK(r.commands.size() == 10000);
}

TEST_CASE("a long MULTIAPPEND is checked incrementally", "[imap][parser]") {
  ParserSettings st;
  st.maxItems = 100000;
  st.maxCommand = 4 << 20;
  RecordingSink sink;
  Parser p(st, &sink);
  std::string in = "a APPEND INBOX";
  for (int i = 0; i < 20000; ++i) in += " (\\Seen) {1+}\r\nx";
  in += "\r\n";
  p.feed(in);
  Collected r;
  drain(p, r);
  REQUIRE(r.commands.size() == 1);
  CHECK(sink.messages.size() == 20000);
  CHECK(r.commands[0].size() > 20000 * 10);
}
