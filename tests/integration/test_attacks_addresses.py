"""Attack catalogue: envelope addresses built to reach a shell or to become
a file name, in the manner of OpenSMTPD's CVE-2020-7247 (Qualys, January
2020: `MAIL FROM:<;sleep 66;>` ran as root through the delivery agent's
command line), sent end to end through mtad (RCPT and MAIL FROM, port 25)
and msad (an authenticated submission), delivered by mdad into a Maildir
and an mbox. One test per payload class: `;`, backticks, `|`, `$(...)`,
spaces in quotes, `../` and `/`.

Each payload carries the path of a canary file in /tmp that a shell
running it (or a mailbox path built from it) would create. Checked per
class:
  - every RCPT either gets a 5xx, or, when the administrator made that very
    local part an alias of bob, a 250, and the message lands in bob's
    Maildir (the alias is the only way such a name reaches a mailbox);
  - the original exploit's shape (a sender without a domain) gets a 5xx; a
    sender with a domain is either refused (5xx) or accepted, and its
    message reaches bob's Maildir and carol's mbox with the sender in
    Return-Path:, carol's mbox still reading as exactly the messages sent
    (the From_ line keeps the sender in one word);
  - through msad, the payload as a recipient behaves as through mtad, and
    as a sender it is refused (it is not the user's address);
  - afterwards the canary does not exist, nothing under the instance (mail
    root, spool, state) nor in a daemon's working directory has a name
    carrying the payload, and the mail root holds nothing but bob's
    Maildir and carol's mbox.

mtad, mdad and msad run standalone (`-f -c CONF`); as root they run as
nobody, like the other end-to-end tests (standalone.hand_over).
Trust: test code; loopback and Unix sockets only.
"""

import os
import re
import smtplib
import subprocess
import uuid
from pathlib import Path

import pytest

import queue_files
from conftest import wait_for
from standalone import submission_chain

PASSWORD = 'alice-secret'
CANARY_PREFIX = 'yubin-canary-'

# Per class: local parts (as their meaning: quoted on the wire when they
# are not a dot-string). {c} is the canary's absolute path.
CLASSES = {
    'semicolon': [';touch {c};', 'bob;touch {c}', 'x;rm -f {c};'],
    'backtick': ['`touch {c}`', 'a`touch`b', '`id`'],
    'pipe': ['|touch {c}', '|id', 'bob|cat'],
    'dollar_paren': ['$(touch {c})', 'a$(id)b', '${IFS}$(id)'],
    'quoted_spaces': ['bob ; touch {c}', 'b o b', ' bob'],
    'dotdot': ['../../../../../../../../../..{c}', '..', '../bob', 'a/../../x'],
    'slash': ['{c}', '/etc/passwd', 'bob/Maildir', 'tmp/x'],
}

# RFC 5322 atext: what a dot-atom local part may hold unquoted.
ATEXT = set(b'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'
            b"!#$%&'*+-/=?^_`{|}~")


def is_dot_string(local):
    parts = local.split('.')
    return all(p and all(ord(ch) in ATEXT for ch in p) for p in parts)


def on_the_wire(local):
    """The local part as written in a path: quoted unless a dot-string."""
    if is_dot_string(local):
        return local
    return '"' + local.replace('\\', '\\\\').replace('"', '\\"') + '"'


def alias_key_ok(local):
    """What the aliases file takes as a key's local part (auth/address.hpp
    isValidTargetLocalPart), without a leading '#' (a comment)."""
    return (0 < len(local) <= 64 and not local.startswith('#')
            and all(0x21 <= ord(ch) < 0x7f and ch not in '@,:;<>()[]\\"' for ch in local))


class Site:
    def __init__(self, inst, binary, ports, canary, locals_):
        self.inst = inst
        self.smtp_port, self.sub_port = ports
        self.canary = canary
        self.mail = inst.dir / 'mail'
        self.spool = inst.dir / 'spool'
        # The local parts the administrator made aliases of bob: every
        # payload the aliases file can hold.
        self.aliases = [loc for loc in locals_ if alias_key_ok(loc)]
        (inst.dir / 'etc/users').write_text('')
        (inst.dir / 'etc/aliases').write_text(
            ''.join(f'{loc}@example.org: bob@example.org\n' for loc in self.aliases))
        inst.write_config()
        r = inst.ctl('user', 'add', 'alice@example.org', input=PASSWORD + '\n')
        assert r.returncode == 0, r.stderr
        with open(inst.dir / 'etc/users', 'a') as f:
            f.write('bob@example.org:*:::maildir\ncarol@example.org:*:::mbox\n')
        self.mtad, self.mdad, self.msad = submission_chain(
            inst, binary, self.smtp_port, self.sub_port,
            {'listen_tls': '', 'loopback_plaintext': True, 'auth_delay_ms': 0,
             'auth_workers': 1})

    def daemons(self):
        return (self.msad, self.mtad, self.mdad)

    def maildir(self, user):
        d = self.mail / 'example.org' / user / 'Maildir' / 'new'
        return [p.read_bytes() for p in sorted(d.iterdir())] if d.exists() else []

    def mbox(self, user):
        p = self.mail / 'example.org' / f'{user}.mbox'
        return p.read_bytes() if p.exists() else b''

    def queue_empty(self):
        # queue/ keeps mtad's empty spare files: count messages only.
        return (not queue_files.messages(self.spool / 'queue')
                and (not (self.spool / 'state').exists() or not os.listdir(self.spool / 'state')))


