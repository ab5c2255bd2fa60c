// Editing the users file; see users_edit.hpp.
#include "auth/users_edit.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <functional>
#include <optional>

#include "auth/address.hpp"
#include "base/fs.hpp"
#include "base/strings.hpp"
#include "base/unique_fd.hpp"

namespace yubin::auth {
namespace {

constexpr mode_t kUsersFileMode = 0640;

struct Line {
  std::string_view text;  // without the terminator
  std::string_view end;   // "\n" or "" on the last line
};

std::vector<Line> splitLines(std::string_view text) {
  std::vector<Line> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) {
      out.push_back({text.substr(pos), {}});
      break;
    }
    out.push_back({text.substr(pos, nl - pos), text.substr(nl, 1)});
    pos = nl + 1;
  }
  return out;
}

// Index (0-based) of the line holding `address`, from a parsed table.
Result<size_t> lineOf(const UserTable& table, std::string_view address) {
  const User* u = table.find(address);
  if (!u) return Error{"no such user: " + std::string(address)};
  return static_cast<size_t>(u->line - 1);
}

// Replaces line `index` with `replacement` (nullopt: deletes it).
std::string rebuild(std::string_view text, size_t index,
                    const std::optional<std::string>& replacement) {
  std::string out;
  out.reserve(text.size() + (replacement ? replacement->size() : 0));
  auto lines = splitLines(text);
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i != index) {
      out.append(lines[i].text).append(lines[i].end);
    } else if (replacement) {
      out.append(*replacement).append(lines[i].end);
    }
  }
  return out;
}

// Owner of the file being replaced, to hand back after atomicWrite.
struct Owner {
  uid_t uid;
  gid_t gid;
};

Status editFile(const UserDbSettings& settings,
                const std::function<Result<std::string>(std::string_view)>& edit) {
  const std::string& path = settings.path;
  std::string lockPath = path + ".lock";
  UniqueFd lock(::open(lockPath.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!lock) return errnoError("open " + lockPath);
  while (::flock(lock.get(), LOCK_EX) != 0)
    if (errno != EINTR) return errnoError("lock " + lockPath);

  std::string text;
  std::optional<Owner> owner;
  struct stat st;
  if (::stat(path.c_str(), &st) == 0) {
    if (!S_ISREG(st.st_mode)) return Error{path + ": not a regular file"};
    owner = Owner{st.st_uid, st.st_gid};
    auto r = readFile(path);
    if (!r) return r.error();
    text = std::move(*r);
  } else if (errno != ENOENT) {
    return errnoError("stat " + path);
  }
  auto edited = edit(text);
  if (!edited) return edited.error();
  if (auto s = atomicWrite(path, *edited, kUsersFileMode); !s) return s;
  if (owner && ::geteuid() == 0 && ::chown(path.c_str(), owner->uid, owner->gid) != 0)
    return errnoError("chown " + path);
  return {};
}

}  // namespace

Result<Credentials> makeCredentials(std::string_view password, const PasswordCost& cost,
                                    uint32_t scramIterations) {
  if (password.empty()) return Error{"empty password"};
  auto hash = hashPassword(password, cost);
  if (!hash) return hash.error();
  auto keys = scramNewKeys(password, scramIterations);
  if (!keys) return keys.error();
  return Credentials{std::move(*hash), formatScramField(*keys)};
}

Result<std::string> makeUserLine(const NewUser& user, const Credentials& cred,
                                 const UserDbSettings& settings) {
  auto parts = splitAddress(user.address);
  if (!parts) return Error{"bad address '" + user.address + "': expected local@domain"};
  std::string line = addressKey(parts->local, parts->domain) + ":" + cred.hash + ":" + cred.scram +
                     ":" + user.mailbox + ":" + std::string(formatName(user.format)) + ":" +
                     user.quota;
  // Whatever the fields hold, the line must read back as this one user.
  if (line.find('\n') != std::string::npos) return Error{"newline in a field"};
  auto parsed = parseUserLine(line, settings);
  if (!parsed) return parsed.error();
  return line;
}

Result<std::string> usersTextAdd(std::string_view text, const std::string& filename,
                                 const UserDbSettings& settings, std::string_view line) {
  auto table = parseUsers(text, filename, settings);
  if (!table) return table.error();
  auto u = parseUserLine(line, settings);
  if (!u) return u.error();
  if (const User* old = table->find(u->address))
    return Error{"user " + u->address + " already exists (" + filename + ":" +
                 std::to_string(old->line) + ")"};
  std::string out(text);
  if (!out.empty() && out.back() != '\n') out.push_back('\n');
  out.append(line).push_back('\n');
  return out;
}

Result<std::string> usersTextDelete(std::string_view text, const std::string& filename,
                                    const UserDbSettings& settings, std::string_view address) {
  auto table = parseUsers(text, filename, settings);
  if (!table) return table.error();
  auto index = lineOf(*table, address);
  if (!index) return index.error();
  return rebuild(text, *index, std::nullopt);
}

Result<std::string> usersTextSetCredentials(std::string_view text, const std::string& filename,
                                            const UserDbSettings& settings,
                                            std::string_view address, const Credentials& cred) {
  auto table = parseUsers(text, filename, settings);
  if (!table) return table.error();
  auto index = lineOf(*table, address);
  if (!index) return index.error();
  std::string_view old = trim(splitLines(text)[*index].text);
  // Fields 0 and 3.. stay as written; 1 and 2 are replaced.
  size_t c1 = old.find(':');
  size_t c2 = old.find(':', c1 + 1);
  size_t c3 = old.find(':', c2 + 1);
  std::string line = std::string(old.substr(0, c1)) + ":" + cred.hash + ":" + cred.scram +
                     std::string(old.substr(c3));
  auto check = parseUserLine(line, settings);
  if (!check) return check.error();
  return rebuild(text, *index, line);
}

Status addUser(const UserDbSettings& settings, const NewUser& user, const Credentials& cred) {
  auto line = makeUserLine(user, cred, settings);
  if (!line) return line.error();
  return editFile(settings, [&](std::string_view text) {
    return usersTextAdd(text, settings.path, settings, *line);
  });
}

Status deleteUser(const UserDbSettings& settings, std::string_view address) {
  return editFile(settings, [&](std::string_view text) {
    return usersTextDelete(text, settings.path, settings, address);
  });
}

Status setCredentials(const UserDbSettings& settings, std::string_view address,
                      const Credentials& cred) {
  return editFile(settings, [&](std::string_view text) {
    return usersTextSetCredentials(text, settings.path, settings, address, cred);
  });
}

}  // namespace yubin::auth
