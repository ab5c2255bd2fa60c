// Unit tests for yubinctl's `queue` command (ctl/queue_cmd.cpp): the text
// and JSON listings of a spool written with the real queue writer, a spool
// mtad has not created yet, a symlink planted in queue/, and usage errors;
// the commands that go to the master (against a fake master: what is sent,
// what is printed, exit statuses), and the show and mailq renderings.
#include "ctl/queue_cmd.hpp"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>

#include "config/config.hpp"
#include "queue/queue.hpp"
#include "queue/test_util.hpp"

using namespace yubin;
using yubin::queue::testing::TempDir;

namespace {

constexpr int64_t kArrival = 1700000000;

struct Run {
  int rc;
  std::string out;
  std::string err;
};

struct Fixture {
  TempDir dir;
  std::string spool = dir.path() + "/spool";
  config::Config cfg = *config::Config::parse(
      "version = 1\n[global]\ndomains = example.org\nspool_dir = " + spool + "\n", "test.conf");

  Run run(std::vector<std::string> args, int64_t now = kArrival + 125) {
    std::ostringstream out, err;
    int rc = ctl::runQueueCommand(cfg, args, out, err, now);
    return {rc, out.str(), err.str()};
  }

  // Queues one message the way mtad does; returns its ID.
  std::string queueMessage(const std::string& from, std::vector<std::string> to,
                           const std::string& body) {
    auto q = queue::Queue::open({.spoolDir = spool});
    REQUIRE(q.ok());
    queue::Envelope env;
    env.sender = from;
    env.nullSender = from.empty();
    for (auto& t : to) {
      queue::Recipient r;
      r.address = t;
      env.recipients.push_back(r);
    }
    env.arrivalTime = kArrival;
    env.clientAddress = "192.0.2.7";
    env.heloName = "client.example.net";
    auto m = (*q)->begin(env);
    REQUIRE(m.ok());
    REQUIRE(m->append(body).ok());
    auto id = (*q)->commitNow(std::move(*m));
    REQUIRE(id.ok());
    return id->str();
  }
};

}  // namespace

TEST_CASE("queue list: mailq text and JSON of committed messages") {
  Fixture f;
  std::string a =
      f.queueMessage("alice@example.net", {"bob@example.org"}, "Subject: a\r\n\r\nhi\r\n");
  std::string b =
      f.queueMessage("", {"postmaster@example.org", "carol@example.org"}, std::string(3000, 'x'));

  Run text = f.run({"list"});
  CHECK(text.rc == 0);
  CHECK(text.err.empty());
  CHECK(text.out.find("-Queue ID-") == 0);
  CHECK(text.out.find(a + "          18 2023-11-14 22:13:20     2m  alice@example.net\n") !=
        std::string::npos);
  CHECK(text.out.find("bob@example.org\n") != std::string::npos);
  CHECK(text.out.find(b) != std::string::npos);
  CHECK(text.out.find("  <>\n") != std::string::npos);
  CHECK(text.out.find("carol@example.org\n") != std::string::npos);
  CHECK(text.out.find("-- 3 Kbytes in 2 Requests.\n") != std::string::npos);

  Run json = f.run({"queue", "list", "--json"});  // a leading "queue" is skipped
  CHECK(json.rc == 0);
  CHECK(json.out ==
        "{\"version\":1,\"messages\":["
        "{\"id\":\"" +
            a +
            "\",\"area\":\"queue\",\"status\":\"queued\",\"size\":18,"
            "\"sender\":\"alice@example.net\",\"arrival\":1700000000,\"age\":125,"
            "\"client\":\"192.0.2.7\",\"recipients\":[{\"address\":\"bob@example.org\","
            "\"status\":\"pending\",\"attempts\":0,\"last_attempt\":0,\"next_attempt\":0,"
            "\"reply\":\"\"}]},"
            "{\"id\":\"" +
            b +
            "\",\"area\":\"queue\",\"status\":\"queued\",\"size\":3000,"
            "\"sender\":\"\",\"arrival\":1700000000,\"age\":125,"
            "\"client\":\"192.0.2.7\",\"recipients\":[{\"address\":\"postmaster@example.org\","
            "\"status\":\"pending\",\"attempts\":0,\"last_attempt\":0,\"next_attempt\":0,"
            "\"reply\":\"\"},{\"address\":\"carol@example.org\","
            "\"status\":\"pending\",\"attempts\":0,\"last_attempt\":0,\"next_attempt\":0,"
            "\"reply\":\"\"}]}]}\n");
}