@pytest.fixture
def make_site(instance, binary, free_port):
    binary('ctl/yubinctl')
    sites = []

    def make(locals_, canary):
        s = Site(instance, binary, (free_port(), free_port()), canary, locals_)
        for d in (s.mdad, s.mtad, s.msad):
            d.start()
        sites.append(s)
        return s

    yield make
    for s in sites:
        for d in s.daemons():
            d.stop()


def smtp_reply(s, line):
    """Sends one command line; returns (code, text) as smtplib does."""
    s.putcmd(line)
    return s.getreply()


def message(subject):
    return (f'From: tester@remote.example\r\nTo: bob@example.org\r\n'
            f'Subject: {subject}\r\n\r\nbody of {subject}\r\n').encode()


def mbox_messages(data):
    """The messages of an mboxrd file: split at From_ lines that follow an
    empty line (or start the file); each one checked to end with its
    separator."""
    if not data:
        return []
    assert data.startswith(b'From '), data[:80]
    parts = re.split(rb'(?:(?<=\n\n)|^)(?=From )', data)
    msgs = [p for p in parts if p]
    for m in msgs:
        assert m.endswith(b'\n\n'), m[-80:]
    return msgs


def names_under(root):
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            out.append(os.path.relpath(os.path.join(dirpath, n), root))
    return out


def check_rcpt(site, loc, rcpt, code, text):
    """A payload recipient is refused with a 5xx unless it is an alias. An
    alias whose local part is a dot-string (written on the wire exactly as
    in the aliases file) must be accepted; one that needs quoting on the
    wire may be refused too: the aliases file has no quoted keys, so
    whether '"../bob"' names the key '../bob' is the server's choice."""
    if code == 250:
        assert loc in site.aliases, (rcpt, code, text)
    else:
        assert 500 <= code < 600, (rcpt, code, text)
        assert loc not in site.aliases or not is_dot_string(loc), (rcpt, code, text)


