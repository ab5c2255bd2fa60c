// Unit tests for the queue file and state file formats: exact bytes (the
// example in docs/queue.md), round trips, and strict rejection of every
// kind of damage, including every truncation of a valid file.
#include "queue/format.hpp"

#include <dirent.h>
#include <zlib.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

using namespace yubin::queue;

namespace {

Envelope exampleEnvelope() {
  Envelope env;
  env.sender = "alice@example.org";
  env.recipients = {
      {"bob@example.net", kNotifySuccess | kNotifyFailure, "rfc822", "bob@example.net"}};
  env.ret = Ret::Headers;
  env.envid = "QQ314159";
  env.body = Body::EightBitMime;
  env.arrivalTime = 1700000000;
  env.clientAddress = "192.0.2.7";
  env.heloName = "mail.example.org";
  return env;
}

// The example file of docs/queue.md.
const std::string kExampleEnvelope =
    "time 10:1700000000\n"
    "from 17:alice@example.org\n"
    "null 1:0\n"
    "ret 4:HDRS\n"
    "envid 8:QQ314159\n"
    "body 8:8BITMIME\n"
    "utf8 1:0\n"
    "client 9:192.0.2.7\n"
    "helo 16:mail.example.org\n"
    "auth 0:\n"
    "rcpts 1:1\n"
    "to 15:bob@example.net\n"
    "notify 1:6\n"
    "otype 6:rfc822\n"
    "orcpt 15:bob@example.net\n";
const std::string kExampleMessage = "Subject: hi\r\n\r\nhello\r\n";
const std::string kExampleFile =
    "yubin-queue 1 0000000242 00000000000000000022\n" + kExampleEnvelope + kExampleMessage;

std::string image(const Envelope& env, const std::string& msg) {
  std::string e = encodeEnvelope(env);
  std::string h = encodeHeaderPlaceholder(e.size(), 1);
  h.replace(kMessageSizeOffset, 20, encodeMessageSize(msg.size()));
  return h + e + msg;
}

}  // namespace

TEST_CASE("the example in docs/queue.md is exactly what the encoder writes") {
  Envelope env = exampleEnvelope();
  CHECK(encodeEnvelope(env) == kExampleEnvelope);
  CHECK(kExampleEnvelope.size() == 242);
  CHECK(encodeHeaderPlaceholder(242, 1) == "yubin-queue 1 0000000242 xxxxxxxxxxxxxxxxxxxx\n");
  CHECK(encodeHeaderPlaceholder(242, 2) == "yubin-queue 2 0000000242 xxxxxxxxxxxxxxxxxxxx\n");
  CHECK(encodeHeaderPlaceholder(242) == "yubin-queue 3 0000000242 xxxxxxxxxxxxxxxxxxxx\n");
  CHECK(image(env, kExampleMessage) == kExampleFile);
  CHECK(encodeImage(env, kExampleMessage, 1) == kExampleFile);
  auto parsed = parseImage(kExampleFile);
  REQUIRE(parsed.ok());
  env.size = kExampleMessage.size();
  CHECK(*parsed == env);
}

TEST_CASE("envelopes round-trip") {
  Envelope minimal;
  minimal.nullSender = true;
  minimal.recipients = {{"postmaster", 0, "", ""}};

  Envelope full = exampleEnvelope();
  full.ret = Ret::Full;
  full.body = Body::BinaryMime;
  full.smtputf8 = true;
  full.sender =
      "j\xc3\xbcrgen@b\xc3\xbc"
      "cher.example";  // UTF-8 (SMTPUTF8)
  full.authUser = "alice";
  full.clientAddress = "2001:db8::7";
  full.arrivalTime = int64_t{1} << 40;
  for (int i = 0; i < 50; ++i)
    full.recipients.push_back({"r" + std::to_string(i) + "@example.com",
                               static_cast<uint8_t>(i % 2 ? kNotifyNever : kNotifyDelay), "", ""});
  full.recipients.push_back({"\"quoted local\"@example.com",
                             kNotifySuccess | kNotifyFailure | kNotifyDelay, "rfc822",
                             "x+y@example.com"});
  // ENVID and ORCPT are xtext-decoded and may hold any byte.
  full.envid = std::string("id\0\r\n\x7f\xff", 7);
  full.recipients.push_back({"utf8@example.com", 0, "utf-8", std::string("\x01\n", 2)});

  Envelope sevenBit = exampleEnvelope();
  sevenBit.body = Body::SevenBit;
  sevenBit.ret = Ret::Unspecified;
  sevenBit.recipients[0].orcpt = std::string(kMaxFieldSize, 'o');
  sevenBit.recipients.push_back({"type-only@example.com", 0, "rfc822", ""});

  auto env = GENERATE_COPY(minimal, full, sevenBit);
  for (std::string msg : {std::string(), std::string("x"), std::string("a\r\nb\r\n.\r\n")}) {
    std::string file = image(env, msg);
    auto back = parseImage(file);
    REQUIRE(back.ok());
    Envelope expect = env;
    expect.size = msg.size();
    CHECK(*back == expect);
  }
}