TEST_CASE("queue list: a spool mtad has not created yet is empty") {
  Fixture f;
  REQUIRE(::mkdir(f.spool.c_str(), 0700) == 0);
  Run text = f.run({"list"});
  CHECK(text.rc == 0);
  CHECK(text.out == "Mail queue is empty\n");
  Run json = f.run({"list", "--json"});
  CHECK(json.rc == 0);
  CHECK(json.out == "{\"version\":1,\"messages\":[]}\n");
}

TEST_CASE("queue list: a missing spool_dir is an error naming it") {
  Fixture f;
  Run r = f.run({"list"});
  CHECK(r.rc == 1);
  CHECK(r.out.empty());
  CHECK(r.err.find("cannot read the queue in " + f.spool) != std::string::npos);
}

TEST_CASE("queue list: a symlink planted in queue/ is shown corrupt, not followed") {
  Fixture f;
  std::string good = f.queueMessage("alice@example.net", {"bob@example.org"}, "x\r\n");
  // An ID-shaped name pointing at a file the admin may read but mtad's user
  // may not: the listing must not read through it.
  std::string secret = f.dir.path() + "/secret";
  std::ofstream(secret) << "yubin-queue 1 not really\n";
  std::string planted = "0000000000000000";
  REQUIRE(::symlink(secret.c_str(), (f.spool + "/queue/" + planted).c_str()) == 0);
  Run r = f.run({"list", "--json"});
  CHECK(r.rc == 0);
  CHECK(r.out.find("{\"id\":\"" + planted +
                   "\",\"area\":\"queue\",\"status\":\"corrupt\",\"error\":") != std::string::npos);
  CHECK(r.out.find("not really") == std::string::npos);
  CHECK(r.out.find("\"id\":\"" + good + "\",\"area\":\"queue\",\"status\":\"queued\"") !=
        std::string::npos);
}

TEST_CASE("queue: usage errors") {
  Fixture f;
  Run none = f.run({});
  CHECK(none.rc == 2);
  CHECK(none.err.find("missing subcommand") != std::string::npos);
  CHECK(none.err.find("usage: yubinctl queue list [--json]") != std::string::npos);
  Run bad = f.run({"frobnicate"});
  CHECK(bad.rc == 2);
  CHECK(bad.err.find("unknown subcommand 'frobnicate'") != std::string::npos);
  Run arg = f.run({"list", "--xml"});
  CHECK(arg.rc == 2);
  CHECK(arg.err.find("unknown argument '--xml'") != std::string::npos);
}

// ------------------------------------------------- commands through the master