def run_class(site, name, locals_):
    canary = site.canary
    accepted_rcpts = []
    refused = {}
    # 1. mtad, RCPT: each payload local part in a local domain.
    with smtplib.SMTP('127.0.0.1', site.smtp_port, local_hostname='client.example.net',
                      timeout=30) as s:
        s.ehlo()
        assert s.mail('tester@remote.example')[0] == 250
        for loc in locals_:
            rcpt = f'{on_the_wire(loc)}@example.org'
            code, text = smtp_reply(s, f'RCPT TO:<{rcpt}>')
            check_rcpt(site, loc, rcpt, code, text)
            if code == 250:
                accepted_rcpts.append(rcpt)
            else:
                refused[rcpt] = code
        if accepted_rcpts:
            code, text = s.data(message(f'rcpt-{name}'))
            assert code == 250, text
        else:
            code, text = smtp_reply(s, 'DATA')
            assert code == 554, text  # no valid recipients

    # 2. mtad, MAIL FROM: the exploit's own shape (no domain) and with a domain.
    senders_accepted = []
    for loc in locals_:
        with smtplib.SMTP('127.0.0.1', site.smtp_port, local_hostname='client.example.net',
                          timeout=30) as s:
            s.ehlo()
            code, text = smtp_reply(s, f'MAIL FROM:<{on_the_wire(loc)}>')
            assert 500 <= code < 600, (loc, code, text)
            smtp_reply(s, 'RSET')
            sender = f'{on_the_wire(loc)}@remote.example'
            code, text = smtp_reply(s, f'MAIL FROM:<{sender}>')
            if code != 250:
                assert 500 <= code < 600, (sender, code, text)
                continue
            assert s.rcpt('bob@example.org')[0] == 250
            assert s.rcpt('carol@example.org')[0] == 250
            subject = f'sender-{name}-{len(senders_accepted)}'
            code, text = s.data(message(subject))
            assert code == 250, text
            senders_accepted.append((sender, subject))

    # 3. msad: alice submits to each payload, then tries each as her sender.
    with smtplib.SMTP('127.0.0.1', site.sub_port, local_hostname='laptop.example',
                      timeout=30) as s:
        s.ehlo()
        s.user, s.password = 'alice@example.org', PASSWORD
        assert s.auth('PLAIN', s.auth_plain)[0] == 235
        for loc in locals_:
            code, text = smtp_reply(s, f'MAIL FROM:<{on_the_wire(loc)}@example.org>')
            assert 500 <= code < 600, (loc, code, text)
            smtp_reply(s, 'RSET')
        assert s.mail('alice@example.org')[0] == 250
        msad_accepted = 0
        for loc in locals_:
            rcpt = f'{on_the_wire(loc)}@example.org'
            code, text = smtp_reply(s, f'RCPT TO:<{rcpt}>')
            check_rcpt(site, loc, rcpt, code, text)
            msad_accepted += code == 250
        if msad_accepted:
            code, text = s.data(message(f'msad-{name}'))
            assert code == 250, text
        else:
            smtp_reply(s, 'RSET')

    # Delivery: each accepted message exactly once where it belongs.
    want_bob = ([f'rcpt-{name}'] if accepted_rcpts else []) + \
        ([f'msad-{name}'] if msad_accepted else []) + [subj for _, subj in senders_accepted]

    def delivered():
        got = site.maildir('bob')
        return len(got) >= len(want_bob) and len(mbox_messages(site.mbox('carol'))) >= \
            len(senders_accepted) and site.queue_empty() and got
    if want_bob:
        wait_for(delivered, 60, f'{want_bob} to be delivered')
    else:
        wait_for(site.queue_empty, 30, 'the queue to empty')
    bob = site.maildir('bob')
    subjects = sorted(re.search(rb'^Subject: (.*)$', m, re.M).group(1).decode() for m in bob)
    assert subjects == sorted(want_bob)
    for m in bob:
        assert b'\nDelivered-To: bob@example.org\n' in m
    for sender, subject in senders_accepted:
        [m] = [m for m in bob if f'Subject: {subject}\n'.encode() in m]
        assert m.startswith(f'Return-Path: <{sender}>\n'.encode()), m[:200]
    carol = mbox_messages(site.mbox('carol'))
    assert len(carol) == len(senders_accepted)
    # Each message is delivered on its own, so the mbox order is not the order sent.
    for sender, subject in senders_accepted:
        [m] = [m for m in carol if f'Subject: {subject}\n'.encode() in m]
        # The From_ line keeps the sender in one word, whatever its spaces.
        from_line = m.split(b'\n', 1)[0]
        assert re.fullmatch(rb'From \S+ \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}',
                            from_line), from_line
        assert f'Return-Path: <{sender}>\n'.encode() in m
    assert site.maildir('alice') == []  # nothing bounced

    # Nothing ran, nothing was named after a payload.
    assert not os.path.lexists(canary), f'{canary} was created'
    for name_ in names_under(site.inst.dir):
        assert CANARY_PREFIX not in name_, name_
    for rel in names_under(site.mail):
        parts = Path(rel).parts
        assert parts[0] == 'example.org', rel
        if len(parts) > 1:
            assert parts[1] in ('bob', 'carol.mbox', 'alice'), rel
    for d in site.daemons():
        cwd = os.readlink(f'/proc/{d.proc.pid}/cwd')
        assert not any(n.startswith(CANARY_PREFIX) for n in os.listdir(cwd)), cwd
        assert d.proc.poll() is None, f'{d.name} died:\n{d.log()}'
    return accepted_rcpts, refused, senders_accepted


@pytest.mark.parametrize('name', sorted(CLASSES))
def test_cve_2020_7247_style_addresses(make_site, name):
    """OpenSMTPD CVE-2020-7247: shell metacharacters, spaces and path
    components in envelope local parts never reach a shell or a file name."""
    canary = f'/tmp/{CANARY_PREFIX}{uuid.uuid4().hex[:8]}'
    locals_ = [loc.replace('{c}', canary) for loc in CLASSES[name]]
    for loc in locals_:
        assert len(loc.encode()) <= 64, loc
    site = make_site(locals_, canary)
    try:
        accepted, refused, senders = run_class(site, name, locals_)
    finally:
        if os.path.lexists(canary):
            subprocess.run(['rm', '-rf', canary], check=False)
    print(f'{name}: accepted through an alias {accepted}, refused {refused}, '
          f'senders accepted {[s for s, _ in senders]}')
