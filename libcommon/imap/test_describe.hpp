// Test helper: renders a parsed IMAP command as one canonical line so that
// table-driven tests (and the fuzzer's determinism check) can compare whole
// syntax trees. Not part of the library.
// Trust: test code.
#pragma once

#include <string>

#include "imap/command.hpp"
#include "imap/date.hpp"

namespace yubin::imap::test {

inline std::string bracket(const std::string& s) { return "[" + s + "]"; }

inline std::string describeKey(const SearchKey& k) {
  using K = SearchKey::Kind;
  static const char* kNames[] = {
      "AND", "OR", "NOT", "ALL", "ANSWERED", "DELETED", "DRAFT", "FLAGGED", "NEW", "OLD",
      "RECENT", "SEEN", "UNANSWERED", "UNDELETED", "UNDRAFT", "UNFLAGGED", "UNSEEN",
      "KEYWORD", "UNKEYWORD", "BCC", "BODY", "CC", "FROM", "SUBJECT", "TEXT", "TO", "HEADER",
      "BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE", "LARGER", "SMALLER",
      "OLDER", "YOUNGER", "UID", "SEQ", "MODSEQ"};
  std::string out = kNames[static_cast<int>(k.kind)];
  switch (k.kind) {
    case K::And: case K::Or: case K::Not: {
      out += '(';
      for (size_t i = 0; i < k.children.size(); ++i) {
        if (i) out += ',';
        out += describeKey(k.children[i]);
      }
      out += ')';
      break;
    }
    case K::Keyword: case K::Unkeyword: case K::Bcc: case K::Body: case K::Cc: case K::From:
    case K::Subject: case K::Text: case K::To:
      out += bracket(k.text);
      break;
    case K::Header:
      out += bracket(k.field) + bracket(k.text);
      break;
    case K::Before: case K::On: case K::Since: case K::SentBefore: case K::SentOn:
    case K::SentSince:
      out += "(" + formatDate(k.date) + ")";
      break;
    case K::Larger: case K::Smaller: case K::Older: case K::Younger:
      out += "(" + std::to_string(k.number) + ")";
      break;
    case K::Uid: case K::SequenceSet:
      out += "(" + k.set.str() + ")";
      break;
    case K::ModSeq:
      out += "(" + (k.field.empty() ? "" : k.field + "," + k.text + ",") +
             std::to_string(k.number) + ")";
      break;
    default:
      break;
  }
  return out;
}

inline std::string describeAtt(const FetchAtt& a) {
  std::string name = a.responseName();
  if (a.peek) name.replace(name.find('['), 0, ".PEEK");
  if (a.partial) {
    name.erase(name.rfind('<'));
    name += "<" + std::to_string(a.partial->first) + "." + std::to_string(a.partial->second) + ">";
  }
  return name;
}

inline std::string describeStatus(const std::vector<StatusItem>& items) {
  std::string out = "(";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += ' ';
    out += statusItemName(items[i]);
  }
  return out + ")";
}

