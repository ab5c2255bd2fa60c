"""Helpers for the mrad IMAP integration tests: Pop3Setup (mrad_helper.py)
with the IMAP listeners added (imap_listen with STARTTLS, imaps_listen with
implicit TLS, both on free loopback ports), and imaplib clients for them."""

import imaplib
import re

import pytest

from conftest import is_root
from mrad_helper import PASSWORD, Pop3Setup


class ImapSetup(Pop3Setup):
    def __init__(self, inst, binary, free_port, login_user=None, users=None, **keys):
        self.iport = free_port()
        self.isport = free_port()
        keys.setdefault('imap_listen', f'127.0.0.1:{self.iport}')
        keys.setdefault('imaps_listen', f'127.0.0.1:{self.isport}')
        super().__init__(inst, binary, free_port, login_user=login_user, users=users, **keys)

    def client(self, tls=False, starttls=False):
        """An imaplib client, not logged in: plain (optionally upgraded with
        STARTTLS) on imap_listen, or IMAP4_SSL on imaps_listen."""
        if tls:
            return imaplib.IMAP4_SSL('127.0.0.1', self.isport, ssl_context=self.tls_context(),
                                     timeout=20)
        c = imaplib.IMAP4('127.0.0.1', self.iport, timeout=20)
        if starttls:
            c.starttls(ssl_context=self.tls_context())
        return c

    def login(self, user='bob', tls=True, password=PASSWORD):
        c = self.client(tls=tls)
        typ, data = c.login(f'{user}@example.org', password)
        assert typ == 'OK', data
        return c




def capabilities(c):
    """The capability list of the last CAPABILITY (imaplib keeps it)."""
    return set(c.capabilities)


def start_idle(c):
    """Sends IDLE and reads its continuation; returns the tag."""
    tag = c._new_tag()
    c.send(tag + b' IDLE\r\n')
    line = c.readline()
    assert line.startswith(b'+ '), line
    return tag


def read_until(c, wanted):
    """Reads lines until one equals `wanted` (bytes, with its CRLF); returns
    the lines read, that one included. The socket's timeout bounds the wait."""
    lines = []
    while True:
        line = c.readline()
        assert line, f'connection closed before {wanted!r}: {lines}'
        lines.append(line)
        if line == wanted:
            return lines


def end_idle(c, tag):
    """Sends DONE and reads up to the IDLE's tagged reply, which must be OK."""
    c.send(b'DONE\r\n')
    while True:
        line = c.readline()
        assert line, 'connection closed before the IDLE completed'
        if line.startswith(tag):
            assert b' OK ' in line, line
            return


def code_of(data):
    """The response code of a tagged reply text ('[CODE ...] text')."""
    text = data[0].decode() if isinstance(data[0], bytes) else str(data[0])
    m = re.match(r'\[([^\]]*)\]', text)
    return m.group(1) if m else None


@pytest.fixture
def imap(instance, binary, free_port, request):
    """An ImapSetup, not started; as root its login process runs as a fresh
    system user (it must not own the mail). Import it into a test module
    (`from imap_helper import imap`) to use it there."""
    login_user = request.getfixturevalue('system_user') if is_root() else None
    setup = ImapSetup(instance, binary, free_port, login_user=login_user)
    yield setup
    setup.stop()
