// Unit tests for the queue listing (yubinctl queue list): content, JSON and
// mailq renderings, corrupt files shown not moved, and read-only behaviour.
#include "queue/listing.hpp"

#include <catch2/catch.hpp>
#include <fstream>

#include "queue/queue.hpp"
#include "queue/test_util.hpp"

using namespace yubin;
using namespace yubin::queue;
using namespace yubin::queue::testing;

namespace {

QueueId commit(Queue& q, Envelope env, const std::string& body) {
  auto m = q.begin(env);
  REQUIRE(m.ok());
  REQUIRE(m->append(body).ok());
  auto id = q.commitNow(std::move(*m));
  REQUIRE(id.ok());
  return *id;
}

Envelope env(const std::string& sender, std::vector<std::string> rcpts, int64_t t) {
  Envelope e;
  e.sender = sender;
  e.nullSender = sender.empty();
  for (auto& r : rcpts) e.recipients.push_back({r, 0, "", ""});
  e.arrivalTime = t;
  return e;
}

std::vector<std::string> tree(const std::string& spool) {
  std::vector<std::string> out;
  for (const char* d : {"tmp", "queue", "hold", "corrupt", "state"})
    for (auto& n : listNames(spool + "/" + d)) out.push_back(std::string(d) + "/" + n);
  return out;
}

}  // namespace

TEST_CASE("formatAge") {
  std::vector<std::pair<int64_t, std::string>> cases = {{-5, "0s"},
                                                        {0, "0s"},
                                                        {59, "59s"},
                                                        {60, "1m"},
                                                        {3599, "59m"},
                                                        {3600, "1h00m"},
                                                        {3 * 3600 + 5 * 60 + 9, "3h05m"},
                                                        {86400, "1d00h"},
                                                        {2 * 86400 + 4 * 3600 + 7, "2d04h"}};
  for (auto& [s, want] : cases) {
    CAPTURE(s);
    CHECK(formatAge(s) == want);
  }
}

TEST_CASE("an empty queue") {
  TempDir tmp;
  auto q = Queue::open({tmp.path()});
  REQUIRE(q.ok());
  auto entries = listQueue(tmp.path());
  REQUIRE(entries.ok());
  CHECK(entries->empty());
  CHECK(renderJson(*entries, 0) == "{\"version\":1,\"messages\":[]}\n");
  CHECK(renderMailq(*entries, 0) == "Mail queue is empty\n");
  // No spool at all is an error, not an empty list.
  CHECK_FALSE(listQueue(tmp.path() + "/nope").ok());
}

