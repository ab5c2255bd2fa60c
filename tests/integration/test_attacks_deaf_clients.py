"""Attack catalogue (issue 10, items 5 and 6): clients that hold a session
without taking part in it, against mrad. Guards against the Slowloris
class of denial of service (CVE-2007-6750, Apache httpd: a server keeps a
connection, its buffers and its slot for as long as a client keeps it
half-alive) in its two shapes: a client that never reads its answers, and
a logged-in client that drips bytes which never complete a command.

* mrad's close linger (docs/security.md, load finding 4): a session that
  is closing (idle timeout, QUIT/LOGOUT, shutdown) is dropped once its last
  answer has left or after kCloseLinger (10 s), whichever comes first.
  Shown for POP3 before login (the login process), POP3 after login
  (direct hand-over: the mail process holds the socket) and over STLS (the
  login process proxies; its TLS layer keeps the last answer below the
  filter), and for IMAP after login.
* the idle time after login runs from the last answer, not the last byte
  read (finding 3's tail): a client dripping an endless line is logged out
  at the idle timeout; IDLE restarts it (RFC 2177) and an idling client's
  updates do not.

Each connection is checked from the daemon's end (/proc/net/tcp), not by
reading, since these clients read nothing.

Trust: a test; loopback only.
"""

import re
import select
import socket
import ssl
import time

import pytest

from conftest import is_root, wait_for
from imap_helper import imap  # noqa: F401 (imap: a fixture)
from mrad_helper import PASSWORD, Pop3Setup

LINGER = 10.0  # mrad's kCloseLinger (mrad/mrad.hpp)
BIG = b'Subject: big\n\n' + b''.join(b'%07d ' % i + b'y' * 90 + b'\n' for i in range(30000))


def hexaddr(ip, port):
    return ''.join(f'{int(x):02X}' for x in reversed(ip.split('.'))) + f':{port:04X}'


def server_end_open(server_port, sock):
    """True while the daemon holds its end of sock's connection open
    (ESTABLISHED); a daemon that closed with answers unsent leaves it in
    FIN_WAIT1 or drops it."""
    ip, port = sock.getsockname()[:2]
    local, remote = hexaddr('127.0.0.1', server_port), hexaddr(ip, port)
    with open('/proc/net/tcp') as f:
        next(f)
        for line in f:
            fields = line.split()
            if fields[1] == local and fields[2] == remote:
                return fields[3] == '01'
    return False


