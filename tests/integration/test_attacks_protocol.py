"""Attack catalogue (issue 10 item 6), the entries against mrad's
protocols, end to end over loopback: STARTTLS command injection in POP3 and
IMAP, IMAP literal and nesting bombs, NUL in IMAP strings, and MIME-depth
and header bombs in a mailbox. Each test names the advisory whose class it
guards against. The unit tests of the parsers (libcommon/imap/parser_test,
mrad/pop3/pop3_test, libcommon/mime) cover the same inputs byte by byte;
these show the daemon answering them and serving on.

Trust: test code; loopback only."""

import socket
import ssl

import pytest

from conftest import is_root
from imap_helper import ImapSetup
from mrad_helper import PASSWORD


@pytest.fixture
def mrad(instance, binary, free_port, request):
    login_user = request.getfixturevalue('system_user') if is_root() else None
    setup = ImapSetup(instance, binary, free_port, login_user=login_user,
                      users={'bob': 'maildir'})
    setup.start()
    yield setup
    setup.stop()


class Conn:
    """A line-oriented client on a raw socket (TLS can be started on it)."""

    def __init__(self, port):
        self.sock = socket.create_connection(('127.0.0.1', port), timeout=20)
        self.buf = b''

    def send(self, data):
        self.sock.sendall(data)

    def line(self):
        while b'\r\n' not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b'\r\n', 1)
        return line

    def until_tagged(self, tag):
        """Lines up to and including the tagged reply of `tag`."""
        out = []
        while True:
            ln = self.line()
            out.append(ln)
            if ln.startswith(tag + b' '):
                return out

    def starttls(self):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.sock = ctx.wrap_socket(self.sock, server_hostname='localhost')

    def close(self):
        self.sock.close()


def imap_logged_in(mrad):
    c = Conn(mrad.iport)
    assert c.line().startswith(b'* OK')
    c.send(f'a LOGIN bob@example.org "{PASSWORD}"\r\n'.encode())
    assert c.until_tagged(b'a')[-1].startswith(b'a OK')
    return c


def still_serves(c, tag=b'z'):
    c.send(tag + b' NOOP\r\n')
    assert c.until_tagged(tag)[-1].startswith(tag + b' OK')


# --- STARTTLS command injection ---------------------------------------------------

def test_pop3_stls_injection_is_discarded(mrad):
    """CVE-2011-0411 class in POP3 (Cyrus CVE-2011-1926, Dovecot
    CVE-2021-33515 for submission): commands sent in the same packet as
    STLS are never executed inside TLS."""
    c = Conn(mrad.port)
    assert c.line().startswith(b'+OK')
    c.send(b'STLS\r\nUSER bob@example.org\r\nPASS ' + PASSWORD.encode() + b'\r\n')
    assert c.line().startswith(b'+OK')
    assert c.buf == b''
    c.starttls()
    # The first answer inside TLS is the one to this STAT: not a reply to
    # the injected USER/PASS, and the session is not logged in.
    c.send(b'STAT\r\n')
    assert c.line().startswith(b'-ERR')
    c.send(b'USER bob@example.org\r\n')
    assert c.line().startswith(b'+OK')
    c.send(b'PASS ' + PASSWORD.encode() + b'\r\n')
    assert c.line().startswith(b'+OK')
    c.send(b'QUIT\r\n')
    assert c.line().startswith(b'+OK')
    c.close()


def test_imap_starttls_injection_is_discarded(mrad):
    """CVE-2011-0411 class in IMAP (Cyrus CVE-2011-1926): a LOGIN pipelined
    behind STARTTLS is dropped, not run after the handshake."""
    c = Conn(mrad.iport)
    assert c.line().startswith(b'* OK')
    c.send(b'a STARTTLS\r\nb LOGIN bob@example.org "' + PASSWORD.encode() + b'"\r\n')
    assert c.until_tagged(b'a')[-1].startswith(b'a OK')
    assert c.buf == b''
    c.starttls()
    c.send(b'c SELECT INBOX\r\n')
    lines = c.until_tagged(b'c')
    # Not logged in: no "b OK", and SELECT is refused as before login.
    assert not any(ln.startswith(b'b ') for ln in lines), lines
    assert lines[-1].startswith(b'c BAD') or lines[-1].startswith(b'c NO'), lines
    c.close()


# --- literals, nesting, NUL -------------------------------------------------------------

