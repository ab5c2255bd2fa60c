// IMAP dates: the `date` of SEARCH (SINCE, BEFORE, ON, SENT*) and the
// `date-time` of APPEND and INTERNALDATE, parsed with validation (day of
// month against the month and leap years, time and zone ranges) and
// formatted back.
//
// Trust: parses untrusted network input (runs inside mrad). Pure code.
//
// Standards: RFC 3501 §9 / RFC 9051 §9 (date, date-text, date-day,
// date-month, date-year, date-time, date-day-fixed, time, zone). Month names
// are matched case-insensitively as ABNF strings are.
//
// API, in short:
//   parseDate("1-Feb-1994")                        -> Result<Date> (no quotes)
//   parseDateTime("17-Jul-1996 02:44:25 -0700")     -> Result<DateTime> (no quotes)
//   dateTimeToUnix(dt) / dateTimeFromUnix(t, zoneMinutes)
//   formatDateTime(dt) -> "17-Jul-1996 02:44:25 -0700" (write it quoted)
//   formatDate(d)      -> "1-Feb-1994"
//   daysFromCivil(d)   -> days since 1970-01-01, for SINCE/BEFORE/ON
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.hpp"

namespace yubin::imap {

struct Date {
  int year = 1970;  // 4 digits
  int month = 1;    // 1..12
  int day = 1;      // 1..31, valid for the month
  bool operator==(const Date&) const = default;
};

struct DateTime {
  Date date;
  int hour = 0, minute = 0, second = 0;  // second 0..60 (a leap second is kept)
  int zoneMinutes = 0;                   // offset east of UTC, -1439..1439
  bool operator==(const DateTime&) const = default;
};

Result<Date> parseDate(std::string_view text);
Result<DateTime> parseDateTime(std::string_view text);

// Days since 1970-01-01 (proleptic Gregorian); negative before it.
int64_t daysFromCivil(const Date& d);
// Seconds since the epoch of the instant the date-time names.
int64_t dateTimeToUnix(const DateTime& dt);
// The instant t seen in the given zone (minutes east of UTC).
DateTime dateTimeFromUnix(int64_t t, int zoneMinutes = 0);

std::string formatDate(const Date& d);
std::string formatDateTime(const DateTime& dt);

}  // namespace yubin::imap
