"""mrad end to end over IMAP with Python's imaplib against the real daemon:
the login side (greeting and CAPABILITY, LOGINDISABLED and the refusal of
LOGIN without TLS on a listener that is not a trusted loopback one,
STARTTLS then LOGIN, IMAP4_SSL, AUTHENTICATE PLAIN, a wrong password
refused and logged with the client address, SCRAM-SHA-256-PLUS offered over
TLS, an mbox user logged in too (test_mrad_imap_mbox.py has the rest), pipelined input behind
STARTTLS dropped); the mail session over a Maildir written as mdad writes
it (LIST, SELECT, FETCH of envelope, body structure and byte-exact bodies,
STORE flags visible in the file names, COPY, UID MOVE, EXPUNGE, APPEND then
FETCH, SEARCH, names that would leave the mail folder refused, two sessions
seeing each other's changes, IDLE seeing new mail); fetchmail over IMAP
keeping, then deleting, the messages; as root, the privilege split."""

import base64
import imaplib
import os
import shutil
import socket
import subprocess

import pytest

from conftest import is_root, wait_for
from imap_helper import capabilities, end_idle, imap, start_idle  # noqa: F401 (imap: a fixture)
from mrad_helper import PASSWORD, can_open_as, uids_of


def msg(n, body=b'hello'):
    return b'Subject: message %d\nFrom: alice@example.net\n\n%s %d\n' % (n, body, n)



def read_line(f):
    line = f.readline()
    assert line, 'connection closed'
    return line


# -- the login side -------------------------------------------------------------


def test_greeting_capability_and_login_refused_without_tls(imap):
    imap.write(loopback_plaintext=False)
    imap.start()
    c = imap.client()
    caps = capabilities(c)
    assert {'IMAP4REV1', 'STARTTLS', 'LOGINDISABLED', 'SASL-IR', 'ID', 'ENABLE'} <= caps
    assert not any(x.startswith('AUTH=') for x in caps)
    assert c.welcome.startswith(b'* OK [CAPABILITY IMAP4rev1 ')
    with pytest.raises(imaplib.IMAP4.error, match=r'PRIVACYREQUIRED'):
        c.login('bob@example.org', PASSWORD)
    typ, data = c.noop()
    assert typ == 'OK'
    typ, data = c.logout()
    assert typ == 'BYE'

    # Raw: the greeting line, and commands of other states refused.
    with socket.create_connection(('127.0.0.1', imap.iport), timeout=20) as s:
        f = s.makefile('rwb')
        assert read_line(f).startswith(b'* OK [CAPABILITY IMAP4rev1 IMAP4rev2 ')
        f.write(b'a SELECT INBOX\r\nb ENABLE IMAP4rev2\r\nc LOGOUT\r\n')
        f.flush()
        assert read_line(f) == b'a BAD SELECT is not valid before login\r\n'
        assert read_line(f) == b'b BAD ENABLE is only valid after login\r\n'
        assert read_line(f) == b'* BYE Logging out\r\n'
        assert read_line(f) == b'c OK LOGOUT completed\r\n'
        assert f.readline() == b''


def test_starttls_then_login_and_imaps(imap):
    imap.write(loopback_plaintext=False)
    imap.start()
    c = imap.client(starttls=True)
    typ, data = c.capability()
    caps = set(data[0].decode().upper().split())
    assert 'STARTTLS' not in caps and 'LOGINDISABLED' not in caps
    assert {'AUTH=PLAIN', 'AUTH=SCRAM-SHA-256'} <= caps
    # carol's mailbox is an mbox (mbox_store.hpp): served over IMAP too.
    assert c.login('carol@example.org', PASSWORD)[0] == 'OK'
    c.logout()

    s = imap.client(tls=True)
    caps = capabilities(s)
    assert 'STARTTLS' not in caps and 'AUTH=PLAIN' in caps
    # TLS 1.3 from the first byte: channel binding data is there at the
    # greeting, so SCRAM-SHA-256-PLUS is offered.
    assert 'AUTH=SCRAM-SHA-256-PLUS' in caps
    assert s.login('carol@example.org', PASSWORD)[0] == 'OK'
    s.logout()
    assert 'authentication failed' not in imap.log()