TEST_CASE("the writer refuses envelopes the reader would refuse") {
  std::vector<std::pair<std::string, Envelope>> cases;
  auto add = [&](std::string name, auto change) {
    Envelope e = exampleEnvelope();
    change(e);
    cases.emplace_back(std::move(name), std::move(e));
  };
  add("null flag without empty sender", [](Envelope& e) { e.nullSender = true; });
  add("empty sender without null flag", [](Envelope& e) { e.sender.clear(); });
  add("no recipients", [](Envelope& e) { e.recipients.clear(); });
  add("empty recipient", [](Envelope& e) { e.recipients[0].address.clear(); });
  add("CRLF in sender", [](Envelope& e) { e.sender = "a\r\nb"; });
  add("NUL in helo", [](Envelope& e) { e.heloName = std::string("a\0b", 3); });
  add("DEL in client address", [](Envelope& e) { e.clientAddress = "a\x7f"; });
  add("tab in auth", [](Envelope& e) { e.authUser = "a\tb"; });
  add("field too long", [](Envelope& e) { e.clientAddress = std::string(kMaxFieldSize + 1, 'a'); });
  add("NEVER with others",
      [](Envelope& e) { e.recipients[0].notify = kNotifyNever | kNotifyDelay; });
  add("notify out of range", [](Envelope& e) { e.recipients[0].notify = 16; });
  add("ORCPT without type", [](Envelope& e) { e.recipients[0].orcptType.clear(); });
  add("control character in ORCPT type",
      [](Envelope& e) { e.recipients[0].orcptType = "rfc\n822"; });
  add("ENVID too long", [](Envelope& e) { e.envid = std::string(kMaxFieldSize + 1, 'e'); });
  add("negative time", [](Envelope& e) { e.arrivalTime = -1; });
  for (auto& [name, env] : cases) {
    CAPTURE(name);
    auto st = validateEnvelope(env);
    CHECK_FALSE(st.ok());
    CHECK(st.error().errnum == EINVAL);
  }
  CHECK(validateEnvelope(exampleEnvelope()).ok());
}

TEST_CASE("every truncation of a valid file is rejected, never crashes") {
  // The byte-at-a-time rule for a parser over whole files: each prefix.
  for (size_t n = 0; n < kExampleFile.size(); ++n) {
    auto r = parseImage(std::string_view(kExampleFile).substr(0, n));
    CAPTURE(n);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().errnum == EBADMSG);
  }
  // And each prefix of the envelope section alone.
  for (size_t n = 0; n < kExampleEnvelope.size(); ++n)
    CHECK_FALSE(parseEnvelope(std::string_view(kExampleEnvelope).substr(0, n)).ok());
}