TEST_CASE("listing shows messages, their state, held and corrupt ones, and changes nothing") {
  TempDir tmp;
  auto qr = Queue::open({tmp.path()});
  REQUIRE(qr.ok());
  Queue& q = **qr;
  const int64_t t0 = 1700000000;
  QueueId a = commit(q, env("alice@example.org", {"bob@example.net", "carol@example.net"}, t0),
                     std::string(1500, 'a'));
  QueueId b = commit(q, env("", {"postmaster@example.org"}, t0 + 100), "bounce");
  QueueId c = commit(q, env("eve\xff@example.org", {"x@example.net"}, t0 + 200), "");
  REQUIRE(
      q.saveState(a,
                  MessageState{
                      {RcptState{RcptStatus::Delivered, 1, t0 + 10, 0, "250 2.0.0 \"ok\" \\o/"},
                       RcptState{RcptStatus::Deferred, 2, t0 + 20, t0 + 3620, "451 4.7.1 later"}}})
          .ok());
  REQUIRE(q.hold(b).ok());
  // Damaged behind the queue's back: shown as corrupt, left where it is.
  {
    // A record's key damaged in place (the trailer still in place: the
    // listing's cheap check passes, the envelope does not parse).
    std::fstream f(tmp.path() + "/queue/" + c.str(),
                   std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(kHeaderSize);
    f << "TIME";
  }
  // Already quarantined, with its state beside it.
  IdGenerator gen(5);
  QueueId d = gen.next(uint64_t(t0) * 1000000);
  std::ofstream(tmp.path() + "/corrupt/" + d.str()) << "garbage";
  std::ofstream(tmp.path() + "/corrupt/" + d.str() + ".state") << "garbage";

  auto before = tree(tmp.path());
  auto entries = listQueue(tmp.path());
  REQUIRE(entries.ok());
  CHECK(tree(tmp.path()) == before);

  REQUIRE(entries->size() == 4);
  const QueueEntry& ea = (*entries)[0];
  CHECK(ea.id == a);
  CHECK(ea.area == Area::Queue);
  CHECK(ea.error.empty());
  CHECK(ea.status() == "deferred");
  CHECK(ea.envelope.size == 1500);
  CHECK(ea.envelope.sender == "alice@example.org");
  REQUIRE(ea.state.rcpts.size() == 2);
  CHECK(ea.state.rcpts[1].nextAttempt == t0 + 3620);
  const QueueEntry& ec = (*entries)[1];
  CHECK(ec.id == c);
  CHECK(ec.status() == "corrupt");
  CHECK_THAT(ec.error, Catch::Contains("expected field 'time'"));
  const QueueEntry& eb = (*entries)[2];
  CHECK(eb.id == b);
  CHECK(eb.area == Area::Hold);
  CHECK(eb.status() == "held");
  CHECK(eb.state.rcpts.size() == 1);
  const QueueEntry& ed = (*entries)[3];
  CHECK(ed.id == d);
  CHECK(ed.area == Area::Corrupt);
  CHECK(ed.status() == "corrupt");

  const int64_t now = t0 + 7200;
  std::string json = renderJson(*entries, now);
  std::string wantA =
      "{\"id\":\"" + a.str() +
      "\",\"area\":\"queue\",\"status\":\"deferred\",\"size\":1500,"
      "\"sender\":\"alice@example.org\",\"arrival\":1700000000,\"age\":7200,\"recipients\":["
      "{\"address\":\"bob@example.net\",\"status\":\"delivered\",\"attempts\":1,"
      "\"last_attempt\":1700000010,\"next_attempt\":0,\"reply\":\"250 2.0.0 \\\"ok\\\" \\\\o/\"},"
      "{\"address\":\"carol@example.net\",\"status\":\"deferred\",\"attempts\":2,"
      "\"last_attempt\":1700000020,\"next_attempt\":1700003620,\"reply\":\"451 4.7.1 later\"}]}";
  CHECK(json.rfind("{\"version\":1,\"messages\":[" + wantA + ",", 0) == 0);
  CHECK_THAT(json, Catch::Contains("{\"id\":\"" + b.str() +
                                   "\",\"area\":\"hold\",\"status\":\"held\",\"size\":6,"
                                   "\"sender\":\"\",\"arrival\":1700000100,\"age\":7100,"));
  CHECK_THAT(json, Catch::Contains("{\"id\":\"" + c.str() +
                                   "\",\"area\":\"queue\",\"status\":\"corrupt\",\"error\":\""));
  CHECK_THAT(json, Catch::Contains("{\"id\":\"" + d.str() +
                                   "\",\"area\":\"corrupt\",\"status\":\"corrupt\",\"error\":"));
  CHECK(json.back() == '\n');

  // Invalid UTF-8 in a sender becomes U+FFFD in JSON.
  Envelope bad = env("eve\xff@example.org", {"x@example.net"}, t0);
  std::vector<QueueEntry> one{QueueEntry{c, Area::Queue, "", bad, MessageState{{RcptState{}}}}};
  CHECK_THAT(renderJson(one, t0), Catch::Contains("\"sender\":\"eve\\ufffd@example.org\""));
  CHECK_THAT(renderMailq(one, t0), Catch::Contains(" eve?@example.org\n"));

  std::string text = renderMailq(*entries, now);
  INFO(text);
  std::string pad(57, ' ');
  CHECK(text.rfind(
            "-Queue ID-          --Size-- ----Arrival Time---  -Age-  -Sender/Recipient-------\n",
            0) == 0);
  CHECK_THAT(text,
             Catch::Contains(
                 a.str() + "        1500 2023-11-14 22:13:20  2h00m  alice@example.org\n" + pad +
                 "bob@example.net\n" + pad + "  (delivered, 1 attempt: 250 2.0.0 \"ok\" \\o/)\n" +
                 pad + "carol@example.net\n" + pad +
                 "  (deferred, 2 attempts, next 2023-11-14 23:13:40: 451 4.7.1 later)\n\n"));
  CHECK_THAT(text, Catch::Contains(b.str() + "!          6 2023-11-14 22:15:00  1h58m  <>\n" + pad +
                                   "postmaster@example.org\n\n"));
  CHECK_THAT(text, Catch::Contains(c.str() + "#          ?"));
  CHECK_THAT(text, Catch::Contains(d.str() + "#          ?"));
  CHECK_THAT(text, Catch::EndsWith("-- 2 Kbytes in 4 Requests.\n"));
}