def test_plaintext_allowed_on_trusted_loopback(imap):
    imap.start()  # loopback_plaintext = yes (the default)
    c = imap.client()
    caps = capabilities(c)
    assert 'LOGINDISABLED' not in caps and 'AUTH=PLAIN' in caps and 'STARTTLS' in caps
    assert c.login('carol@example.org', PASSWORD)[0] == 'OK'
    c.logout()


def test_wrong_password_logged_with_ip_and_authenticate_plain(imap):
    imap.start()
    c = imap.client(tls=True)
    with pytest.raises(imaplib.IMAP4.error, match=r'AUTHENTICATIONFAILED'):
        c.login('bob@example.org', 'wrong')
    wait_for(lambda: 'authentication failed' in imap.log(), 10, 'the failure in the log')
    line = [ln for ln in imap.log().splitlines() if 'authentication failed' in ln][0]
    assert 'ip=127.0.0.1' in line and 'bob@example.org' in line and 'wrong' not in line
    # The session goes on: AUTHENTICATE PLAIN through imaplib (a challenge).
    assert c.authenticate('PLAIN',
                          lambda _: b'\0carol@example.org\0' + PASSWORD.encode())[0] == 'OK'
    c.logout()

    # SASL-IR, by hand, then "*" cancels an exchange.
    raw = socket.create_connection(('127.0.0.1', imap.isport), timeout=20)
    with imap.tls_context().wrap_socket(raw) as s:
        f = s.makefile('rwb')
        read_line(f)
        f.write(b'a AUTHENTICATE PLAIN\r\n')
        f.flush()
        assert read_line(f) == b'+ \r\n'
        f.write(b'*\r\n')
        f.flush()
        assert read_line(f) == b'a BAD Authentication cancelled\r\n'
        ir = base64.b64encode(b'\0carol@example.org\0' + PASSWORD.encode())
        f.write(b'b AUTHENTICATE PLAIN ' + ir + b'\r\n')
        f.flush()
        assert read_line(f).startswith(b'b OK [CAPABILITY ')
        f.write(b'c LOGOUT\r\n')
        f.flush()
        assert read_line(f).startswith(b'* BYE ')


def test_starttls_drops_pipelined_commands(imap):
    imap.start()
    with socket.create_connection(('127.0.0.1', imap.iport), timeout=20) as raw:
        f = raw.makefile('rwb')
        read_line(f)
        # A man in the middle's command behind STARTTLS must not survive
        # into the TLS session (CVE-2011-0411 class).
        raw.sendall(b'a STARTTLS\r\nb LOGIN carol@example.org "' + PASSWORD.encode() + b'"\r\n')
        assert read_line(f) == b'a OK Begin TLS negotiation now\r\n'
        s = imap.tls_context().wrap_socket(raw)
        g = s.makefile('rwb')
        g.write(b'c NOOP\r\n')
        g.flush()
        assert read_line(g) == b'c OK NOOP completed\r\n'
        s.close()


# -- the mail session ------------------------------------------------------------

TRICKY = (b'From: Alice <alice@example.net>\n'
          b'To: Bob <bob@example.org>\n'
          b'Subject: =?UTF-8?B?aMOpbGxv?= world\n'
          b'Date: Thu, 26 Nov 2026 10:00:00 +0000\n'
          b'Message-ID: <tricky@example.net>\n'
          b'MIME-Version: 1.0\n'
          b'Content-Type: multipart/mixed; boundary="b1"\n'
          b'\n'
          b'--b1\n'
          b'Content-Type: text/plain; charset=utf-8\n'
          b'\n'
          b'.leading dot\n'
          b'From the start of a line\n'
          b'--b1\n'
          b'Content-Type: application/octet-stream; name="x.bin"\n'
          b'Content-Transfer-Encoding: base64\n'
          b'\n'
          b'AAECAw==\n'
          b'--b1--\n')