TEST_CASE("damaged files are rejected with a reason") {
  auto with = [](size_t pos, size_t len, const std::string& repl) {
    std::string f = kExampleFile;
    f.replace(pos, len, repl);
    return f;
  };
  size_t env0 = kHeaderSize;
  struct Case {
    std::string name;
    std::string file;
    std::string reason;
  };
  std::vector<Case> cases = {
      {"bad magic", with(0, 5, "YUBIN"), "bad magic"},
      {"other format", "From alice@example.org Mon Jan 1\n" + kExampleEnvelope, "bad magic"},
      {"version 4", with(12, 1, "4"), "unsupported version 4"},
      {"version 10", with(12, 1, "10"), "unsupported version 10"},
      {"bad version", with(12, 1, "x"), "bad version"},
      {"uncommitted", with(kMessageSizeOffset, 20, std::string(20, 'x')), "never written"},
      {"trailing bytes", kExampleFile + "\r\n", "trailing bytes after the message"},
      {"message shorter than header says", kExampleFile.substr(0, kExampleFile.size() - 1),
       "truncated message"},
      {"absurd envelope length", with(14, 10, "9999999999"), "envelope length out of range"},
      {"absurd message length", with(25, 20, "09999999999999999999"), "bad message length"},
      {"message length beyond 2^64", with(25, 20, "99999999999999999999"), "bad message length"},
      {"sign in length", with(14, 10, "-000000242"), "bad envelope length"},
      {"header without newline", with(45, 1, " "), "bad header layout"},
      {"envelope length too small", with(14, 10, "0000000241"), ""},
      {"envelope length too large", with(14, 10, "0000000243"), ""},
      {"field out of order", with(env0, 18, "from 10:1700000000"), "expected field 'time'"},
      {"leading zero in field length", with(env0, 7, "time 010"), "bad length"},
      {"field length overflows", with(env0, 7, "time 99999999999999999999"), "bad length"},
      {"field too long", with(env0, 7, "time 4097"), ""},
      {"missing newline after value", with(env0 + 18, 1, "X"), "no newline"},
      {"leading zero in number", with(env0, 18, "time 10:0700000000"), "bad number"},
      {"RET garbage", with(env0 + 54, 11, "ret 4:NONE\n"), "bad RET"},
      {"null flag 2", with(env0 + 45, 9, "null 1:2\n"), "bad number"},
      {"control character", with(env0 + 8, 1, "\x01"), "control character"},
      {"zero recipients", with(env0 + 159, 10, "rcpts 1:0\n"), "no recipients"},
      {"more recipients than present", with(env0 + 159, 10, "rcpts 1:2\n"), "expected field 'to'"},
      {"notify NEVER+DELAY", with(env0 + 191, 11, "notify 1:9\n"), "invalid envelope"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    auto r = parseImage(c.file);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().errnum == EBADMSG);
    CHECK_THAT(r.error().message, Catch::Contains(c.reason));
  }
}

TEST_CASE("state files round-trip and are parsed strictly") {
  MessageState st;
  st.rcpts.push_back({});
  st.rcpts.push_back({RcptStatus::Delivered, 1, 1700000100, 0, "250 2.0.0 ok queued as 42"});
  st.rcpts.push_back({RcptStatus::Deferred, 3, 1700000200, 1700003800, "451 4.7.1 greylisted"});
  st.rcpts.push_back({RcptStatus::Bounced, 1, 1700000300, 0, "550 5.1.1 no such user"});
  st.rcpts.push_back({RcptStatus::Held, 0, 0, 0, ""});
  std::string bytes = encodeState(st);
  CHECK(bytes.rfind("yubin-state 1\nrcpts 1:5\nstatus 7:pending\nattempts 1:0\nlast 1:0\nnext "
                    "1:0\nreply 0:\n",
                    0) == 0);
  auto back = parseState(bytes);
  REQUIRE(back.ok());
  CHECK(*back == st);

  // Multi-line replies are kept on one line; over-long ones are cut.
  MessageState ml;
  ml.rcpts.push_back({RcptStatus::Bounced, 1, 5, 0, "550-5.1.1 no\r\n550 5.1.1 user"});
  ml.rcpts.push_back({RcptStatus::Deferred, 1, 5, 6, std::string(kMaxFieldSize + 10, 'r')});
  auto mlBack = parseState(encodeState(ml));
  REQUIRE(mlBack.ok());
  CHECK(mlBack->rcpts[0].reply == "550-5.1.1 no  550 5.1.1 user");
  CHECK(mlBack->rcpts[1].reply.size() == kMaxFieldSize);

  for (size_t n = 0; n < bytes.size(); ++n)
    CHECK_FALSE(parseState(std::string_view(bytes).substr(0, n)).ok());
  CHECK_FALSE(parseState(bytes + "x").ok());
  CHECK_FALSE(parseState("yubin-state 2\nrcpts 1:0\n").ok());
  std::string badStatus = bytes;
  badStatus.replace(bytes.find("pending"), 7, "PENDING");
  CHECK_FALSE(parseState(badStatus).ok());
  CHECK(parseState("yubin-state 1\nrcpts 1:0\n").ok());
}

