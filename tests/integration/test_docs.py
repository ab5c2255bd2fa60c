"""The manual pages and the sample config, checked against the programs.

What is compared, and with what:
- every page in man/ is lint-clean (mandoc -Tlint -W warning, and at the
  STYLE level but for the lookup of cross-references), has the
  sections a page needs, is installed by man/meson.build, and every Xr to a
  Yubin page names a page that exists;
- yubin.conf(5) lists exactly the keys of `yubinctl check --keys` (the
  parser's own table), each under its section, with its type and default;
- yubinctl(8) has every command of `yubinctl --help`, in the same words;
- each program's page has every option of its --help;
- etc/yubin.conf and the example in yubin.conf(5) pass `yubinctl check`.

Binaries come from $YUBIN_BUILD_DIR (the meson build root). A check that needs
a binary is skipped, visibly, when that binary is not built; nothing else is
ever skipped.
"""
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2]
MAN = SRC / "man"
BUILD = Path(os.environ.get("YUBIN_BUILD_DIR", SRC / "build")).resolve()

# page name -> binary path relative to the build root
PROGRAMS = {
    "yubin-master": "master/yubin-master",
    "yubinctl": "ctl/yubinctl",
    "mtad": "mtad/mtad",
    "mdad": "mdad/mdad",
    "msad": "msad/msad",
    "mrad": "mrad/mrad",
}

PAGES = sorted(p for p in MAN.iterdir() if re.fullmatch(r"[\w.-]+\.[1-9]", p.name))

# The Debian install paths the page sources name; man/meson.build rewrites
# them to the build's own paths when it installs the pages.
DEBIAN_SYSCONFDIR = "/etc/yubin"
DEBIAN_LIBEXECDIR = "/usr/lib/yubin"


def page(name):
    path = MAN / name
    assert path.is_file(), f"missing page man/{name}"
    return path.read_text()


def binary(name):
    path = BUILD / PROGRAMS[name]
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.skip(f"{name} is not built ({path})")
    return path


def run(args, **kw):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True,
                          timeout=60, **kw)


def mandoc():
    path = shutil.which("mandoc")
    if not path:
        pytest.fail("mandoc is not installed (Debian package mandoc)")
    return path


# --- mdoc source helpers ----------------------------------------------------

MACRO = re.compile(r"^[A-Z][a-z][a-z]?$|^%[A-Z]$")


def text_of(lines):
    """Plain words of mdoc source lines: macro names and escapes dropped,
    Ns/Sm joins honoured well enough to compare values."""
    words = []
    for line in lines:
        if line.startswith(".\\\""):
            continue
        line = line.replace("\\&", "").replace("\\e", "\\")
        if line.startswith("."):
            toks = line[1:].split()
            out = []
            glue = False
            for t in toks:
                if t == "Ns":
                    glue = True
                    continue
                if MACRO.match(t):
                    continue
                if glue and out:
                    out[-1] += t
                else:
                    out.append(t)
                glue = False
            words.extend(out)
        else:
            words.extend(line.split())
    s = " ".join(words)
    # Delimiters that mdoc sets apart in the source.
    return re.sub(r" ([.,:;)\]])(?= |$)", r"\1", s)


def flags_of(src):
    """Every Fl argument of a page: 'c' for -c, '-help' for --help."""
    found = set()
    for m in re.finditer(r"\bFl +(\S+)", src):
        found.add(m.group(1))
    return found


# --- lint and structure -----------------------------------------------------

def test_pages_exist():
    names = {p.name for p in PAGES}
    for want in ("yubin.7", "yubin.conf.5", "yubin-users.5", "yubin-master.8",
                 "yubinctl.8", "mtad.8", "mdad.8"):
        assert want in names, f"man/{want} is missing"


@pytest.mark.parametrize("path", PAGES, ids=lambda p: p.name)
def test_mandoc_lint(path):
    r = run([mandoc(), "-Tlint", "-W", "warning", path])
    assert r.returncode == 0 and r.stdout == "" and r.stderr == "", r.stdout + r.stderr


