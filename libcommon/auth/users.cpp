// The users file parser and UserDb; see users.hpp.
#include "auth/users.hpp"

#include "auth/address.hpp"
#include "auth/password.hpp"
#include "base/strings.hpp"
#include "config/config.hpp"

namespace yubin::auth {
namespace {

constexpr size_t kMaxMailboxPath = 4096;

std::vector<std::string_view> splitColon(std::string_view s) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (;;) {
    size_t c = s.find(':', start);
    if (c == std::string_view::npos) {
      out.push_back(s.substr(start));
      return out;
    }
    out.push_back(s.substr(start, c - start));
    start = c + 1;
  }
}

bool hasBlank(std::string_view s) { return s.find_first_of(" \t") != std::string_view::npos; }

// Bytes below 0x20 (other than tab) and DEL have no place in a users line.
bool hasControl(std::string_view s) {
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if ((c < 0x20 && c != '\t') || c == 0x7f) return true;
  }
  return false;
}

bool hasDotDot(std::string_view path) {
  size_t start = 0;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) slash = path.size();
    if (path.substr(start, slash - start) == "..") return true;
    start = slash + 1;
  }
  return false;
}

const char* kFieldNames[] = {"address", "password hash", "SCRAM keys",
                             "mailbox", "format",        "quota"};

}  // namespace

std::string_view formatName(MailboxFormat f) {
  return f == MailboxFormat::Mbox ? "mbox" : "maildir";
}

std::optional<MailboxFormat> parseMailboxFormat(std::string_view s) {
  if (s == "maildir") return MailboxFormat::Maildir;
  if (s == "mbox") return MailboxFormat::Mbox;
  return std::nullopt;
}

Result<Quota> parseQuota(std::string_view field) {
  Quota q;
  std::string_view bytes = field, messages;
  size_t comma = field.find(',');
  if (comma != std::string_view::npos) {
    bytes = field.substr(0, comma);
    messages = field.substr(comma + 1);
    if (messages.find(',') != std::string_view::npos)
      return Error{"quota must be BYTES[,MESSAGES]"};
  }
  if (!bytes.empty()) {
    auto b = config::parseSize(bytes);
    if (!b) return Error{"quota bytes: " + b.error().message};
    q.bytes = *b;
  }
  if (!messages.empty()) {
    auto m = parseU64(messages);
    if (!m) return Error{"quota messages '" + std::string(messages) + "': expected a number"};
    q.messages = *m;
  }
  return q;
}

UserDbSettings UserDbSettings::fromConfig(const config::Config& cfg) {
  UserDbSettings s;
  s.path = cfg.str("global", "users_file");
  s.domains = LocalDomains::fromConfig(cfg);
  s.mailRoot = cfg.str("global", "mail_root");
  return s;
}

