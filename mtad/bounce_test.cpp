// Tests for the DSN generator: the output is parsed back (headers, MIME
// parts, delivery-status fields) for full and headers-only reports, ORCPT
// and ENVID, hostile texts; the header-section cutter fed whole and byte by
// byte; NOTIFY and status helpers.
#include "mtad/bounce.hpp"

#include <catch2/catch.hpp>
#include <cstdlib>
#include <ctime>
#include <map>
#include <string>
#include <vector>

#include "queue/format.hpp"

using namespace yubin;
using namespace yubin::mtad;

namespace {

// The DSN dates are in local time (mail::rfc5322Date); the expected strings
// below are UTC, so the whole binary runs in UTC.
[[maybe_unused]] const bool kUtc = [] {
  setenv("TZ", "UTC0", 1);
  tzset();
  return true;
}();

struct Entity {
  std::vector<std::pair<std::string, std::string>> headers;  // unfolded, in order
  std::string body;

  std::string get(const std::string& name) const {
    for (const auto& [k, v] : headers)
      if (k == name) return v;
    return "";
  }
  size_t count(const std::string& name) const {
    size_t n = 0;
    for (const auto& [k, v] : headers) n += k == name;
    return n;
  }
};

// RFC 5322 header section + body, CRLF only; fails the test on bare LF.
Entity parseEntity(const std::string& text) {
  Entity e;
  size_t end = text.find("\r\n\r\n");
  std::string head = end == std::string::npos ? text : text.substr(0, end + 2);
  e.body = end == std::string::npos ? "" : text.substr(end + 4);
  size_t pos = 0;
  while (pos < head.size()) {
    size_t eol = head.find("\r\n", pos);
    REQUIRE(eol != std::string::npos);
    std::string line = head.substr(pos, eol - pos);
    pos = eol + 2;
    REQUIRE(line.find('\n') == std::string::npos);
    REQUIRE(line.find('\r') == std::string::npos);
    if (!line.empty() && (line[0] == ' ' || line[0] == '\t')) {
      REQUIRE_FALSE(e.headers.empty());
      e.headers.back().second += " " + line.substr(1);
      continue;
    }
    size_t colon = line.find(':');
    REQUIRE(colon != std::string::npos);
    std::string value = line.substr(colon + 1);
    while (!value.empty() && value[0] == ' ') value.erase(0, 1);
    e.headers.push_back({line.substr(0, colon), value});
  }
  return e;
}

// The body parts of a multipart body (RFC 2046 §5.1.1).
std::vector<std::string> splitParts(const std::string& body, const std::string& boundary) {
  std::vector<std::string> parts;
  std::string first = "--" + boundary + "\r\n";
  size_t start = body.find(first);
  REQUIRE(start != std::string::npos);
  REQUIRE((start == 0 || body.compare(start - 2, 2, "\r\n") == 0));
  start += first.size();
  std::string delim = "\r\n--" + boundary;
  for (;;) {
    size_t next = body.find(delim, start);
    REQUIRE(next != std::string::npos);
    parts.push_back(body.substr(start, next - start));
    size_t after = next + delim.size();
    if (body.compare(after, 2, "--") == 0) {
      CHECK(body.substr(after + 2) == "\r\n");
      break;
    }
    REQUIRE(body.compare(after, 2, "\r\n") == 0);
    start = after + 2;
  }
  return parts;
}

// The groups of "Name: value" lines of a message/delivery-status body.
std::vector<std::map<std::string, std::string>> statusGroups(const std::string& text) {
  std::vector<std::map<std::string, std::string>> groups(1);
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find("\r\n", pos);
    REQUIRE(eol != std::string::npos);
    std::string line = text.substr(pos, eol - pos);
    pos = eol + 2;
    if (line.empty()) {
      if (!groups.back().empty()) groups.emplace_back();
      continue;
    }
    size_t colon = line.find(": ");
    REQUIRE(colon != std::string::npos);
    CHECK(groups.back().count(line.substr(0, colon)) == 0);
    groups.back()[line.substr(0, colon)] = line.substr(colon + 2);
  }
  if (groups.back().empty()) groups.pop_back();
  return groups;
}

const std::string kOriginal =
    "Received: from client.example.net\r\n\tby mx.example.org; Tue, 14 Nov 2023 22:13:20 +0000\r\n"
    "From: alice@example.org\r\nTo: bob@example.org\r\nSubject: hello\r\n\r\n"
    "Body line 1\r\n.dot line\r\n\r\nlast\r\n";

DsnRequest baseRequest() {
  DsnRequest r;
  r.reportingMta = "mx.example.org";
  r.queueId = "362j7yryy8pvkg00";
  r.sender = "alice@example.org";
  r.arrivalTime = 1700000000;
  r.now = 1700003600;
  r.boundary = "=_b_0123456789";
  DsnRecipient rc;
  rc.finalRecipient = "bob@example.org";
  rc.status = "5.2.2";
  rc.diagnostic = "552 5.2.2 Mailbox full";
  rc.lastAttempt = 1700003600;
  r.recipients.push_back(rc);
  return r;
}

}  // namespace

