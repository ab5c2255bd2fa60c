// Unit tests for the outcome table: LMTP reply and exit status of every
// outcome (with and without quota_temporary), error classification, and how
// the outcomes of an alias's users combine.
#include "mdad/outcome.hpp"

#include <catch2/catch.hpp>
#include <cerrno>

using namespace yubin;
using namespace yubin::mdad;

TEST_CASE("every outcome has its reply and exit status") {
  struct Row {
    Outcome o;
    bool quotaTemporary;
    int code;
    const char* enhanced;
    int exit;
    bool temporary;
  };
  const Row rows[] = {
      {Outcome::Delivered, false, 250, "2.0.0", 0, false},
      {Outcome::UnknownUser, false, 550, "5.1.1", 67, false},
      {Outcome::NotLocal, false, 550, "5.1.1", 67, false},
      {Outcome::Loop, false, 554, "5.4.6", 65, false},
      {Outcome::BadMessage, false, 554, "5.6.0", 65, false},
      {Outcome::TooBig, false, 552, "5.3.4", 65, false},
      {Outcome::OverQuota, false, 552, "5.2.2", 73, false},
      {Outcome::OverQuota, true, 452, "4.2.2", 75, true},
      {Outcome::NoSpace, false, 452, "4.3.1", 75, true},
      {Outcome::MailboxBusy, false, 451, "4.2.0", 75, true},
      {Outcome::TempFail, false, 451, "4.3.0", 75, true},
      {Outcome::Error, false, 451, "4.3.0", 75, true},
  };
  for (const Row& r : rows) {
    CAPTURE(std::string(outcomeName(r.o)), r.quotaTemporary);
    smtp::Reply reply = replyFor(r.o, r.quotaTemporary);
    CHECK(reply.code == r.code);
    CHECK(reply.enhanced == r.enhanced);
    CHECK_FALSE(reply.text.empty());
    // Renders without tripping the catalogue's code/class check.
    CHECK(smtp::render(reply).substr(0, 3) == std::to_string(r.code));
    CHECK(exitCodeFor(r.o, r.quotaTemporary) == r.exit);
    CHECK(isTemporary(r.o, r.quotaTemporary) == r.temporary);
    // A temporary outcome is exactly one whose reply is 4xx and exit 75.
    CHECK((reply.code / 100 == 4) == r.temporary);
  }
}

TEST_CASE("outcome names are distinct") {
  const Outcome all[] = {Outcome::Delivered, Outcome::UnknownUser, Outcome::NotLocal,
                         Outcome::Loop,      Outcome::BadMessage,  Outcome::TooBig,
                         Outcome::OverQuota, Outcome::NoSpace,     Outcome::MailboxBusy,
                         Outcome::TempFail,  Outcome::Error};
  std::vector<std::string_view> names;
  for (Outcome o : all) names.push_back(outcomeName(o));
  std::sort(names.begin(), names.end());
  CHECK(std::adjacent_find(names.begin(), names.end()) == names.end());
  CHECK(outcomeName(Outcome::OverQuota) == "over-quota");
}

TEST_CASE("store errors map to outcomes by errno") {
  CHECK(outcomeOfError(Error{"x", ENOSPC}) == Outcome::NoSpace);
  CHECK(outcomeOfError(Error{"x", EDQUOT}) == Outcome::OverQuota);
  CHECK(outcomeOfError(Error{"lock: timed out", ETIMEDOUT}) == Outcome::MailboxBusy);
  CHECK(outcomeOfError(Error{"x", EACCES}) == Outcome::Error);
  CHECK(outcomeOfError(Error{"x", EIO}) == Outcome::Error);
  CHECK(outcomeOfError(Error{"x", 0}) == Outcome::Error);
}

TEST_CASE("outcomes of an alias's users combine: temporary, then permanent, then delivered") {
  struct Row {
    Outcome a, b;
    bool quotaTemporary;
    Outcome want;
  };
  const Row rows[] = {
      {Outcome::Delivered, Outcome::Delivered, false, Outcome::Delivered},
      {Outcome::Delivered, Outcome::Loop, false, Outcome::Loop},
      {Outcome::Loop, Outcome::Delivered, false, Outcome::Loop},
      {Outcome::Delivered, Outcome::NoSpace, false, Outcome::NoSpace},
      {Outcome::OverQuota, Outcome::NoSpace, false, Outcome::NoSpace},
      {Outcome::NoSpace, Outcome::OverQuota, false, Outcome::NoSpace},
      {Outcome::NoSpace, Outcome::MailboxBusy, false, Outcome::NoSpace},  // first stays
      {Outcome::Loop, Outcome::OverQuota, false, Outcome::Loop},          // first stays
      {Outcome::Loop, Outcome::OverQuota, true, Outcome::OverQuota},      // now temporary
      {Outcome::OverQuota, Outcome::Delivered, true, Outcome::OverQuota},
  };
  for (const Row& r : rows) {
    CAPTURE(std::string(outcomeName(r.a)), std::string(outcomeName(r.b)), r.quotaTemporary);
    CHECK(combine(r.a, r.b, r.quotaTemporary) == r.want);
  }
}