@pytest.mark.parametrize("path", PAGES, ids=lambda p: p.name)
def test_mandoc_style(path):
    # The STYLE level too, except the cross-reference lookup, which depends
    # on the manual pages installed on this machine.
    r = run([mandoc(), "-Tlint", "-W", "style", path])
    noise = ("referenced manual not found", "outdated mandoc.db")
    left = [l for l in (r.stdout + r.stderr).splitlines() if not any(n in l for n in noise)]
    assert not left, "\n".join(left)


@pytest.mark.parametrize("path", PAGES, ids=lambda p: p.name)
def test_installed_copy_lint(path):
    # The copy man/meson.build writes into the build, with this build's paths.
    built = BUILD / "man" / path.name
    assert built.is_file(), f"{built} was not generated: is the page in man/meson.build?"
    r = run([mandoc(), "-Tlint", "-W", "warning", built])
    assert r.returncode == 0 and r.stdout == "" and r.stderr == "", r.stdout + r.stderr


@pytest.mark.parametrize("path", PAGES, ids=lambda p: p.name)
def test_page_structure(path):
    src = path.read_text()
    name, section = path.name.rsplit(".", 1)
    assert re.search(rf"^\.Dt {re.escape(name.upper())} {section}$", src, re.M), ".Dt"
    heads = re.findall(r"^\.Sh (.+)$", src, re.M)
    want = ["NAME", "DESCRIPTION", "SEE ALSO"]
    if section == "8":
        want += ["SYNOPSIS", "EXIT STATUS", "EXAMPLES", "FILES"]
    if section == "5":
        want += ["FILES", "EXAMPLES"]
    for h in want:
        assert h in heads, f"{path.name} has no {h} section"
    assert re.search(rf"^\.Nm {re.escape(name)}$", src, re.M), "NAME must name the page"


@pytest.mark.parametrize("path", PAGES, ids=lambda p: p.name)
def test_xrefs_to_own_pages_exist(path):
    ours = re.compile(r"^(yubin.*|mtad|mdad|msad|mrad)$")
    for m in re.finditer(r"\bXr +(\S+) +([1-9])", path.read_text()):
        if ours.match(m.group(1)):
            target = MAN / f"{m.group(1)}.{m.group(2)}"
            assert target.is_file(), f"{path.name}: Xr {m.group(1)} {m.group(2)}: no such page"


def test_every_page_is_installed():
    build = (MAN / "meson.build").read_text()
    # The man_pages list only: links (install_symlink) name pages too.
    block = re.search(r"^man_pages = \[(.*?)\]", build, re.M | re.S)
    assert block, "no man_pages list in man/meson.build"
    listed = set(re.findall(r"'([\w.-]+\.[1-9])'", block.group(1)))
    assert listed == {p.name for p in PAGES}


# --- yubin.conf(5) against the parser's table -------------------------------

def conf_page_sections():
    """{section: {key: (header words, body text)}} from yubin.conf(5)."""
    out = {}
    section = key = None
    header = ""
    body = []

    def flush():
        if section and key:
            out[section][key] = (header, text_of(body))

    for line in page("yubin.conf.5").splitlines():
        if line.startswith((".Sh ", ".Ss ")):
            flush()
            key = None
            m = re.fullmatch(r"\.Ss The \[(\w+)\] section", line)
            section = m.group(1) if m else None
            if section:
                assert section not in out, f"[{section}] documented twice"
                out[section] = {}
        elif section and line.startswith(".It Ic "):
            flush()
            toks = line.split()
            key = toks[2]
            assert key not in out[section], f"[{section}] {key} documented twice"
            header = text_of(["." + line.split(" No = ", 1)[1]]) if " No = " in line else ""
            body = []
        elif section and key and line == ".El":
            flush()
            key = None
        elif key:
            body.append(line)
    return out


