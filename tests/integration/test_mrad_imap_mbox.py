"""IMAP over an mbox mailbox (libcommon/store/mbox_store.hpp) end to end:
mdad delivers into carol's mbox over LMTP, then imaplib SELECTs, FETCHes
byte-exact bodies (no X-UID / Status fields, RFC822.SIZE of what is
sent), STOREs flags (kept in the file as Status / X-Status), APPENDs,
COPYs into another mbox folder, EXPUNGEs; a delivery while IDLE shows up
as EXISTS; POP3 and IMAP on the same file agree on the messages; the UIDs
survive a new session; names that would leave the folder root are
refused."""

import imaplib
import poplib
import re
import smtplib
import subprocess

import pytest

from conftest import is_root
from imap_helper import ImapSetup, end_idle, read_until, start_idle
from mrad_helper import PASSWORD, crlf
from standalone import Daemon

SENDER = 'alice@example.net'


def msg(n, body=b'hello'):
    return (b'Subject: message %d\r\nFrom: alice@example.net\r\n\r\n%s %d\r\n'
            b'From the start of a line\r\n>From quoted\r\n' % (n, body, n))


class Mdad(Daemon):
    """mdad alone beside mrad, on its own LMTP socket."""

    def __init__(self, setup, binary):
        inst = setup.inst
        self.socket = inst.run_dir / 'lmtp'
        keys = {'lmtp_socket': str(self.socket), 'lock_timeout': '2s'}
        who = inst.run_as()
        if who:
            keys['user'], keys['group'] = who
        inst.write_config({'mdad': keys})
        super().__init__(inst, binary('mdad/mdad'), 'mdad', self._ready, timeout=20)

    def _ready(self):
        try:
            with smtplib.LMTP(str(self.socket), timeout=5) as c:
                return c.noop()[0] == 250
        except OSError:
            return False

    def deliver(self, user, data):
        with smtplib.LMTP(str(self.socket), timeout=20) as c:
            c.ehlo('client.example.net')
            refused = c.sendmail(SENDER, [f'{user}@example.org'], data)
            assert not refused, refused


@pytest.fixture
def site(instance, binary, free_port, request):
    login_user = None
    if is_root():
        login_user = request.getfixturevalue('system_user')
    setup = ImapSetup(instance, binary, free_port, login_user=login_user)
    md = Mdad(setup, binary)
    setup.start()
    md.start()
    yield setup, md
    try:
        md.stop()
    except subprocess.TimeoutExpired:
        md.proc.kill()


def fetch(c, num, what, uid=False):
    typ, data = c.uid('FETCH', num, what) if uid else c.fetch(num, what)
    assert typ == 'OK', data
    return data


def bodies(c, count):
    out = []
    for i in range(1, count + 1):
        data = fetch(c, str(i), '(UID RFC822.SIZE BODY.PEEK[])')
        head, body = data[0]
        size = int(re.search(rb'RFC822\.SIZE (\d+)', head).group(1))
        assert size == len(body), (head, len(body))
        uid = int(re.search(rb'UID (\d+)', head).group(1))
        out.append((uid, body))
    return out


def response_code(c, typ_data, name):
    typ, data = typ_data
    assert typ == 'OK', data
    m = re.search(rb'\[' + name.encode() + rb' ([^\]]*)\]', data[-1])
    assert m, data
    return m.group(1).decode().split()


