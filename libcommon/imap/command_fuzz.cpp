// libFuzzer target for the IMAP command parser. The first octet picks the
// settings (UTF-8 mode, LITERAL+/-, a message sink or not, small limits) and
// the piece size; the input is then fed whole and in pieces, and both runs
// must yield the same events (commands compared as whole syntax trees, sink
// contents included). AUTHENTICATE and IDLE switch the parser into line
// mode for one line, as the session does. Parsed sequence sets must print
// back to a form that parses to the same set.
// Trust: test code.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "imap/parser.hpp"
#include "imap/test_describe.hpp"

using namespace yubin::imap;

namespace {

struct Sink : MessageSink {
  std::string log;
  void messageBegin(size_t index, uint64_t size, bool binary) override {
    log += "<" + std::to_string(index) + ":" + std::to_string(size) + (binary ? "b" : "") + ">";
  }
  void messageData(std::string_view chunk) override { log.append(chunk); }
  void messageEnd() override { log += "</>"; }
};

void checkSet(const SequenceSet& s) {
  auto back = SequenceSet::parse(s.str());
  if (!back.ok() || !(back.value() == s)) std::abort();
}

std::vector<std::string> runOnce(std::string_view in, size_t piece, const ParserSettings& st,
                                 bool useSink) {
  Sink sink;
  Parser p(st, useSink ? &sink : nullptr);
  std::vector<std::string> events;
  bool rawNext = false;
  for (size_t off = 0; off < in.size(); off += piece) {
    p.feed(in.substr(off, piece));
    while (true) {
      Event e = p.next();
      if (std::holds_alternative<NeedMore>(e)) break;
      if (auto* c = std::get_if<Command>(&e)) {
        events.push_back("C " + test::describe(*c));
        if (auto* f = std::get_if<FetchArgs>(&c->args)) {
          checkSet(f->set);
          for (const auto& a : f->atts) events.back() += " " + a.responseName();
        }
        if (auto* s = std::get_if<StoreArgs>(&c->args)) checkSet(s->set);
        if (c->kind == CommandKind::Authenticate || c->kind == CommandKind::Idle) {
          p.setLineMode(true);
          rawNext = true;
        }
      } else if (auto* err = std::get_if<ParseError>(&e)) {
        if (err->text.empty()) std::abort();
        events.push_back("E " + err->tag + " " + err->text + (err->tooBig ? " big" : ""));
      } else if (auto* l = std::get_if<RawLine>(&e)) {
        if (!rawNext) std::abort();
        events.push_back("L " + l->text);
        p.setLineMode(false);
        rawNext = false;
      } else if (auto* k = std::get_if<ContinueRequest>(&e)) {
        events.push_back("+ " + std::to_string(k->size));
      }
    }
    // Memory stays bounded by the limits, whatever the input.
    if (p.buffered() != 0) std::abort();
  }
  events.push_back("sink " + sink.log);
  return events;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t flags = data[0];
  std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
  ParserSettings st;
  st.utf8 = flags & 1;
  st.literalPlus = static_cast<LiteralPlus>((flags >> 1) % 3);
  const bool useSink = flags & 8;
  if (flags & 16) {
    st.maxLine = 64;
    st.maxCommand = 256;
    st.maxLiteral = 32;
    st.maxMessage = 128;
    st.maxDepth = 4;
    st.maxItems = 8;
  } else {
    st.maxMessage = 4096;
  }
  st.multiAppend = !(flags & 32);
  const size_t piece = (flags >> 6) == 0 ? 1 : (flags >> 6) == 1 ? 3 : (flags >> 6) == 2 ? 17 : 1;
  auto whole = runOnce(in, in.empty() ? 1 : in.size(), st, useSink);
  auto pieces = runOnce(in, piece, st, useSink);
  if (whole != pieces) std::abort();
  return 0;
}