namespace {

ipc::QueueMessageInfo deferredMessage() {
  ipc::QueueMessageInfo m;
  m.id = "362j7yryy8pvkg00";
  m.state = ipc::QueueMsgState::Deferred;
  m.sender = "alice@example.org";
  m.arrival = kArrival;
  m.size = 1500;
  m.envid = "QQ314159";
  m.ret = 2;
  m.recipients.push_back(
      {"bob@example.net", "rfc822", "bob@example.net", queue::kNotifyFailure | queue::kNotifyDelay,
       ipc::QueueRcptStatus::Deferred, 2, kArrival + 10, kArrival + 610, "451 4.7.1 greylisted"});
  m.recipients.push_back({"carol@example.org", "", "", 0, ipc::QueueRcptStatus::Delivered, 1,
                          kArrival + 10, 0, "250 2.0.0 ok"});
  m.recipients.push_back({"dave@example.net", "", "", 0, ipc::QueueRcptStatus::Deferred, 2,
                          kArrival + 10, kArrival + 610, "451 4.7.1 greylisted"});
  m.recipients.push_back(
      {"eve@example.net", "", "", 0, ipc::QueueRcptStatus::Pending, 0, 0, 0, ""});
  return m;
}

struct FakeMaster {
  std::vector<ipc::Message> sent;
  Result<ipc::Message> reply = ipc::Message(ipc::QueueReply{"done", {}});
  ctl::Asker asker() {
    return [this](const ipc::Message& m) -> Result<ipc::Message> {
      sent.push_back(m);
      return reply;
    };
  }
};

Run runRemote(FakeMaster& fm, std::vector<std::string> args) {
  Fixture f;
  std::ostringstream out, err;
  int rc = ctl::runQueueCommand(f.cfg, args, out, err, kArrival + 7200, fm.asker());
  return {rc, out.str(), err.str()};
}

}  // namespace

TEST_CASE("queue: actions are sent to the master as QueueCommand") {
  struct Case {
    std::vector<std::string> args;
    ipc::QueueAction action;
    std::string id;
    std::string out;
  };
  const std::string id = "362j7yryy8pvkg00";
  auto c = GENERATE_COPY(values<Case>({
      {{"flush"}, ipc::QueueAction::Flush, "", "done\n"},
      {{"queue", "retry", id}, ipc::QueueAction::Retry, id, id + ": done\n"},
      {{"hold", id}, ipc::QueueAction::Hold, id, id + ": done\n"},
      {{"release", id}, ipc::QueueAction::Release, id, id + ": done\n"},
      {{"delete", id}, ipc::QueueAction::Delete, id, id + ": done\n"},
      {{"bounce", id}, ipc::QueueAction::Bounce, id, id + ": done\n"},
  }));
  FakeMaster fm;
  Run r = runRemote(fm, c.args);
  INFO(c.args.back());
  CHECK(r.rc == 0);
  CHECK(r.out == c.out);
  CHECK(r.err.empty());
  REQUIRE(fm.sent.size() == 1);
  CHECK(std::get<ipc::QueueCommand>(fm.sent[0]) == ipc::QueueCommand{c.action, c.id});
}

TEST_CASE("queue: bad command lines and bad IDs never reach the master") {
  struct Case {
    std::vector<std::string> args;
    int rc;
    std::string err;
  };
  auto c = GENERATE(values<Case>({
      {{"hold"}, 2, "hold: missing queue ID"},
      {{"hold", "362j7yryy8pvkg00", "362j7yryy8pvkg01"}, 2, "hold: one queue ID"},
      {{"flush", "362j7yryy8pvkg00"}, 2, "flush takes no argument"},
      {{"delete", "--json", "362j7yryy8pvkg00"}, 2, "delete: unknown option '--json'"},
      {{"show", "--xml", "362j7yryy8pvkg00"}, 2, "show: unknown option '--xml'"},
      {{"delete", "../../etc/passwd"}, 1, "invalid queue ID '../../etc/passwd'"},
      {{"retry", "362J7YRYY8PVKG00"}, 1, "invalid queue ID"},
      {{"retry", "362j7yryy8pvkg0"}, 1, "invalid queue ID"},
      {{"retry", "362j7yryy8pvkg0i"}, 1, "invalid queue ID"},
      {{"bounce", std::string("362j7yryy8pvkg0\x1b", 16)},
       1,
       "invalid queue ID '362j7yryy8pvkg0\\x1b'"},
  }));
  FakeMaster fm;
  Run r = runRemote(fm, c.args);
  INFO(c.err);
  CHECK(r.rc == c.rc);
  CHECK(r.err.find(c.err) != std::string::npos);
  CHECK(r.out.empty());
  CHECK(fm.sent.empty());
}