TYPE_WORDS = {
    "string": "string", "path": "path", "bool": "yes | no", "int": "number",
    "size": "size", "duration": "duration", "list": "list", "listen": "addresses",
    "unixlisten": "socket", "mode": "mode",
}


def build_paths():
    opts = {o["name"]: o["value"]
            for o in json.loads((BUILD / "meson-info" / "intro-buildoptions.json").read_text())}
    return (os.path.join(opts["prefix"], opts["sysconfdir"], "yubin"),
            os.path.join(opts["prefix"], opts["libexecdir"], "yubin"))


def schema_keys():
    """[(section, key, type, default or None, choices)] from yubinctl check --keys."""
    ctl = binary("yubinctl")
    r = run([ctl, "check", "--keys"])
    assert r.returncode == 0, r.stderr
    return parse_keys(r.stdout)


def parse_keys(out):
    """check --keys prints one key a line: section, key, type, default
    ("(required)" when there is none), description, choices; tab-separated."""
    rows = []
    for line in out.splitlines():
        cols = line.split("\t")
        assert len(cols) == 6, f"unexpected check --keys line: {line!r}"
        section, key, typ, default, _doc, choices = cols
        rows.append((section, key, typ, None if default == "(required)" else default,
                     choices.split()))
    assert rows, "yubinctl check --keys printed no keys"
    return rows


def test_conf_page_matches_schema():
    rows = schema_keys()
    documented = conf_page_sections()
    sysconf, libexec = build_paths()
    schema = {}
    for section, key, typ, default, choices in rows:
        schema.setdefault(section, {})[key] = (typ, default, choices)

    for section in schema:
        assert section in documented, f"yubin.conf(5) has no '.Ss The [{section}] section'"
    for section, keys in documented.items():
        assert section in schema, f"yubin.conf(5) documents [{section}], which the parser does not know"
        for key in keys:
            assert key in schema[section], f"yubin.conf(5) documents [{section}] {key}, which the parser does not accept"

    for section, keys in schema.items():
        for key, (typ, default, choices) in keys.items():
            assert key in documented[section], f"[{section}] {key} is not in yubin.conf(5)"
            header, body = documented[section][key]
            where = f"yubin.conf(5) [{section}] {key}"
            if typ == "choice":
                assert header.split(" | ") == choices, f"{where}: expected {' | '.join(choices)}, got {header}"
            else:
                assert header == TYPE_WORDS[typ], f"{where}: type {typ} is written '{TYPE_WORDS[typ]}', not '{header}'"
            if default is None:
                assert "this key is required" in body, f"{where}: say that the key is required"
            elif default == "":
                assert "The default is empty" in body, f"{where}: say 'The default is empty'"
            else:
                shown = default.replace(sysconf, DEBIAN_SYSCONFDIR).replace(libexec, DEBIAN_LIBEXECDIR)
                assert f"The default is {shown}." in body, f"{where}: say 'The default is {shown}.'; body: {body}"


# --- commands and options ---------------------------------------------------

def help_text(name):
    r = run([binary(name), "--help"])
    assert r.returncode == 0, f"{name} --help: exit {r.returncode}: {r.stderr}"
    text = r.stdout + r.stderr
    assert text.strip(), f"{name} --help printed nothing"
    return text


def help_options(text):
    return {m.group(1) for m in re.finditer(r"(?<![\w-])(--?[A-Za-z][\w-]*)", text)}


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_options_documented(name):
    opts = help_options(help_text(name))
    assert opts, f"no option found in {name} --help"
    flags = flags_of(page(f"{name}.8"))
    for opt in sorted(opts):
        assert opt[1:] in flags, f"{name}(8) does not document {opt} (expected 'Fl {opt[1:]}')"