TEST_CASE("a DSN with the whole message parses back", "[bounce]") {
  DsnRequest req = baseRequest();
  DsnParts parts = makeDsn(req);
  std::string dsn = parts.head + kOriginal + parts.tail;

  Entity top = parseEntity(dsn);
  CHECK(top.get("From") == "Mail Delivery System <MAILER-DAEMON@mx.example.org>");
  CHECK(top.get("To") == "<alice@example.org>");
  CHECK(top.get("Subject") == "Undelivered Mail Returned to Sender");
  CHECK(top.get("Date") == "Tue, 14 Nov 2023 23:13:20 +0000");
  CHECK(top.get("Auto-Submitted") == "auto-replied");
  CHECK(top.get("MIME-Version") == "1.0");
  CHECK(top.get("Message-ID") == "<dsn.362j7yryy8pvkg00.1700003600@mx.example.org>");
  CHECK(top.get("Content-Type") ==
        "multipart/report; report-type=delivery-status; boundary=\"=_b_0123456789\"");
  for (const char* h : {"From", "To", "Subject", "Date", "Message-ID", "Content-Type"})
    CHECK(top.count(h) == 1);

  auto bodyParts = splitParts(top.body, req.boundary);
  REQUIRE(bodyParts.size() == 3);

  Entity human = parseEntity(bodyParts[0]);
  CHECK(human.get("Content-Type") == "text/plain; charset=utf-8");
  CHECK(human.body.find("<bob@example.org>: 552 5.2.2 Mailbox full") != std::string::npos);
  CHECK(human.body.find("mx.example.org") != std::string::npos);

  Entity status = parseEntity(bodyParts[1]);
  CHECK(status.get("Content-Type") == "message/delivery-status");
  auto groups = statusGroups(status.body);
  REQUIRE(groups.size() == 2);
  CHECK(groups[0]["Reporting-MTA"] == "dns; mx.example.org");
  CHECK(groups[0]["Arrival-Date"] == "Tue, 14 Nov 2023 22:13:20 +0000");
  CHECK(groups[0].count("Original-Envelope-Id") == 0);
  CHECK(groups[1]["Final-Recipient"] == "rfc822; bob@example.org");
  CHECK(groups[1].count("Original-Recipient") == 0);
  CHECK(groups[1]["Action"] == "failed");
  CHECK(groups[1]["Status"] == "5.2.2");
  CHECK(groups[1]["Diagnostic-Code"] == "smtp; 552 5.2.2 Mailbox full");
  CHECK(groups[1]["Last-Attempt-Date"] == "Tue, 14 Nov 2023 23:13:20 +0000");

  Entity original = parseEntity(bodyParts[2]);
  CHECK(original.get("Content-Type") == "message/rfc822");
  // The original comes back byte for byte: the CRLF before the closing
  // delimiter belongs to the delimiter, so its own last CRLF stays its.
  CHECK(original.body == kOriginal);
}

TEST_CASE("RET=HDRS: only the header section, as text/rfc822-headers", "[bounce]") {
  DsnRequest req = baseRequest();
  req.headersOnly = true;
  DsnParts parts = makeDsn(req);
  HeaderSection cut;
  std::string headers;
  cut.feed(kOriginal, headers);
  CHECK(cut.done());
  std::string dsn = parts.head + headers + parts.tail;
  Entity top = parseEntity(dsn);
  auto bodyParts = splitParts(top.body, req.boundary);
  REQUIRE(bodyParts.size() == 3);
  Entity third = parseEntity(bodyParts[2]);
  CHECK(third.get("Content-Type") == "text/rfc822-headers");
  CHECK(third.body.find("Subject: hello") != std::string::npos);
  CHECK(third.body.find("Body line") == std::string::npos);
}