def deaf_socket(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(('127.0.0.1', port))
    s.settimeout(20)
    return s


def read_until(sock, pattern, limit=1 << 20):
    data = b''
    while not re.search(pattern, data):
        chunk = sock.recv(4096)
        assert chunk, data[-300:]
        data += chunk
        assert len(data) < limit
    return data


def fill(sock, data, seconds=2.0):
    """Sends data over and over, without reading, until the daemon stops
    taking it (its buffers and ours full) or `seconds` pass."""
    sock.setblocking(False)
    end = time.monotonic() + seconds
    stalled_since = None
    while time.monotonic() < end:
        try:
            sock.send(data)
            stalled_since = None
        except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
            stalled_since = stalled_since or time.monotonic()
            if time.monotonic() - stalled_since > 0.5:
                break
            time.sleep(0.02)
        except OSError:
            break
    sock.setblocking(True)


def wait_dropped(port, socks, t0, what):
    """Waits until the daemon dropped every one of socks; returns the
    seconds since t0 at which the last one went."""
    wait_for(lambda: not any(server_end_open(port, s) for s in socks), LINGER + 25, what,
             interval=0.1)
    return time.monotonic() - t0


@pytest.fixture
def pop(instance, binary, free_port, request):
    login_user = request.getfixturevalue('system_user') if is_root() else None
    setup = Pop3Setup(instance, binary, free_port, login_user=login_user)
    yield setup
    setup.stop()



def test_slowloris_cve_2007_6750_pop3_deaf_clients_dropped_after_the_linger(pop):
    """Three POP3 clients that never read, timed out after 1 s of no
    answer: before login (pipelined CAPA), after login (a RETR of 3 MB,
    the mail process holds the socket) and over STLS before login (the
    TLS layer holds the last answer). Each is dropped once the timeout's
    answer has waited kCloseLinger, not kept for ever (finding 4); a
    client that reads gets its -ERR and the close at the timeout."""
    pop.write(pop3_idle_timeout='1s')
    pop.add_maildir('bob', BIG)
    pop.start()
    t0 = time.monotonic()
    # Before login.
    pre = deaf_socket(pop.port)
    read_until(pre, rb'\r\n')
    fill(pre, b'CAPA\r\n' * 512)
    # After login: the RETR fills every buffer on the way.
    after = deaf_socket(pop.port)
    read_until(after, rb'\r\n')
    after.sendall(b'USER bob@example.org\r\n')
    read_until(after, rb'\r\n')
    after.sendall(f'PASS {PASSWORD}\r\n'.encode())
    read_until(after, rb'\r\n')
    after.sendall(b'RETR 1\r\n')
    # Over STLS: CAPA answers pile up in the TLS session.
    raw = deaf_socket(pop.port)
    read_until(raw, rb'\r\n')
    raw.sendall(b'STLS\r\n')
    read_until(raw, rb'\r\n')
    tls = pop.tls_context().wrap_socket(raw, server_hostname='localhost')
    fill(tls, b'CAPA\r\n' * 512)
    # A client that reads: -ERR at the timeout, then the close.
    reader = deaf_socket(pop.port)
    read_until(reader, rb'\r\n')
    assert read_until(reader, rb'\r\n') == b'-ERR Disconnected for inactivity\r\n'
    assert reader.recv(100) == b''
    deaf = [pre, after, tls]
    assert all(server_end_open(pop.port, s) for s in deaf)
    took = wait_dropped(pop.port, deaf, t0, 'the never-reading POP3 clients to be dropped')
    # Timed out after 1 s, then the linger: not before it, and not much after.
    assert LINGER <= took <= LINGER + 15, took
    log = pop.log()
    assert log.count('closing linger expired') >= 3, log[-3000:]
    for s in deaf + [reader]:
        s.close()


def test_slowloris_cve_2007_6750_imap_after_login(imap):
    """IMAP after login, idle timeout 2 s: a client dripping a byte every
    0.2 s of an endless command line gets its BYE at the timeout (the
    bytes complete no command, so they restart nothing); a FETCH of 3 MB
    never read is dropped after the linger; a client in IDLE stays past
    the timeout counted from its previous command, since IDLE restarts it,
    and is logged out one timeout after the IDLE."""
    imap.write(imap_idle_timeout='2s')
    imap.add_maildir('bob', BIG)
    imap.start()

    def logged_in(sock):
        read_until(sock, rb'\r\n')
        sock.sendall(f'a LOGIN bob@example.org "{PASSWORD}"\r\n'.encode())
        read_until(sock, rb'a OK[^\r]*\r\n')
        sock.sendall(b'b SELECT INBOX\r\n')
        read_until(sock, rb'b OK[^\r]*\r\n')

    t0 = time.monotonic()
    deaf = deaf_socket(imap.iport)
    logged_in(deaf)
    deaf.sendall(b'f FETCH 1 (BODY.PEEK[])\r\n')
    drip = deaf_socket(imap.iport)
    logged_in(drip)
    idler = deaf_socket(imap.iport)
    logged_in(idler)
    idler.sendall(b'n NOOP\r\n')
    read_until(idler, rb'n OK[^\r]*\r\n')
    # The dripper: one byte per 0.2 s (paced by waiting for its answer
    # with that timeout), never a line end.
    d0 = time.monotonic()
    drip.sendall(b'c NOOP ')
    got = b''
    idle_sent = None
    while time.monotonic() - d0 < 8 and b'* BYE' not in got:
        try:
            drip.send(b'x')
        except OSError:
            break
        # 1.2 s after its NOOP the idler enters IDLE (before its 2 s are up).
        if idle_sent is None and time.monotonic() - d0 > 1.2:
            idler.sendall(b'i IDLE\r\n')
            assert read_until(idler, rb'\r\n').startswith(b'+ ')
            idle_sent = time.monotonic()
        if select.select([drip], [], [], 0.2)[0]:
            chunk = drip.recv(4096)
            if not chunk:
                break
            got += chunk
    dripped_for = time.monotonic() - d0
    assert b'* BYE Autologout; idle for too long' in got, got
    assert 1.5 <= dripped_for <= 5, dripped_for
    # The idler: not logged out 2 s after its NOOP (IDLE restarted the
    # time), but 2 s after the IDLE.
    assert idle_sent is not None
    idler.settimeout(10)
    bye = read_until(idler, rb'\* BYE[^\r]*\r\n')
    idle_for = time.monotonic() - idle_sent
    assert b'* BYE Autologout' in bye
    assert 1.5 <= idle_for <= 5, idle_for
    # The deaf fetcher: dropped after its timeout and the linger.
    took = wait_dropped(imap.iport, [deaf], t0, 'the never-reading IMAP client to be dropped')
    assert LINGER <= took <= LINGER + 15, took
    assert 'closing linger expired' in imap.log()
    for s in (deaf, drip, idler):
        s.close()