def ctl_commands(text):
    """The command synopses of yubinctl --help: the lines indented by exactly
    two spaces in its "Commands:" block (the summary lines are indented
    more)."""
    block = text.split("\nCommands:\n", 1)
    assert len(block) == 2, f"no 'Commands:' block in yubinctl --help:\n{text}"
    cmds = []
    for line in block[1].splitlines():
        if not line.strip():
            if cmds:
                break
            continue
        if re.match(r"^  \S", line):
            cmds.append(line.strip())
        elif not line.startswith("   "):
            break
    return cmds


def render_head(lines):
    """The text of an .It head (its line, or an Xo ... Xc block) as mandoc
    shows it, for the macros a command synopsis uses: Cm Ar Fl Op Ns Li."""
    out = ""
    for line in lines:
        toks = line.lstrip(".").split()
        closers = 0
        space = True
        for t in toks:
            if t in ("It", "Xo", "Xc", "Cm", "Ar", "Li", "No"):
                continue
            if t == "Ns":
                space = False
                continue
            if t == "Op":
                out += (" " if out and space else "") + "["
                closers += 1
                space = False
                continue
            if t == "Fl":
                out += (" " if out and space else "") + "-"
                space = False
                continue
            t = t.replace("\\&", "")
            if t in (",", ".", ";", ":", ")", "]"):
                out += t
            else:
                out += (" " if out and space else "") + t
            space = True
        out += "]" * closers
    return out


def page_commands(src):
    """The heads of the items of yubinctl(8)'s commands list."""
    lines = src.splitlines()
    i = lines.index("The commands are as follows:")
    assert lines[i + 1].startswith(".Bl "), "the commands list must follow 'The commands are as follows:'"
    heads = []
    depth = 0
    j = i + 1
    while j < len(lines):
        line = lines[j]
        if line.startswith(".Bl "):
            depth += 1
        elif line == ".El":
            depth -= 1
            if depth == 0:
                break
        elif depth == 1 and line.startswith(".It "):
            if line == ".It Xo":
                k = lines.index(".Xc", j)
                heads.append(render_head(lines[j + 1:k]))
                j = k
            else:
                heads.append(render_head([line]))
        j += 1
    return heads


def normalize_synopsis(s):
    s = re.sub(r"\s*\|\s*", " | ", s)
    return re.sub(r"\s+", " ", s).strip().lower()


def test_ctl_commands_documented():
    text = help_text("yubinctl")
    cmds = [normalize_synopsis(c) for c in ctl_commands(text)]
    assert len(cmds) >= 6, f"could not read the commands of yubinctl --help:\n{text}"
    heads = [normalize_synopsis(h) for h in page_commands(page("yubinctl.8"))]
    for c in cmds:
        assert c in heads, f"yubinctl(8) has no item for '{c}'; its items: {heads}"
    for h in heads:
        assert h in cmds, f"yubinctl(8) documents '{h}', which yubinctl --help does not list"


# --- sample config ----------------------------------------------------------

def check_config(path):
    r = run([binary("yubinctl"), "-c", path, "check"])
    assert r.returncode == 0, f"yubinctl check -c {path}: {r.stdout}{r.stderr}"


def test_sample_config_checks():
    check_config(SRC / "etc" / "yubin.conf")


def test_sample_config_has_every_section():
    rows = schema_keys()
    text = (SRC / "etc" / "yubin.conf").read_text()
    for section in {r[0] for r in rows}:
        assert re.search(rf"^\[{section}\]$", text, re.M), f"etc/yubin.conf has no [{section}]"


def test_conf_page_example_checks():
    src = page("yubin.conf.5")
    m = re.search(r"^\.Sh EXAMPLES\n.*?^\.Bd -literal.*?\n(version = 1\n.*?)^\.Ed$", src, re.M | re.S)
    assert m, "yubin.conf(5) EXAMPLES has no literal config starting with 'version = 1'"
    with tempfile.NamedTemporaryFile("w", suffix=".conf") as f:
        f.write(m.group(1).replace("\\e", "\\"))
        f.flush()
        check_config(f.name)