def crlf(data):
    return data.replace(b'\r\n', b'\n').replace(b'\n', b'\r\n')


def fetch_one(c, num, what, uid=False):
    typ, data = c.uid('FETCH', num, what) if uid else c.fetch(num, what)
    assert typ == 'OK', data
    return data


def test_list_select_fetch_byte_exact(imap):
    imap.add_maildir('bob', msg(1))
    name = imap.add_maildir('bob', TRICKY)
    imap.start()
    c = imap.login()
    typ, data = c.list()
    assert typ == 'OK'
    names = [ln.decode() for ln in data]
    assert any(n.endswith(' INBOX') or n.endswith(' "INBOX"') for n in names), names
    assert any('\\Sent' in n and 'Sent' in n for n in names), names  # created for a new user
    typ, data = c.select('INBOX')
    assert typ == 'OK' and data == [b'2']
    body = fetch_one(c, '2', '(BODY.PEEK[])')
    assert body[0][1] == crlf(TRICKY)
    # RFC822.SIZE counts CRLF line ends.
    size = fetch_one(c, '2', '(RFC822.SIZE)')
    assert b'RFC822.SIZE %d' % len(crlf(TRICKY)) in size[0]
    env = fetch_one(c, '2', '(ENVELOPE)')
    flat = b''.join(x if isinstance(x, bytes) else b''.join(x) for x in env)
    assert b'"Thu, 26 Nov 2026 10:00:00 +0000"' in flat
    assert b'"<tricky@example.net>"' in flat
    assert b'(("Alice" NIL "alice" "example.net"))' in flat
    assert b'(("Bob" NIL "bob" "example.org"))' in flat
    bs = fetch_one(c, '2', '(BODYSTRUCTURE)')
    flat = b''.join(x if isinstance(x, bytes) else b''.join(x) for x in bs)
    assert b'"MIXED"' in flat.upper() and b'"BASE64"' in flat.upper()
    part = fetch_one(c, '2', '(BODY.PEEK[1])')
    assert part[0][1] == b'.leading dot\r\nFrom the start of a line'
    # Nothing read yet: PEEK leaves \Seen off; the message moved to cur/.
    files = imap.maildir_files('bob')
    assert files['new'] == [] and any(f.startswith(name.split(',')[0]) for f in files['cur'])
    assert all(not f.endswith('S') for f in files['cur'])
    c.logout()


def test_store_flags_in_file_names_copy_move_expunge(imap):
    for i in range(1, 4):
        imap.add_maildir('bob', msg(i))
    imap.start()
    c = imap.login()
    assert c.select('INBOX')[0] == 'OK'
    typ, data = c.store('1', '+FLAGS', '(\\Seen \\Flagged)')
    assert typ == 'OK'
    cur = imap.maildir_files('bob')['cur']
    assert sum(1 for f in cur if f.endswith(':2,FS')) == 1, cur
    typ, data = c.copy('2', 'Archive')
    assert typ == 'OK'
    assert c.create('Projects')[0] == 'OK'
    typ, data = c.uid('MOVE', fetch_uid(c, 3), 'Projects')
    assert typ == 'OK', data
    st = status(c, 'Archive')
    assert st['MESSAGES'] == 1
    assert status(c, 'Projects')['MESSAGES'] == 1
    assert (imap.maildir('bob') / '.Projects' / 'cur').exists()
    # EXPUNGE what is \Deleted.
    assert c.store('1', '+FLAGS', '(\\Deleted)')[0] == 'OK'
    c.untagged_responses.pop('EXPUNGE', None)  # the one MOVE announced
    typ, data = c.expunge()
    assert typ == 'OK' and data == [b'1']
    typ, data = c.search(None, 'ALL')
    assert data == [b'1']
    c.logout()
    files = imap.maildir_files('bob')
    assert len(files['new']) + len(files['cur']) == 1