TEST_CASE("queue: the master's error is printed and the exit status is 1") {
  FakeMaster fm;
  fm.reply = Error{"no message 362j7yryy8pvkg00 in the queue"};
  Run r = runRemote(fm, {"show", "362j7yryy8pvkg00"});
  CHECK(r.rc == 1);
  CHECK(r.err == "yubinctl queue show: no message 362j7yryy8pvkg00 in the queue\n");
  CHECK(r.out.empty());
  fm.reply = ipc::Message(ipc::OkReply{"?"});
  Run odd = runRemote(fm, {"flush"});
  CHECK(odd.rc == 1);
  CHECK(odd.err == "yubinctl queue flush: unexpected reply OkReply\n");
}

TEST_CASE("queue show: every field, as text and as JSON") {
  FakeMaster fm;
  fm.reply = ipc::Message(ipc::QueueReply{"", {deferredMessage()}});
  Run r = runRemote(fm, {"show", "362j7yryy8pvkg00"});
  REQUIRE(r.rc == 0);
  CHECK(r.out ==
        "id:           362j7yryy8pvkg00\n"
        "state:        deferred\n"
        "sender:       alice@example.org\n"
        "arrival:      2023-11-14 22:13:20 UTC (2h00m ago)\n"
        "size:         1500\n"
        "envid:        QQ314159\n"
        "ret:          HDRS\n"
        "recipient:    bob@example.net\n"
        "  orcpt:         rfc822;bob@example.net\n"
        "  notify:        FAILURE,DELAY\n"
        "  status:        deferred\n"
        "  attempts:      2\n"
        "  last attempt:  2023-11-14 22:13:30 UTC\n"
        "  next attempt:  2023-11-14 22:23:30 UTC\n"
        "  last reply:    451 4.7.1 greylisted\n"
        "recipient:    carol@example.org\n"
        "  notify:        (not given: FAILURE,DELAY)\n"
        "  status:        delivered\n"
        "  attempts:      1\n"
        "  last attempt:  2023-11-14 22:13:30 UTC\n"
        "  last reply:    250 2.0.0 ok\n"
        "recipient:    dave@example.net\n"
        "  notify:        (not given: FAILURE,DELAY)\n"
        "  status:        deferred\n"
        "  attempts:      2\n"
        "  last attempt:  2023-11-14 22:13:30 UTC\n"
        "  next attempt:  2023-11-14 22:23:30 UTC\n"
        "  last reply:    451 4.7.1 greylisted\n"
        "recipient:    eve@example.net\n"
        "  notify:        (not given: FAILURE,DELAY)\n"
        "  status:        pending\n"
        "  attempts:      0\n"
        "  last attempt:  never\n"
        "  next attempt:  as soon as possible\n");

  Run j = runRemote(fm, {"show", "362j7yryy8pvkg00", "--json"});
  REQUIRE(j.rc == 0);
  CHECK(
      j.out.rfind("{\"version\":1,\"message\":{\"id\":\"362j7yryy8pvkg00\",\"state\":\"deferred\","
                  "\"sender\":\"alice@example.org\",\"arrival\":1700000000,\"size\":1500,"
                  "\"envid\":\"QQ314159\",\"ret\":\"HDRS\",\"recipients\":[{\"address\":"
                  "\"bob@example.net\",\"orcpt_type\":\"rfc822\",\"orcpt\":\"bob@example.net\","
                  "\"notify\":[\"FAILURE\",\"DELAY\"],\"status\":\"deferred\",\"attempts\":2,"
                  "\"last_attempt\":1700000010,\"next_attempt\":1700000610,"
                  "\"reply\":\"451 4.7.1 greylisted\"},{\"address\":\"carol@example.org\","
                  "\"orcpt_type\":null,\"orcpt\":null,\"notify\":[],",
                  0) == 0);
  CHECK(j.out.size() > 2);
  CHECK(j.out.substr(j.out.size() - 4) == "]}}\n");
}