inline std::string describe(const Command& c) {
  std::string out = c.tag + " " + (c.uid ? "UID " : "") + c.name;
  struct V {
    std::string& out;
    void operator()(const std::monostate&) {}
    void operator()(const LoginArgs& a) { out += " " + bracket(a.user) + " " + bracket(a.password); }
    void operator()(const AuthenticateArgs& a) {
      out += " " + a.mechanism;
      if (a.initialResponse) out += " ir=" + bracket(*a.initialResponse);
    }
    void operator()(const EnableArgs& a) {
      for (const auto& s : a.capabilities) out += " " + s;
    }
    void operator()(const SelectArgs& a) {
      out += " " + bracket(a.mailbox);
      if (a.condstore) out += " CONDSTORE";
      if (a.qresync) {
        out += " QRESYNC(" + std::to_string(a.qresync->uidValidity) + "," +
               std::to_string(a.qresync->modSeq);
        if (a.qresync->knownUids) out += ",known=" + a.qresync->knownUids->str();
        if (a.qresync->seqMatch)
          out += ",match=" + a.qresync->seqMatch->first.str() + "/" +
                 a.qresync->seqMatch->second.str();
        out += ")";
      }
    }
    void operator()(const CreateArgs& a) {
      out += " " + bracket(a.mailbox);
      if (!a.specialUse.empty()) {
        out += " USE";
        for (const auto& f : a.specialUse) out += " " + f;
      }
    }
    void operator()(const MailboxArgs& a) { out += " " + bracket(a.mailbox); }
    void operator()(const RenameArgs& a) { out += " " + bracket(a.from) + " " + bracket(a.to); }
    void operator()(const ListArgs& a) {
      if (a.hasSelectOptions) {
        out += " sel(";
        if (a.selSubscribed) out += "S";
        if (a.selRemote) out += "R";
        if (a.selRecursiveMatch) out += "M";
        if (a.selSpecialUse) out += "U";
        out += ")";
      }
      out += " " + bracket(a.reference);
      out += a.patternList ? " pats" : " pat";
      for (const auto& p : a.patterns) out += bracket(p);
      if (a.hasReturnOptions) {
        out += " ret(";
        if (a.retSubscribed) out += "S";
        if (a.retChildren) out += "C";
        if (a.retSpecialUse) out += "U";
        if (a.retStatus) out += "STATUS" + describeStatus(a.statusItems);
        out += ")";
      }
    }
    void operator()(const StatusArgs& a) {
      out += " " + bracket(a.mailbox) + " " + describeStatus(a.items);
    }
    void operator()(const AppendArgs& a) {
      out += " " + bracket(a.mailbox);
      for (const auto& m : a.messages) {
        out += " msg(";
        for (const auto& f : m.flags) out += f + ",";
        if (m.date) out += formatDateTime(*m.date) + ",";
        out += std::to_string(m.size);
        if (m.binary) out += ",bin";
        if (!m.content.empty()) out += "," + bracket(m.content);
        out += ")";
      }
    }
    void operator()(const SearchArgs& a) {
      if (a.esearch) {
        out += " ret(";
        if (a.returnOptions & kReturnMin) out += "MIN ";
        if (a.returnOptions & kReturnMax) out += "MAX ";
        if (a.returnOptions & kReturnAll) out += "ALL ";
        if (a.returnOptions & kReturnCount) out += "COUNT ";
        if (a.returnOptions & kReturnSave) out += "SAVE ";
        out.pop_back();
        out += ")";
      }
      if (a.charset) out += " charset=" + bracket(*a.charset);
      out += " " + describeKey(a.key);
    }
    void operator()(const FetchArgs& a) {
      out += " " + a.set.str() + " (";
      for (size_t i = 0; i < a.atts.size(); ++i) {
        if (i) out += ' ';
        out += describeAtt(a.atts[i]);
      }
      out += ")";
      if (a.changedSince) out += " changedsince=" + std::to_string(*a.changedSince);
      if (a.vanished) out += " vanished";
    }
    void operator()(const StoreArgs& a) {
      out += " " + a.set.str() + " ";
      out += a.op == StoreArgs::Op::Add ? "+" : a.op == StoreArgs::Op::Remove ? "-" : "";
      out += a.silent ? "FLAGS.SILENT (" : "FLAGS (";
      for (size_t i = 0; i < a.flags.size(); ++i) out += (i ? " " : "") + a.flags[i];
      out += ")";
      if (a.unchangedSince) out += " unchangedsince=" + std::to_string(*a.unchangedSince);
    }
    void operator()(const CopyArgs& a) { out += " " + a.set.str() + " " + bracket(a.mailbox); }
    void operator()(const ExpungeArgs& a) { out += " " + a.set.str(); }
    void operator()(const IdArgs& a) {
      if (!a.params) {
        out += " NIL";
        return;
      }
      out += " (";
      for (const auto& [k, v] : *a.params) out += bracket(k) + "=" + (v ? bracket(*v) : "NIL") + ";";
      out += ")";
    }
  };
  std::visit(V{out}, c.args);
  return out;
}

}  // namespace yubin::imap::test