def fetch_uid(c, num):
    data = fetch_one(c, str(num), '(UID)')
    m = __import__('re').search(rb'UID (\d+)', data[0])
    return m.group(1).decode()


def status(c, box):
    typ, data = c.status(box, '(MESSAGES UNSEEN UIDNEXT)')
    assert typ == 'OK', data
    words = data[0].decode().split('(')[1].rstrip(')').split()
    return {words[i]: int(words[i + 1]) for i in range(0, len(words), 2)}


def test_append_fetch_search_and_path_escapes(imap):
    imap.start()
    c = imap.login()
    data = crlf(msg(7, b'needle in the body'))
    typ, resp = c.append('INBOX', '(\\Seen)', None, data)
    assert typ == 'OK', resp
    assert b'APPENDUID' in resp[0]
    assert c.select('INBOX')[0] == 'OK'
    assert fetch_one(c, '1', '(BODY.PEEK[])')[0][1] == data
    typ, found = c.search(None, 'BODY', 'needle')
    assert found == [b'1']
    typ, found = c.search(None, 'SUBJECT', '"message 7"', 'SEEN')
    assert found == [b'1']
    typ, found = c.search(None, 'UNSEEN')
    assert found == [b'']
    for bad in ('../escape', '/etc', '~root', 'a/../../b', '.hidden', 'a..b'):
        try:
            typ, _ = c.create(bad)
        except imaplib.IMAP4.error:  # BAD: refused by the grammar
            typ = 'BAD'
        assert typ in ('NO', 'BAD'), bad
    typ, data = c.list()
    assert not any(b'escape' in x or b'etc' in x or b'root' in x for x in data), data
    assert not (imap.mail / 'example.org' / 'bob' / 'escape').exists()
    assert not (imap.mail / 'example.org' / 'escape').exists()
    c.logout()


def test_two_sessions_see_each_others_changes_and_idle(imap):
    imap.add_maildir('bob', msg(1))
    imap.start()
    a = imap.login()
    b = imap.login()
    assert a.select('INBOX')[0] == 'OK'
    assert b.select('INBOX')[0] == 'OK'
    assert a.store('1', '+FLAGS', '(\\Answered)')[0] == 'OK'
    typ, data = b.noop()
    seen = b.untagged_responses.get('FETCH', [])
    assert any(b'\\Answered' in x for x in seen), (data, b.untagged_responses)
    # IDLE on b: a message delivered into new/ shows up as EXISTS.
    tag = start_idle(b)
    imap.add_maildir('bob', msg(2))
    line = b.readline()
    assert line == b'* 2 EXISTS\r\n', line
    end_idle(b, tag)
    a.logout()
    b.logout()


def test_idle_after_selecting_again_and_elsewhere_sees_a_delivery(imap):
    """SELECT INBOX twice, and INBOX -> Sent -> INBOX: each SELECT closes a
    change descriptor and takes another (a kept one, or a new one that
    may have the same number); IDLE still hears of a delivery."""
    imap.add_maildir('bob', msg(1))
    imap.start()
    b = imap.login()
    for box in ('INBOX', 'INBOX', 'Sent', 'INBOX'):
        assert b.select(box)[0] == 'OK', box
    b.sock.settimeout(15)
    tag = start_idle(b)
    imap.add_maildir('bob', msg(2))
    line = b.readline()
    assert line == b'* 2 EXISTS\r\n', line
    end_idle(b, tag)
    b.logout()


def test_idle_timeout_logs_out_with_bye(imap):
    imap.write(imap_idle_timeout='2s')
    imap.start()
    c = imap.login()
    assert c.select('INBOX')[0] == 'OK'
    c.sock.settimeout(20)
    # Silent past the timeout: the server says BYE and closes.
    line = c.readline()
    assert line == b'* BYE Autologout; idle for too long\r\n', line
    assert c.readline() == b''
    wait_for(lambda: 'idle timeout' in imap.log(), 10, 'the timeout in the log')