TEST_CASE("queue show: hostile bytes are escaped for the terminal and for JSON") {
  ipc::QueueMessageInfo m = deferredMessage();
  m.sender = "";
  m.envid = std::string("a\x1b[2Jb\xff\\", 8);
  m.recipients.resize(1);
  m.recipients[0].reply = "451 \r\nX-Evil: 1";
  std::string text = ctl::renderShow(m, kArrival);
  CHECK(text.find("sender:       <>\n") != std::string::npos);
  CHECK(text.find("envid:        a\\x1b[2Jb\\xff\\x5c\n") != std::string::npos);
  CHECK(text.find("last reply:    451 \\x0d\\x0aX-Evil: 1\n") != std::string::npos);
  CHECK(text.find('\x1b') == std::string::npos);
  std::string json = ctl::renderShowJson(m);
  CHECK(json.find("\"envid\":\"a\\u001b[2Jb\\ufffd\\\\\"") != std::string::npos);
  CHECK(json.find("\"reply\":\"451 \\u000d\\u000aX-Evil: 1\"") != std::string::npos);
  CHECK(json.find("\"sender\":\"\"") != std::string::npos);
}

TEST_CASE("mailq: Postfix's format, line by line") {
  ::setenv("TZ", "UTC", 1);
  ::tzset();
  CHECK(ctl::renderMailq({}) == "Mail queue is empty\n");

  ipc::QueueMessageInfo held = deferredMessage();
  held.id = "362j7yryyz8vkg00";
  held.state = ipc::QueueMsgState::Held;
  held.sender = "";
  held.size = 600;
  held.recipients.resize(1);
  held.recipients[0].status = ipc::QueueRcptStatus::Pending;
  held.recipients[0].reply.clear();
  ipc::QueueMessageInfo active = deferredMessage();
  active.id = "362j7yrz00000000";
  active.state = ipc::QueueMsgState::Active;
  active.size = 100;
  active.recipients.resize(1);
  active.recipients[0].status = ipc::QueueRcptStatus::Pending;
  std::string want =
      "-Queue ID-        --Size-- ----Arrival Time---- -Sender/Recipient-------\n"
      "362j7yryy8pvkg00      1500 Tue Nov 14 22:13:20  alice@example.org\n"
      "                                                (451 4.7.1 greylisted)\n"
      "                                                bob@example.net\n"
      "                                                dave@example.net\n"
      "                                                eve@example.net\n"
      "\n"
      "362j7yryyz8vkg00!      600 Tue Nov 14 22:13:20  MAILER-DAEMON\n"
      "                                                bob@example.net\n"
      "\n"
      "362j7yrz00000000*      100 Tue Nov 14 22:13:20  alice@example.org\n"
      "                                                bob@example.net\n"
      "\n"
      "-- 3 Kbytes in 3 Requests.\n";
  CHECK(ctl::renderMailq({deferredMessage(), held, active}) == want);
  CHECK(ctl::renderMailq({active}).substr(ctl::renderMailq({active}).rfind("--")) ==
        "-- 1 Kbytes in 1 Request.\n");
}

TEST_CASE("mailq: asks for the list; errors exit 1") {
  FakeMaster fm;
  fm.reply = ipc::Message(ipc::QueueReply{"", {}});
  std::ostringstream out, err;
  CHECK(ctl::runMailq({}, out, err, fm.asker()) == 0);
  CHECK(out.str() == "Mail queue is empty\n");
  REQUIRE(fm.sent.size() == 1);
  CHECK(std::get<ipc::QueueCommand>(fm.sent[0]) == ipc::QueueCommand{ipc::QueueAction::List, ""});
  fm.reply = Error{"yubin-master is not running (nothing listens on /run/yubin/control)"};
  std::ostringstream out2, err2;
  CHECK(ctl::runMailq({}, out2, err2, fm.asker()) == 1);
  CHECK(err2.str() ==
        "mailq: yubin-master is not running (nothing listens on /run/yubin/control)\n");
  std::ostringstream out3, err3;
  CHECK(ctl::runMailq({"-v"}, out3, err3, fm.asker()) == 2);
}
