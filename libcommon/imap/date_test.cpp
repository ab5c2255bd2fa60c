// Tests for IMAP date and date-time parsing, validation and formatting.
#include "imap/date.hpp"

#include <catch2/catch.hpp>
#include <cstdio>

using namespace yubin::imap;

TEST_CASE("dates parse", "[imap][date]") {
  struct Case {
    const char* in;
    Date want;
  };
  auto c = GENERATE(values<Case>({
      {"1-Feb-1994", {1994, 2, 1}},
      {"01-Feb-1994", {1994, 2, 1}},
      {"29-feb-2000", {2000, 2, 29}},
      {"31-DEC-9999", {9999, 12, 31}},
      {"29-Feb-2024", {2024, 2, 29}},
  }));
  auto d = parseDate(c.in);
  REQUIRE(d.ok());
  CHECK(d.value() == c.want);
  auto back = parseDate(formatDate(*d));
  REQUIRE(back.ok());
  CHECK(back.value() == c.want);
}

TEST_CASE("bad dates are refused", "[imap][date]") {
  auto bad = GENERATE(as<std::string>{}, "", "1-Feb-94", "001-Feb-1994", "32-Jan-2020",
                      "29-Feb-1900", "29-Feb-2023", "31-Apr-2020", "0-Jan-2020", "1-Foo-2020",
                      "1-Feb-0000", "1 Feb 1994", "1-Feb-1994 ", "-Feb-1994", "1--1994",
                      "1-February-1994", "1-Feb-19945", std::string("1-Feb-199\0", 10),
                      "\"1-Feb-1994\"");
  CHECK_FALSE(parseDate(bad).ok());
}

TEST_CASE("date-times parse, with zones", "[imap][date]") {
  auto dt = parseDateTime("17-Jul-1996 02:44:25 -0700");
  REQUIRE(dt.ok());
  CHECK(dt->date == Date{1996, 7, 17});
  CHECK(dt->hour == 2);
  CHECK(dt->minute == 44);
  CHECK(dt->second == 25);
  CHECK(dt->zoneMinutes == -420);
  CHECK(dateTimeToUnix(*dt) == 837596665);
  CHECK(formatDateTime(*dt) == "17-Jul-1996 02:44:25 -0700");

  auto sp = parseDateTime(" 1-Jan-2000 00:00:00 +0000");
  REQUIRE(sp.ok());
  CHECK(sp->date == Date{2000, 1, 1});
  CHECK(dateTimeToUnix(*sp) == 946684800);
  CHECK(formatDateTime(*sp) == "01-Jan-2000 00:00:00 +0000");

  auto plus = parseDateTime("31-Dec-1999 23:59:60 +0530");
  REQUIRE(plus.ok());
  CHECK(plus->zoneMinutes == 330);
}

TEST_CASE("bad date-times are refused", "[imap][date]") {
  auto bad = GENERATE(as<std::string>{}, "", "17-Jul-1996 02:44:25", "17-Jul-1996 2:44:25 -0700",
                      "17-Jul-1996 24:00:00 +0000", "17-Jul-1996 23:60:00 +0000",
                      "17-Jul-1996 23:59:61 +0000", "17-Jul-1996 02:44:25 0700",
                      "17-Jul-1996 02:44:25 +0760", "17-Jul-1996 02:44:25 +2400",
                      "1-Jul-1996 02:44:25 -0700", "32-Jul-1996 02:44:25 -0700",
                      "17-Jul-1996  02:44:25 -0700", "17-Jul-1996T02:44:25 -0700",
                      "17-Jul-96 02:44:25 -0700xx", "x7-Jul-1996 02:44:25 -0700",
                      std::string("17-Jul-1996 02:44:25 -07\0\0", 26));
  CHECK_FALSE(parseDateTime(bad).ok());
}

TEST_CASE("unix time conversion round trips", "[imap][date]") {
  for (int64_t t : {int64_t{0}, int64_t{951782400} /* 2000-02-29 */, int64_t{-86400},
                    int64_t{4102444799} /* 2099-12-31 23:59:59 */, int64_t{1700000000}}) {
    for (int zone : {0, 60, -420, 330, 840}) {
      DateTime dt = dateTimeFromUnix(t, zone);
      CHECK(dateTimeToUnix(dt) == t);
      auto parsed = parseDateTime(formatDateTime(dt));
      REQUIRE(parsed.ok());
      CHECK(parsed.value() == dt);
    }
  }
  CHECK(daysFromCivil(Date{1970, 1, 1}) == 0);
  CHECK(daysFromCivil(Date{2000, 3, 1}) - daysFromCivil(Date{2000, 2, 28}) == 2);
  CHECK(formatDate(Date{2024, 3, 5}) == "5-Mar-2024");
}

TEST_CASE("formatDateTime: the hand-made digits equal printf's, out-of-range values too",
          "[imap][date]") {
  auto printfForm = [](const DateTime& dt) {
    static const char* const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    const int z = dt.zoneMinutes < 0 ? -dt.zoneMinutes : dt.zoneMinutes;
    char buf[96];
    std::snprintf(buf, sizeof buf, "%02d-%s-%04d %02d:%02d:%02d %c%02d%02d", dt.date.day,
                  months[(dt.date.month - 1) % 12], dt.date.year, dt.hour, dt.minute, dt.second,
                  dt.zoneMinutes < 0 ? '-' : '+', z / 60, z % 60);
    return std::string(buf);
  };
  for (int64_t t = -86400 * 400; t < int64_t{4102444799}; t += 7919 * 1000 + 13) {
    for (int zone : {0, 59, -61, -720, 840}) {
      const DateTime dt = dateTimeFromUnix(t, zone);
      INFO(t << " " << zone);
      REQUIRE(formatDateTime(dt) == printfForm(dt));
    }
  }
  DateTime odd = dateTimeFromUnix(0, 0);
  odd.date.year = 12345;
  CHECK(formatDateTime(odd) == printfForm(odd));
  odd.date.year = 7;
  CHECK(formatDateTime(odd) == "01-Jan-0007 00:00:00 +0000");
  odd.zoneMinutes = -100 * 60;
  CHECK(formatDateTime(odd) == printfForm(odd));
}