# -- a real client -----------------------------------------------------------------


@pytest.mark.skipif(not shutil.which('fetchmail'), reason='fetchmail not installed')
def test_fetchmail_over_imap_keep_then_delete(imap, tmp_path):
    imap.add_maildir('bob', msg(1))
    imap.add_maildir('bob', TRICKY)
    imap.start()
    out = tmp_path / 'out'
    rc = tmp_path / 'fetchmailrc'
    rc.write_text(f'poll 127.0.0.1 service {imap.isport} protocol IMAP timeout 20\n'
                  f'  user "bob@example.org" password "{PASSWORD}" ssl no sslcertck\n')
    os.chmod(rc, 0o600)
    env = dict(os.environ, HOME=str(tmp_path), FETCHMAILHOME=str(tmp_path))

    def fetch(*extra):
        # Its own lock file: as root, fetchmail's default is the shared
        # /var/run/fetchmail.pid, and a parallel test's run holds it.
        return subprocess.run(['fetchmail', '-f', str(rc), '--nosyslog', '-v',
                               '--pidfile', str(tmp_path / 'fetchmail.pid'), '--mda',
                               f'sh -c "cat >> {out}; echo ==== >> {out}"', *extra],
                              capture_output=True, text=True, env=env, timeout=60)
    r = fetch('--keep')
    assert r.returncode == 0, r.stdout + r.stderr
    got = out.read_bytes()
    assert got.count(b'====') == 2
    assert b'\n.leading dot\nFrom the start of a line\n' in got
    files = imap.maildir_files('bob')
    assert len(files['new']) + len(files['cur']) == 2
    # fetchmail marked them \Seen (IMAP flags in the file names).
    assert all(f.endswith('S') for f in files['cur']), files
    out.unlink()
    r = fetch('--all', '--nokeep')
    assert r.returncode == 0, r.stdout + r.stderr
    assert out.read_bytes().count(b'====') == 2
    assert imap.maildir_files('bob') == {'new': [], 'cur': []}


# -- the privilege split -----------------------------------------------------------


@pytest.mark.skipif(not is_root(), reason='needs root')
def test_privilege_split_imap(imap, instance):
    name = imap.add_maildir('bob', msg(1))
    spool = instance.dir / 'spool'
    os.chmod(spool, 0o700)  # as mtad keeps its queue: its own user only
    imap.start()

    def dropped():
        pid = imap.mail_pid()
        if pid is None:
            return None
        ids = uids_of(pid)
        return (pid, ids) if ids['Uid'][0] != 0 else None
    mail_pid, m = wait_for(dropped, timeout=30, what='the mail process past its privilege drop')
    assert m['Uid'] == [imap.mail_uid] * 4
    c = imap.login()
    assert c.select('INBOX')[0] == 'OK'
    assert fetch_one(c, '1', '(BODY.PEEK[])')[0][1] == crlf(msg(1))
    # The IMAP session runs in that process: it can read the mail, not the
    # queue; the login process cannot read the mail.
    login_ids = uids_of(imap.proc.pid)
    cur = imap.maildir('bob') / 'cur'
    moved = [cur / f for f in os.listdir(cur) if f.startswith(name.split(',')[0])]
    assert moved
    assert can_open_as(imap.mail_uid, imap.mail_gid, moved[0])
    assert not can_open_as(imap.login_uid, login_ids['Gid'][0], moved[0])
    assert not can_open_as(imap.mail_uid, imap.mail_gid, spool)
    # Files the session made (uid list, folders) belong to the mail user.
    for p in imap.maildir('bob').iterdir():
        assert p.stat().st_uid == imap.mail_uid, p
    c.logout()
