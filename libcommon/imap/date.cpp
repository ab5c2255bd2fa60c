// IMAP date and date-time (see date.hpp).
// Trust: parses untrusted network input. Standards: RFC 3501 §9, RFC 9051 §9.
#include "imap/date.hpp"

#include <array>
#include <cstdio>

#include "base/strings.hpp"

namespace yubin::imap {

namespace {

constexpr std::array<std::string_view, 12> kMonths = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

bool isDigit(char c) { return c >= '0' && c <= '9'; }

// Exactly n digits.
bool digits(std::string_view s, size_t n, int& out) {
  if (s.size() != n) return false;
  int v = 0;
  for (char c : s) {
    if (!isDigit(c)) return false;
    v = v * 10 + (c - '0');
  }
  out = v;
  return true;
}

bool isLeap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int daysInMonth(int y, int m) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && isLeap(y) ? 29 : kDays[m - 1];
}

int parseMonth(std::string_view s) {
  for (size_t i = 0; i < kMonths.size(); ++i)
    if (iequals(s, kMonths[i])) return static_cast<int>(i) + 1;
  return 0;
}

// "dd-Mon-yyyy" where the day is given by the caller's rule.
Result<Date> parseDayMonthYear(std::string_view dayText, std::string_view rest) {
  Date d;
  int day = 0;
  if (dayText.size() == 1 ? !digits(dayText, 1, day) : !digits(dayText, 2, day))
    return Error{"bad day"};
  // rest = "Mon-yyyy"
  if (rest.size() != 8 || rest[3] != '-') return Error{"bad date"};
  d.month = parseMonth(rest.substr(0, 3));
  if (d.month == 0) return Error{"bad month"};
  if (!digits(rest.substr(4), 4, d.year) || d.year == 0) return Error{"bad year"};
  if (day < 1 || day > daysInMonth(d.year, d.month)) return Error{"bad day"};
  d.day = day;
  return d;
}

}  // namespace

Result<Date> parseDate(std::string_view text) {
  // date-text = date-day "-" date-month "-" date-year; date-day = 1*2DIGIT
  size_t dash = text.find('-');
  if (dash == std::string_view::npos || dash == 0 || dash > 2) return Error{"bad date"};
  return parseDayMonthYear(text.substr(0, dash), text.substr(dash + 1));
}

Result<DateTime> parseDateTime(std::string_view text) {
  // date-day-fixed "-" date-month "-" date-year SP time SP zone
  // = 2 + 1 + 3 + 1 + 4 + 1 + 8 + 1 + 5 = 26 octets
  if (text.size() != 26 || text[2] != '-' || text[11] != ' ' || text[20] != ' ')
    return Error{"bad date-time"};
  std::string_view day = text.substr(0, 2);
  if (day[0] == ' ') day = day.substr(1);  // (SP DIGIT) / 2DIGIT
  auto d = parseDayMonthYear(day, text.substr(3, 8));
  if (!d) return d.error();
  DateTime dt;
  dt.date = *d;
  std::string_view t = text.substr(12, 8);
  if (t[2] != ':' || t[5] != ':' || !digits(t.substr(0, 2), 2, dt.hour) ||
      !digits(t.substr(3, 2), 2, dt.minute) || !digits(t.substr(6, 2), 2, dt.second) ||
      dt.hour > 23 || dt.minute > 59 || dt.second > 60)
    return Error{"bad time"};
  std::string_view z = text.substr(21);
  int hh = 0, mm = 0;
  if ((z[0] != '+' && z[0] != '-') || !digits(z.substr(1, 2), 2, hh) ||
      !digits(z.substr(3, 2), 2, mm) || hh > 23 || mm > 59)
    return Error{"bad zone"};
  dt.zoneMinutes = (z[0] == '-' ? -1 : 1) * (hh * 60 + mm);
  return dt;
}

int64_t daysFromCivil(const Date& d) {
  // Howard Hinnant's days_from_civil algorithm.
  int64_t y = d.year - (d.month <= 2 ? 1 : 0);
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t mp = (d.month + 9) % 12;
  const int64_t doy = (153 * mp + 2) / 5 + d.day - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

int64_t dateTimeToUnix(const DateTime& dt) {
  return daysFromCivil(dt.date) * 86400 + dt.hour * 3600 + dt.minute * 60 + dt.second -
         int64_t{dt.zoneMinutes} * 60;
}

DateTime dateTimeFromUnix(int64_t t, int zoneMinutes) {
  t += int64_t{zoneMinutes} * 60;
  int64_t days = t >= 0 ? t / 86400 : -((-t + 86399) / 86400);
  int64_t secs = t - days * 86400;
  // civil_from_days
  days += 719468;
  const int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  const int64_t doe = days - era * 146097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy + 2) / 153;
  DateTime dt;
  dt.date.day = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
  dt.date.month = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
  dt.date.year = static_cast<int>(yoe + era * 400 + (dt.date.month <= 2 ? 1 : 0));
  dt.hour = static_cast<int>(secs / 3600);
  dt.minute = static_cast<int>(secs / 60 % 60);
  dt.second = static_cast<int>(secs % 60);
  dt.zoneMinutes = zoneMinutes;
  return dt;
}

std::string formatDate(const Date& d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%d-%s-%04d", d.day,
                std::string(kMonths[static_cast<size_t>(d.month - 1) % 12]).c_str(), d.year);
  return buf;
}

std::string formatDateTime(const DateTime& dt) {
  const int z = dt.zoneMinutes < 0 ? -dt.zoneMinutes : dt.zoneMinutes;
  auto in = [](int v, int hi) { return v >= 0 && v <= hi; };
  if (!in(dt.date.day, 99) || !in(dt.date.year, 9999) || !in(dt.hour, 99) ||
      !in(dt.minute, 99) || !in(dt.second, 99) || !in(z / 60, 99)) {
    char buf[96];  // out of the usual ranges: the general path
    std::snprintf(buf, sizeof buf, "%02d-%s-%04d %02d:%02d:%02d %c%02d%02d", dt.date.day,
                  std::string(kMonths[static_cast<size_t>(dt.date.month - 1) % 12]).c_str(),
                  dt.date.year, dt.hour, dt.minute, dt.second, dt.zoneMinutes < 0 ? '-' : '+',
                  z / 60, z % 60);
    return buf;
  }
  // FETCH INTERNALDATE of a whole folder formats one per message: digits
  // by hand, not through printf.
  std::string out(26, ' ');  // "dd-Mon-yyyy hh:mm:ss +zzzz"
  auto two = [&out](size_t at, int v) {
    out[at] = static_cast<char>('0' + v / 10);
    out[at + 1] = static_cast<char>('0' + v % 10);
  };
  two(0, dt.date.day);
  out[2] = '-';
  const std::string_view mon = kMonths[static_cast<size_t>(dt.date.month - 1) % 12];
  out.replace(3, 3, mon);
  out[6] = '-';
  two(7, dt.date.year / 100);
  two(9, dt.date.year % 100);
  two(12, dt.hour);
  out[14] = ':';
  two(15, dt.minute);
  out[17] = ':';
  two(18, dt.second);
  out[21] = dt.zoneMinutes < 0 ? '-' : '+';
  two(22, z / 60);
  two(24, z % 60);
  return out;
}

}  // namespace yubin::imap