TEST_CASE("the committed fuzz corpus parses without crashing") {
  size_t files = 0;
  for (auto& e : std::filesystem::directory_iterator(QUEUE_FUZZ_CORPUS)) {
    std::ifstream in(e.path(), std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string data = ss.str();
    std::string name = e.path().filename().string();
    CAPTURE(name);
    auto img = parseImage(data);
    auto st = parseState(data);
    if (name.rfind("valid-", 0) == 0) CHECK(img.ok());
    if (name.rfind("state-", 0) == 0) CHECK(st.ok());
    ++files;
  }
  CHECK(files >= 4);
}

// ------------------------------------------------------- versions 2 and 3

TEST_CASE("versions 2 and 3: the trailer proves the file whole") {
  const int version = GENERATE(2, 3);
  CAPTURE(version);
  Envelope env = exampleEnvelope();
  std::string file = encodeImage(env, kExampleMessage, version);
  // Appended in steps: GCC 12 at -O3 warns (-Wrestrict, falsely) on chains of +.
  std::string body = "yubin-queue " + std::to_string(version) + " 0000000242 00000000000000000022\n";
  body += kExampleEnvelope;
  body += kExampleMessage;
  REQUIRE(file.size() == body.size() + kTrailerSize);
  CHECK(file.substr(0, body.size()) == body);
  // "yubin-end <20-digit length> <64 hex>\n", length = the bytes before it.
  std::string trailer = file.substr(body.size());
  CHECK(trailer.rfind("yubin-end 00000000000000000310 ", 0) == 0);
  CHECK(trailer.back() == '\n');
  auto t = parseTrailer(trailer);
  REQUIRE(t.ok());
  CHECK(t->length == body.size());
  CHECK(t->checksum.size() == kChecksumSize);
  // The checksum, computed independently: BLAKE2b-256(header || inner),
  // inner = the CRC-32 of everything between the header and the trailer
  // as 4 big-endian bytes (version 3), or its BLAKE2b-256 (version 2).
  const auto* rest = reinterpret_cast<const unsigned char*>(body.data()) + kHeaderSize;
  const size_t restSize = body.size() - kHeaderSize;
  std::string both = body.substr(0, kHeaderSize);
  if (version == 2) {
    unsigned char inner[32];
    crypto_generichash(inner, 32, rest, restSize, nullptr, 0);
    both.append(reinterpret_cast<char*>(inner), 32);
  } else {
    const uLong crc = crc32(0, rest, static_cast<uInt>(restSize));
    for (int shift : {24, 16, 8, 0}) both += static_cast<char>((crc >> shift) & 0xff);
  }
  unsigned char outer[32];
  crypto_generichash(outer, 32, reinterpret_cast<const unsigned char*>(both.data()), both.size(),
                     nullptr, 0);
  CHECK(t->checksum == std::string(reinterpret_cast<char*>(outer), 32));

  CHECK(verifyImage(file).ok());
  auto back = parseImage(file);
  REQUIRE(back.ok());
  env.size = kExampleMessage.size();
  CHECK(*back == env);

  // Incremental hashing in any split gives the same trailer.
  for (size_t cut = 0; cut <= body.size() - kHeaderSize; cut += 7) {
    ImageHasher h(version);
    std::string_view tail = std::string_view(body).substr(kHeaderSize);
    h.update(tail.substr(0, cut));
    h.update(tail.substr(cut));
    CHECK(h.trailer(body.substr(0, kHeaderSize), body.size()) == trailer);
  }

  // A trailer made by the other version's checksum does not verify.
  std::string other = body;
  other[12] = version == 2 ? '3' : '2';
  other += trailer;
  CHECK_FALSE(verifyImage(other).ok());
}

TEST_CASE("versions 2 and 3: every truncation and every flipped byte is refused") {
  const int version = GENERATE(2, 3);
  CAPTURE(version);
  std::string file = encodeImage(exampleEnvelope(), kExampleMessage, version);
  for (size_t n = 0; n < file.size(); ++n) {
    CAPTURE(n);
    auto r = parseImage(std::string_view(file).substr(0, n));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().errnum == EBADMSG);
  }
  for (size_t i = 0; i < file.size(); ++i) {
    CAPTURE(i);
    std::string bad = file;
    bad[i] = static_cast<char>(bad[i] ^ 0x20);
    CHECK_FALSE(verifyImage(bad).ok());
    CHECK_FALSE(parseImage(bad).ok());
  }
  // Stale blocks: a stretch of zeros in the middle, the size unchanged.
  std::string zeros = file;
  std::fill(zeros.begin() + 100, zeros.begin() + 200, '\0');
  auto r = verifyImage(zeros);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.error().message, Catch::Contains("checksum"));
  // Trailer shapes.
  CHECK_FALSE(parseTrailer(std::string(kTrailerSize, '\0')).ok());
  std::string upper = file.substr(file.size() - kTrailerSize);
  upper[40] = 'A';
  CHECK_FALSE(parseTrailer(upper).ok());
  CHECK_FALSE(parseImage(file + "x").ok());
}