Result<User> parseUserLine(std::string_view line, const UserDbSettings& settings) {
  if (hasControl(line)) return Error{"control character in line"};
  auto fields = splitColon(line);
  if (fields.size() != 5 && fields.size() != 6)
    return Error{"expected 6 fields address:password-hash:scram:mailbox:format:quota, found " +
                 std::to_string(fields.size())};
  for (size_t i = 0; i < fields.size(); ++i)
    if (hasBlank(fields[i]))
      return Error{std::string("blank inside the ") + kFieldNames[i] + " field"};

  User u;
  std::string_view address = fields[0];
  auto parts = splitAddress(address);
  if (!parts) return Error{"bad address '" + std::string(address) + "': expected local@domain"};
  if (!isValidUserLocalPart(parts->local))
    return Error{"bad local part in '" + std::string(address) + "'"};
  if (!isValidDomain(parts->domain)) return Error{"bad domain in '" + std::string(address) + "'"};
  if (!settings.domains.contains(parts->domain))
    return Error{"domain '" + parts->domain + "' of '" + std::string(address) +
                 "' is not in [global] domains"};
  u.address = addressKey(parts->local, parts->domain);
  u.local = u.address.substr(0, u.address.rfind('@'));
  u.domain = toLower(parts->domain);
  const std::string who = " for '" + u.address + "'";

  // Never echo the hash or the keys in an error: they are secrets.
  if (fields[1] != "*" && !isPasswordHash(fields[1]))
    return Error{"bad password hash" + who +
                 ": expected a crypto_pwhash_str (Argon2) string or '*'"};
  u.passwordHash = std::string(fields[1]);

  if (!fields[2].empty()) {
    auto keys = parseScramField(fields[2]);
    if (!keys) return Error{"bad SCRAM field" + who + ": " + keys.error().message};
    u.scram = std::move(*keys);
  }

  if (fields[4].empty()) {
    u.format = MailboxFormat::Maildir;
  } else if (auto f = parseMailboxFormat(fields[4])) {
    u.format = *f;
  } else {
    return Error{"bad format '" + std::string(fields[4]) + "'" + who +
                 ": expected maildir or mbox"};
  }

  std::string_view mailbox = fields[3];
  if (mailbox.size() > kMaxMailboxPath) return Error{"mailbox path too long" + who};
  if (hasDotDot(mailbox)) return Error{"mailbox path" + who + " has a '..' component"};
  if (!mailbox.empty() && mailbox[0] == '/') {
    u.mailbox = std::string(mailbox);
  } else {
    if (settings.mailRoot.empty())
      return Error{"mailbox path" + who + " is relative but [global] mail_root is empty"};
    if (hasDotDot(settings.mailRoot)) return Error{"[global] mail_root has a '..' component"};
    std::string root = settings.mailRoot;
    while (root.size() > 1 && root.back() == '/') root.pop_back();
    if (root == "/") root.clear();
    if (!mailbox.empty())
      u.mailbox = root + "/" + std::string(mailbox);
    else if (u.format == MailboxFormat::Maildir)
      u.mailbox = root + "/" + u.domain + "/" + u.local + "/Maildir";
    else
      u.mailbox = root + "/" + u.domain + "/" + u.local + ".mbox";
  }

  if (fields.size() == 6) {
    auto q = parseQuota(fields[5]);
    if (!q) return Error{"bad quota" + who + ": " + q.error().message};
    u.quota = *q;
  }
  return u;
}

const User* UserTable::find(std::string_view address) const {
  auto key = addressKey(address);
  if (!key) return nullptr;
  auto it = index_.find(*key);
  return it == index_.end() ? nullptr : &users_[it->second];
}

Result<UserTable> parseUsers(std::string_view text, const std::string& filename,
                             const UserDbSettings& settings) {
  UserTable t;
  int lineNo = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view line = trim(text.substr(pos, nl - pos));
    pos = nl + 1;
    ++lineNo;
    if (line.empty() || line[0] == '#') continue;
    auto where = [&] { return filename + ":" + std::to_string(lineNo) + ": "; };
    auto u = parseUserLine(line, settings);
    if (!u) return Error{where() + u.error().message};
    u->line = lineNo;
    auto [it, fresh] = t.index_.emplace(u->address, t.users_.size());
    if (!fresh)
      return Error{where() + "duplicate address '" + u->address + "' (first on line " +
                   std::to_string(t.users_[it->second].line) + ")"};
    t.users_.push_back(std::move(*u));
  }
  std::string_view sample;
  for (const auto& u : t.users_)
    if (u.canLogin()) {
      sample = u.passwordHash;
      break;
    }
  t.dummyHash_ = dummyHashLike(sample);
  return t;
}

UserDb::UserDb(UserDbSettings settings)
    : settings_(std::move(settings)),
      file_(settings_.path, "users file", [this](std::string_view text, const std::string& path) {
        return parseUsers(text, path, settings_);
      }) {}

std::optional<User> UserDb::find(std::string_view address) {
  auto t = table();
  if (!t) return std::nullopt;
  const User* u = t->find(address);
  if (!u) return std::nullopt;
  return *u;
}

}  // namespace yubin::auth