def test_deliver_select_fetch_store_append_copy_expunge_and_pop3_agrees(site):
    imap, mdad = site
    mdad.deliver('carol', msg(1))
    mdad.deliver('carol', msg(2))
    c = imap.login('carol')
    typ, data = c.select('INBOX')
    assert typ == 'OK' and data == [b'2'], data
    got = bodies(c, 2)
    assert [u for u, _ in got] == [1, 2]
    # Byte-exact (CRLF on the wire) after mdad's trace fields, the mbox
    # quoting undone, none of the fields the store keeps its state in.
    assert got[0][1].startswith(b'Return-Path: <alice@example.net>\r\n')
    assert got[0][1].endswith(crlf(msg(1)))
    for _, b in got:
        assert not re.search(rb'(?im)^(x-uid|status|x-status|x-imapbase|x-keywords):', b)

    # STORE: in the file, hidden from FETCH.
    assert c.store('1', '+FLAGS', '(\\Flagged $Work)')[0] == 'OK'
    flags = fetch(c, '1', '(FLAGS)')
    assert b'\\Flagged' in flags[0] and b'$Work' in flags[0]
    raw = imap.mbox_path('carol').read_bytes()
    assert b'\nX-Status: F\n' in raw and b'\nX-Keywords: $Work\n' in raw
    assert b'\nX-UID: 2\n' in raw and b'X-IMAPbase: ' in raw
    assert fetch(c, '1', '(BODY.PEEK[])')[0][1] == got[0][1]

    # APPEND with UIDPLUS.
    appended = b'Subject: appended\r\n\r\nFrom me\r\n'
    r = c.append('INBOX', '(\\Seen)', None, appended)
    uidv, uid = response_code(c, r, 'APPENDUID')
    assert int(uid) == 3
    c.noop()
    assert fetch(c, '3', '(BODY.PEEK[])')[0][1] == appended

    # COPY into another mbox folder (Archive exists for a new user).
    r = c.copy('1:2', 'Archive')
    copied = response_code(c, r, 'COPYUID')
    assert copied[1:] == ['1:2', '1:2']
    assert (imap.mbox_path('carol').parent / 'carol.mbox.folders' / 'Archive').is_file()
    a = imap.login('carol')
    assert a.select('Archive')[0] == 'OK'
    assert [b for _, b in bodies(a, 2)] == [b for _, b in got]
    assert b'\\Flagged' in fetch(a, '1', '(FLAGS)')[0]
    a.logout()

    # EXPUNGE.
    assert c.store('2', '+FLAGS', '(\\Deleted)')[0] == 'OK'
    typ, data = c.expunge()
    assert typ == 'OK' and data == [b'2'], data
    remaining = bodies(c, 2)
    assert [u for u, _ in remaining] == [1, 3]
    c.logout()

    # POP3 on the same file: the same messages, the same bytes.
    p = poplib.POP3('127.0.0.1', imap.port, timeout=20)
    p.user('carol@example.org')
    p.pass_(PASSWORD)
    count, _ = p.stat()
    assert count == 2
    for i, (_, body) in enumerate(remaining, start=1):
        _, lines, _ = p.retr(i)
        assert b'\r\n'.join(lines) + b'\r\n' == body
        size = int(p.list(i).split()[2])
        assert size == len(body)
    p.quit()

    # A new session sees the same UIDs and flags.
    c = imap.login('carol')
    c.select('INBOX')
    assert [u for u, _ in bodies(c, 2)] == [1, 3]
    assert b'\\Flagged' in fetch(c, '1', '(FLAGS)')[0]
    assert b'\\Seen' in fetch(c, '2', '(FLAGS)')[0]
    typ, data = c.status('INBOX', '(MESSAGES UIDNEXT UIDVALIDITY)')
    assert typ == 'OK' and b'MESSAGES 2' in data[0] and b'UIDNEXT 4' in data[0]
    assert uidv in data[0].decode()
    c.logout()


def test_idle_sees_a_delivery_and_two_sessions_see_flags(site):
    imap, mdad = site
    mdad.deliver('carol', msg(1))
    a = imap.login('carol')
    b = imap.login('carol')
    assert a.select('INBOX')[0] == 'OK'
    assert b.select('INBOX')[0] == 'OK'
    assert a.store('1', '+FLAGS', '(\\Answered)')[0] == 'OK'
    b.noop()
    seen = b.untagged_responses.get('FETCH', [])
    assert any(b'\\Answered' in x for x in seen), b.untagged_responses
    tag = start_idle(b)
    mdad.deliver('carol', msg(2))
    read_until(b, b'* 2 EXISTS\r\n')
    end_idle(b, tag)
    b.untagged_responses.clear()
    assert fetch(b, '2', '(BODY.PEEK[])')[0][1].endswith(crlf(msg(2)))
    a.logout()
    b.logout()


def test_folders_and_path_escapes(site):
    imap, _ = site
    c = imap.login('carol')
    assert c.create('Work.2024')[0] == 'OK'
    root = imap.mbox_path('carol').parent / 'carol.mbox.folders'
    assert (root / 'Work.2024').is_file() and (root / 'Work').is_file()
    for bad in ('../escape', 'a/b', '/etc/x', 'Work.lock'):
        try:
            typ, _ = c.create(bad)
        except imaplib.IMAP4.error:
            typ = 'BAD'
        assert typ in ('NO', 'BAD'), bad
    assert not (imap.mbox_path('carol').parent.parent / 'escape').exists()
    typ, data = c.list()
    names = b'\n'.join(data)
    assert b'Work.2024' in names and b'escape' not in names
    assert c.rename('Work', 'Old')[0] == 'OK'
    assert (root / 'Old.2024').is_file()
    assert c.delete('Old.2024')[0] == 'OK'
    assert not (root / 'Old.2024').exists()
    c.logout()


def test_idle_after_selecting_again_sees_a_delivery(site):
    """SELECT of the mailbox already selected closes its change descriptor
    and opens another, which may get the same number: IDLE must still
    hear of a delivery (it heard nothing before the glue followed the
    selection rather than the number)."""
    imap, mdad = site
    mdad.deliver('carol', msg(1))
    b = imap.login('carol')
    assert b.select('INBOX')[0] == 'OK'
    assert b.select('INBOX')[0] == 'OK'
    b.sock.settimeout(15)
    tag = start_idle(b)
    mdad.deliver('carol', msg(2))
    read_until(b, b'* 2 EXISTS\r\n')
    end_idle(b, tag)
    b.logout()
