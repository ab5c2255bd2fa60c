"""SMTP dialog scripts: a regression test is one small file in dialogs/.

A dialog is a text file read line by line:

    # A comment; blank lines are ignored.
    %config mtad.bare_lf = normalize   server config for this dialog (before
                                       the first C:/S: line)
    %queued 1                          after the dialog, the queue must hold
                                       exactly this many messages
    C: EHLO client.example.net         a client line; CRLF is appended
    C~ hello\\n.\\nworld\\r\\n            raw client bytes, Python escapes
                                       (\\r \\n \\t \\xNN \\\\), nothing appended
    S: 250 2.1.0                       the next reply line starts with this
    S~ 250 DSN                         skip reply lines until one starts
                                       with this (multi-line replies)
    S: <closed>                        the server closes the connection

Consecutive C:/C~ lines are sent in one write (a pipelined group), so a
dialog shows exactly what went out in one packet. `{host}` in an S: line is
the server's host name. The first S: line usually checks the 220 greeting.
"""

import codecs
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path


class DialogError(AssertionError):
    pass


@dataclass
class Step:
    kind: str  # 'send', 'expect', 'skip_to', 'closed'
    data: bytes = b''
    text: str = ''
    lineno: int = 0


@dataclass
class Dialog:
    path: Path
    config: dict = field(default_factory=dict)  # {'mtad': {'bare_lf': 'normalize'}}
    queued: int | None = None
    steps: list = field(default_factory=list)


def _unescape(text):
    return codecs.escape_decode(text.encode('utf-8'))[0]


def parse(path):
    """Reads a dialog file; raises ValueError with file:line on a bad line."""
    path = Path(path)
    d = Dialog(path)
    pending = b''
    pending_line = 0

    def flush():
        nonlocal pending
        if pending:
            d.steps.append(Step('send', data=pending, lineno=pending_line))
            pending = b''

    for n, raw in enumerate(path.read_text(encoding='utf-8').splitlines(), 1):
        line = raw.rstrip('\n')
        where = f'{path.name}:{n}'
        if not line.strip() or line.lstrip().startswith('#'):
            continue
        if line.startswith('%config '):
            if d.steps or pending:
                raise ValueError(f'{where}: %config after the dialog started')
            key, sep, value = line[len('%config '):].partition('=')
            section, dot, name = key.strip().partition('.')
            if not sep or not dot or not name:
                raise ValueError(f'{where}: expected %config section.key = value')
            d.config.setdefault(section, {})[name] = value.strip()
        elif line.startswith('%queued '):
            d.queued = int(line[len('%queued '):])
        elif line.startswith('C: ') or line == 'C:':
            if not pending:
                pending_line = n
            pending += line[3:].encode('utf-8') + b'\r\n'
        elif line.startswith('C~ '):
            if not pending:
                pending_line = n
            pending += _unescape(line[3:])
        elif line.startswith('S: ') or line.startswith('S~ '):
            flush()
            text = line[3:]
            if line.startswith('S: ') and text == '<closed>':
                d.steps.append(Step('closed', lineno=n))
            else:
                d.steps.append(Step('expect' if line[1] == ':' else 'skip_to', text=text, lineno=n))
        else:
            raise ValueError(f'{where}: unknown line {line!r}')
    flush()
    if not d.steps:
        raise ValueError(f'{path.name}: empty dialog')
    return d


class _Reader:
    def __init__(self, sock, timeout):
        self.sock = sock
        self.timeout = timeout
        self.buf = b''
        self.transcript = []

    def line(self):
        """The next line without CRLF, or None at EOF."""
        deadline = time.monotonic() + self.timeout
        while b'\n' not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise DialogError('timed out waiting for a reply line')
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b''
            if not chunk:
                if self.buf:
                    rest, self.buf = self.buf, b''
                    return rest.decode('utf-8', 'replace')
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b'\n', 1)
        text = line.rstrip(b'\r').decode('utf-8', 'replace')
        self.transcript.append('S: ' + text)
        return text


def run(dialog, port, host='127.0.0.1', server_name='', timeout=10.0):
    """Plays the dialog against host:port; raises DialogError (with the
    transcript so far) on the first mismatch."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        r = _Reader(sock, timeout)

        def fail(step, why):
            shown = '\n'.join(r.transcript[-30:])
            raise DialogError(f'{dialog.path.name}:{step.lineno}: {why}\n--- transcript ---\n{shown}')

        for step in dialog.steps:
            if step.kind == 'send':
                r.transcript.append('C: ' + step.data.decode('utf-8', 'replace').replace('\r\n', '\n')
                                    .rstrip('\n').replace('\n', '\nC: '))
                try:
                    sock.sendall(step.data)
                except (BrokenPipeError, ConnectionResetError) as exc:
                    fail(step, f'send failed: {exc!r}')
                continue
            want = step.text.replace('{host}', server_name)
            if step.kind == 'closed':
                got = r.line()
                if got is not None:
                    fail(step, f'expected the connection to close, got {got!r}')
                continue
            while True:
                got = r.line()
                if got is None:
                    fail(step, f'connection closed, expected {want!r}')
                if got.startswith(want):
                    break
                if step.kind == 'expect':
                    fail(step, f'expected a line starting {want!r}, got {got!r}')
        return r.transcript