TEST_CASE("several recipients, ORCPT, ENVID, 8-bit", "[bounce]") {
  DsnRequest req = baseRequest();
  req.envid = "QQ 31+4";
  req.eightBit = true;
  DsnRecipient second;
  second.finalRecipient = "carol@example.org";
  second.originalType = "rfc822";
  second.originalRecipient = "team@example.org";
  second.status = "5.1.1";
  second.diagnostic = "550 5.1.1 carol@example.org: unknown user";
  req.recipients.push_back(second);
  DsnRecipient third;
  third.finalRecipient = "dave@example.org";
  third.originalType = "rfc822";
  third.originalRecipient = "odd\x01name@example.org";
  third.status = "5.4.7";
  req.recipients.push_back(third);

  DsnParts parts = makeDsn(req);
  Entity top = parseEntity(parts.head + kOriginal + parts.tail);
  CHECK(top.get("Content-Transfer-Encoding") == "8bit");
  auto bodyParts = splitParts(top.body, req.boundary);
  REQUIRE(bodyParts.size() == 3);
  auto groups = statusGroups(parseEntity(bodyParts[1]).body);
  REQUIRE(groups.size() == 4);
  CHECK(groups[0]["Original-Envelope-Id"] == "QQ+2031+2B4");
  CHECK(groups[2]["Final-Recipient"] == "rfc822; carol@example.org");
  CHECK(groups[2]["Original-Recipient"] == "rfc822; team@example.org");
  CHECK(groups[2]["Status"] == "5.1.1");
  // Not printable: xtext-encoded.
  CHECK(groups[3]["Original-Recipient"] == "rfc822; odd+01name@example.org");
  CHECK(groups[3]["Status"] == "5.4.7");
  CHECK(groups[3].count("Diagnostic-Code") == 0);
  CHECK(groups[3].count("Last-Attempt-Date") == 0);
  CHECK(parseEntity(bodyParts[2]).get("Content-Transfer-Encoding") == "8bit");
}

TEST_CASE("hostile texts stay inside their fields", "[bounce]") {
  DsnRequest req = baseRequest();
  req.recipients[0].diagnostic = "552 5.2.2 full\r\nX-Injected: yes\r\n\r\nbody \xff\x80";
  req.reportingMta = "mx.example.org\r\nBcc: victim@example.net";
  req.recipients[0].diagnostic += std::string(5000, 'x');
  DsnParts parts = makeDsn(req);
  Entity top = parseEntity(parts.head + kOriginal + parts.tail);
  CHECK(top.count("Bcc") == 0);
  auto bodyParts = splitParts(top.body, req.boundary);
  REQUIRE(bodyParts.size() == 3);
  auto groups = statusGroups(parseEntity(bodyParts[1]).body);
  REQUIRE(groups.size() == 2);
  CHECK(groups[1].count("X-Injected") == 0);
  const std::string& diag = groups[1]["Diagnostic-Code"];
  CHECK(diag.rfind("smtp; 552 5.2.2 full  X-Injected: yes    body ??", 0) == 0);
  CHECK(diag.size() < 998);
  for (char c : parts.head) {
    auto u = static_cast<unsigned char>(c);
    if (c != '\r' && c != '\n' && c != '\t') CHECK((u >= 0x20 && u < 0x7f));
  }
}

TEST_CASE("the header section, whole and byte by byte", "[bounce]") {
  struct Case {
    std::string in;
    std::string want;
    bool done;
  };
  auto c = GENERATE(values<Case>({
      {"A: 1\r\nB: 2\r\n\r\nbody\r\n", "A: 1\r\nB: 2\r\n", true},
      {"\r\nbody only\r\n", "", true},
      {"A: 1\r\n\tcont\r\n\r\n", "A: 1\r\n\tcont\r\n", true},
      {"A: 1\r\nno body, no blank line\r\n", "A: 1\r\nno body, no blank line\r\n", false},
      {"A: x\ry\r\n\r\n", "A: x\ry\r\n", true},
      {"A: 1\r\n\rX\r\n\r\n", "A: 1\r\n\rX\r\n", true},
      {"A: 1\n\nbody", "A: 1\n", true},
      {"", "", false},
  }));
  INFO(c.in);
  HeaderSection whole;
  std::string a;
  whole.feed(c.in, a);
  CHECK(a == c.want);
  CHECK(whole.done() == c.done);
  HeaderSection bytes;
  std::string b;
  for (char ch : c.in) bytes.feed(std::string_view(&ch, 1), b);
  CHECK(b == c.want);
  CHECK(bytes.done() == c.done);
}

TEST_CASE("NOTIFY decides whether a failure is reported", "[bounce]") {
  CHECK(wantsFailureDsn(0));
  CHECK(wantsFailureDsn(queue::kNotifyFailure));
  CHECK(wantsFailureDsn(queue::kNotifyFailure | queue::kNotifyDelay));
  CHECK_FALSE(wantsFailureDsn(queue::kNotifyNever));
  CHECK_FALSE(wantsFailureDsn(queue::kNotifySuccess));
  CHECK_FALSE(wantsFailureDsn(queue::kNotifyDelay | queue::kNotifySuccess));
}

TEST_CASE("status codes and boundaries", "[bounce]") {
  CHECK(dsnStatus(smtp::localReply(552, "5.2.2", "full")) == "5.2.2");
  CHECK(dsnStatus(smtp::localReply(550, "", "no")) == "5.0.0");
  CHECK(dsnStatus(smtp::localReply(451, "", "later")) == "4.0.0");
  std::string b1 = makeBoundary("abc");
  std::string b2 = makeBoundary("abc");
  CHECK(b1 != b2);
  CHECK(b1.rfind("=_yubin_abc_", 0) == 0);
  CHECK(b1.size() <= 70);  // RFC 2046 boundary limit
}