@pytest.mark.parametrize('size', [b'4294967296', b'99999999999999999999999'])
def test_imap_literal_bomb_is_refused_unread(mrad, size):
    """Literal-size bombs (memory exhaustion or length overflow from an
    announced literal size): an APPEND announcing a huge literal is refused
    with NO [TOOBIG] or BAD at once, nothing is read into memory, and the
    session goes on."""
    c = imap_logged_in(mrad)
    c.send(b'a APPEND INBOX {' + size + b'}\r\n')
    ln = c.line()
    assert not ln.startswith(b'+'), ln  # no continuation: nothing is read
    assert ln.startswith(b'a NO [TOOBIG]') or ln.startswith(b'a BAD'), ln
    still_serves(c)
    c.close()


def test_imap_nesting_bomb_is_refused(mrad):
    """Parenthesis nesting bombs (stack exhaustion in recursive parsers, the
    IMAP-command twin of CVE-2020-12100 below): a SEARCH nested 100,000 deep gets
    BAD and the session goes on."""
    c = imap_logged_in(mrad)
    c.send(b'a SELECT INBOX\r\n')
    c.until_tagged(b'a')
    c.send(b'b SEARCH ' + b'(' * 100000 + b'ALL' + b')' * 100000 + b'\r\n')
    lines = c.until_tagged(b'b')
    assert lines[-1].startswith(b'b BAD') or lines[-1].startswith(b'b NO'), lines[-1][:200]
    c.send(b'c SEARCH NOT NOT NOT ' + b'OR ALL ' * 5000 + b'ALL\r\n')
    lines = c.until_tagged(b'c')
    assert lines[-1][:5] in (b'c BAD', b'c NO '), lines[-1][:200]
    still_serves(c)
    c.close()


def test_imap_nul_in_strings_is_refused(mrad):
    """CVE-2019-11500 (Dovecot, Pigeonhole: NUL in IMAP strings led to an
    out-of-bounds write): NUL in a quoted string or a literal gets BAD."""
    c = imap_logged_in(mrad)
    c.send(b'a LIST "" "IN\x00BOX"\r\n')
    assert c.until_tagged(b'a')[-1].startswith(b'a BAD')
    c.send(b'b CREATE {5+}\r\nab\x00cd\r\n')
    assert c.until_tagged(b'b')[-1].startswith(b'b BAD')
    still_serves(c)
    assert not (mrad.maildir('bob') / '.ab').exists()
    c.close()


# --- MIME depth and header bombs -----------------------------------------------------

def nested_multipart(depth):
    head, tail = [], []
    for i in range(depth):
        head.append(b'Content-Type: multipart/mixed; boundary="b%d"\n\n--b%d\n' % (i, i))
        tail.insert(0, b'\n--b%d--\n' % i)
    return (b'From: a@example.net\nSubject: deep\nMIME-Version: 1.0\n' + b''.join(head) +
            b'Content-Type: text/plain\n\ninnermost\n' + b''.join(tail))


def test_mime_depth_and_header_bombs_are_bounded(mrad):
    """MIME nesting bombs (Dovecot CVE-2020-12100: deeply nested MIME parts
    exhausted the stack and CPU) and header bombs (a million header lines):
    BODYSTRUCTURE and ENVELOPE answer within the limits, and mrad goes on."""
    mrad.add_maildir('bob', nested_multipart(5000))
    many = b''.join(b'X-Filler-%d: %s\n' % (i, b'y' * 50) for i in range(200000))
    mrad.add_maildir('bob', b'From: b@example.net\nSubject: wide\n' + many + b'\nbody\n')
    c = imap_logged_in(mrad)
    c.send(b'a SELECT INBOX\r\n')
    assert c.until_tagged(b'a')[-1].startswith(b'a OK')
    c.send(b'b FETCH 1:2 (BODYSTRUCTURE ENVELOPE)\r\n')
    lines = c.until_tagged(b'b')
    assert lines[-1].startswith(b'b OK'), lines[-1]
    text = b'\n'.join(lines)
    assert b'"deep"' in text and b'"wide"' in text
    # Depth is bounded: far fewer nested lists than the 5,000 levels sent.
    assert text.count(b'("text" "plain"') + text.count(b'("TEXT" "PLAIN"') <= 2
    assert max(len(ln) for ln in lines) < 200000
    still_serves(c)
    assert mrad.proc.poll() is None
    c.close()
