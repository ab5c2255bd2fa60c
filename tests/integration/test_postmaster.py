"""RFC 5321 §4.5.1 end to end: every local domain takes mail for postmaster.

mtad runs alone on a loopback port and is driven by smtplib. Bare
<Postmaster> in any case is queued as postmaster@<the first domain
[global] domains lists>; postmaster@<any local domain> is taken by a user or
an alias of that name, or else by [global] postmaster; with neither, RCPT
gets 550 5.1.1, mtad says so once per domain at start and `yubinctl check`
warns per domain.
"""

import json
import smtplib

import pytest

from standalone import Daemon, hand_over, tcp_greets

USERS = ('bob@example.org', 'carol@other.example')


class Mtad(Daemon):
    def __init__(self, inst, exe, port):
        super().__init__(inst, exe, 'mtad', lambda: tcp_greets(port), timeout=20)
        self.port = port

    def _transaction(self, address, body=None):
        """RCPT TO:<address> in a fresh transaction, then DATA when `body`
        is given and RCPT got 250: the (code, text) of the last reply."""
        with smtplib.SMTP('127.0.0.1', self.port, local_hostname='client.example.net',
                          timeout=10) as s:
            s.ehlo()
            assert s.mail('alice@example.net')[0] == 250
            code, text = s.rcpt(address)
            if body is not None and code == 250:
                code, text = s.data(body)
            return code, text.decode()

    def rcpt(self, address):
        return self._transaction(address)

    def send(self, address):
        """Sends one message to `address`; the queue ID from the 250."""
        code, text = self._transaction(address, b'Subject: to the postmaster\r\n\r\nhello\r\n')
        assert code == 250 and 'queued as' in text, text
        return text.rsplit(' ', 1)[-1]

    def queued_recipients(self, qid):
        r = self.inst.ctl('queue', 'list', '--json')
        assert r.returncode == 0, r.stderr
        for m in json.loads(r.stdout)['messages']:
            if m['id'] == qid:
                return [x['address'] for x in m['recipients']]
        raise AssertionError(f'{qid} not in the queue')


@pytest.fixture
def start(instance, binary, free_port):
    """start(domains, aliases='', postmaster=None) -> a running Mtad."""
    exe = binary('mtad/mtad')
    binary('ctl/yubinctl')
    servers = []

    def run(domains, aliases='', postmaster=None):
        etc = instance.dir / 'etc'
        (etc / 'users').write_text(''.join(f'{u}:*:::\n' for u in USERS))
        (etc / 'aliases').write_text(aliases)
        port = free_port()
        # Nothing listens on lmtp_socket: accepted messages stay queued.
        keys = {'listen': f'127.0.0.1:{port}',
                'lmtp_socket': str(instance.run_dir / 'no-mdad-here'), 'retry_min': '1h'}
        hand_over(instance, keys)
        instance.write_config({'global': {'domains': domains, 'postmaster': postmaster},
                               'mtad': keys})
        m = Mtad(instance, exe, port)
        m.start()
        servers.append(m)
        return m

    yield run
    for m in servers:
        m.stop()


def warnings_about_postmaster(text):
    return sorted(line for line in text.splitlines() if 'reaches no one' in line)


def test_nothing_configured_gets_550_and_a_warning_per_domain(start, instance):
    m = start(['example.org', 'other.example'])
    for address in ('postmaster', 'Postmaster', 'postmaster@example.org',
                    'POSTMASTER@other.example'):
        code, text = m.rcpt(address)
        assert (code, text[:5]) == (550, '5.1.1'), address
    # Said once per domain, at start.
    log = warnings_about_postmaster(m.log())
    assert len(log) == 2, log
    assert 'postmaster@example.org reaches no one' in log[0]
    assert 'postmaster@other.example reaches no one' in log[1]
    r = instance.ctl('check')
    assert (r.returncode, r.stdout) == (0, 'ok\n')
    assert warnings_about_postmaster(r.stderr) == [
        'warning: postmaster@example.org reaches no one; RFC 5321 requires it: add an alias in '
        f'{instance.dir}/etc/aliases or set [global] postmaster',
        'warning: postmaster@other.example reaches no one; RFC 5321 requires it: add an alias in '
        f'{instance.dir}/etc/aliases or set [global] postmaster',
    ]


def test_bare_postmaster_in_any_case_goes_to_the_primary_domain(start, instance):
    # The primary domain is the first one listed, not the first in order.
    m = start(['other.example', 'example.org'],
              aliases='postmaster@other.example: carol@other.example\n')
    for bare in ('postmaster', 'Postmaster', 'POSTMASTER', 'pOsTmAsTeR'):
        qid = m.send(bare)
        assert m.queued_recipients(qid) == ['postmaster@other.example'], bare
    # The alias covers its own domain only.
    assert m.rcpt('postmaster@Other.Example')[0] == 250
    code, text = m.rcpt('postmaster@example.org')
    assert (code, text[:5]) == (550, '5.1.1')
    log = warnings_about_postmaster(m.log())
    assert len(log) == 1 and 'postmaster@example.org reaches no one' in log[0], log


def test_fallback_takes_every_local_domain(start, instance):
    m = start(['example.org', 'other.example'], postmaster='bob@example.org')
    for address in ('postmaster', 'PostMaster', 'postmaster@example.org',
                    'postmaster@other.example', 'POSTMASTER@OTHER.EXAMPLE'):
        qid = m.send(address)
        assert len(m.queued_recipients(qid)) == 1
    # Only postmaster falls back; a remote postmaster is still relaying.
    assert m.rcpt('webmaster@other.example')[0] == 550
    code, text = m.rcpt('postmaster@remote.example')
    assert (code, text[:5]) == (554, '5.7.1')
    assert warnings_about_postmaster(m.log()) == []
    r = instance.ctl('check')
    assert (r.returncode, r.stdout, r.stderr) == (0, 'ok\n', '')


def test_fallback_that_reaches_no_one_is_not_accepted(start, instance):
    m = start(['example.org', 'other.example'], postmaster='ghost@example.org')
    code, text = m.rcpt('postmaster')
    assert code == 451, text  # the admin's mistake: retried, never lost
    assert 'postmaster fallback ghost@example.org reaches no one' in m.log()
    log = warnings_about_postmaster(m.log())
    assert len(log) == 3, log  # two at start, one for the RCPT
    r = instance.ctl('check')
    assert (r.returncode, r.stdout) == (0, 'ok\n')
    assert len(warnings_about_postmaster(r.stderr)) == 2, r.stderr
