"""yubinctl queue show/flush/retry/hold/release/delete/bounce and mailq,
end to end: yubin-master runs mtad (and later mdad); every command goes
yubinctl -> master (control socket) -> mtad (queue channel) and back.

A message is deferred by starting without mdad (no [mdad] section, so no
LMTP socket: mtad's attempt fails at once with a 4xx and the retry is an
hour away); "fixing the cause" is adding the section back and reloading
the master, which starts mdad. Then:

- show (text and --json) gives the envelope (ENVID, RET), each recipient's
  ORCPT, NOTIFY, status, attempts, times and the last reply; mailq prints it
  in Postfix's format, checked line by line; flush delivers it;
- hold survives a kill -9 of mtad (the master restarts it), blocks
  delivery (flush and a later message to another user do not move it),
  shows as held ('!' in mailq); release delivers it;
- delete removes it, files included, and no report reaches the sender;
- bounce puts one DSN in the sender's Maildir, Status 5.0.0, "bounced by
  the administrator";
- unknown and malformed IDs fail with a clear message and exit status 1;
- without a master, or with a master but no [mtad] section, yubinctl queue
  and mailq say so and exit 1.

No fixed sleeps: every wait polls a condition with a deadline.
"""

import email
import email.policy
import json
import os
import re
import signal
import smtplib
import subprocess

import pytest

from conftest import wait_for
from test_local_delivery import QUEUE_ID, Site

BODY = (b'From: Alice <alice@example.org>\r\n'
        b'To: Bob <bob@example.org>\r\n'
        b'Subject: queue control\r\n'
        b'\r\n'
        b'hello\r\n')


class Queue:
    """An instance under yubin-master with mtad running and mdad not yet."""

    def __init__(self, inst, binary, port):
        self.inst = inst
        self.site = Site(inst, binary, port, retry=('1h', '1h'))
        self.mdad_keys = dict(inst.config['mdad'])
        inst.link_daemon('mtad', self.site.mtad_exe)
        inst.write_config({'mdad': None})
        inst.start_master()
        inst.wait_daemon('mtad', timeout=20)
        wait_for(self.site.smtp_ready, 20, 'mtad to greet')

    def start_mdad(self):
        self.inst.link_daemon('mdad', self.site.mdad_exe)
        self.inst.write_config({'mdad': self.mdad_keys})
        r = self.inst.ctl('reload')
        assert r.returncode == 0, r.stderr
        self.inst.wait_daemon('mdad', timeout=20)
        wait_for(self.site.lmtp_ready, 20, 'mdad to greet')

    def q(self, *args):
        return self.inst.ctl('queue', *args)

    def show(self, qid):
        r = self.q('show', qid, '--json')
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)['message']

    def send(self, rcpt='bob@example.org', sender='alice@example.org', body=BODY):
        """One message with DSN parameters; returns its queue ID."""
        with smtplib.SMTP('127.0.0.1', self.site.port, local_hostname='client.example.net',
                          timeout=15) as s:
            s.ehlo()
            assert s.has_extn('dsn')
            assert s.mail(sender, ['RET=HDRS', 'ENVID=QQ314159'])[0] == 250
            code, text = s.rcpt(rcpt, ['NOTIFY=FAILURE,DELAY', f'ORCPT=rfc822;{rcpt}'])
            assert code == 250, text
            code, text = s.data(body)
            assert code == 250, text
        m = re.fullmatch(rb'2\.0\.0 Ok: queued as (' + QUEUE_ID.encode() + rb')', text)
        assert m, text
        return m.group(1).decode()

    def deferred(self, rcpt='bob@example.org'):
        """A message to rcpt that mtad could not deliver (no mdad yet)."""
        qid = self.send(rcpt)

        def is_deferred():
            m = self.show(qid)
            return m['recipients'][0]['status'] == 'deferred' and m
        wait_for(is_deferred, 20, 'the recipient to be deferred')
        return qid

    def mailq(self, tmp_path):
        link = tmp_path / 'mailq'
        if not link.exists():
            link.symlink_to(self.inst.ctl_bin)
        env = dict(os.environ, TZ='UTC')
        return subprocess.run([str(link), '-c', str(self.inst.conf)], capture_output=True,
                              text=True, env=env, timeout=60)

    def mtad_log(self):
        return self.inst.master_log()


@pytest.fixture
def queue(instance, binary, free_port):
    binary('master/yubin-master')
    return Queue(instance, binary, free_port())


def test_show_mailq_then_flush_delivers(queue, tmp_path):
    qid = queue.deferred()
    m = queue.show(qid)
    assert m['id'] == qid
    assert m['state'] == 'deferred'
    assert m['sender'] == 'alice@example.org'
    assert m['envid'] == 'QQ314159'
    assert m['ret'] == 'HDRS'
    assert m['size'] > len(BODY)  # with our Received: line
    [r] = m['recipients']
    assert r['address'] == 'bob@example.org'
    assert (r['orcpt_type'], r['orcpt']) == ('rfc822', 'bob@example.org')
    assert r['notify'] == ['FAILURE', 'DELAY']
    assert r['attempts'] == 1
    assert r['last_attempt'] >= m['arrival']
    assert r['next_attempt'] >= r['last_attempt'] + 3500  # retry_min 1h
    assert re.match(r'4\d\d ', r['reply']), r['reply']

    text = queue.q('show', qid)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0] == f'id:           {qid}'
    assert lines[1] == 'state:        deferred'
    assert lines[2] == 'sender:       alice@example.org'
    assert 'envid:        QQ314159' in lines
    assert 'ret:          HDRS' in lines
    assert 'recipient:    bob@example.org' in lines
    assert '  orcpt:         rfc822;bob@example.org' in lines
    assert '  notify:        FAILURE,DELAY' in lines
    assert '  status:        deferred' in lines
    assert '  attempts:      1' in lines
    assert f"  last reply:    {r['reply']}" in lines

    mq = queue.mailq(tmp_path)
    assert mq.returncode == 0, mq.stderr
    out = mq.stdout.splitlines()
    assert out[0] == ('-Queue ID-        --Size-- ----Arrival Time---- '
                      '-Sender/Recipient-------')
    assert re.fullmatch(qid + r' +' + str(m['size'])
                        + r' \w\w\w \w\w\w [ \d]\d \d\d:\d\d:\d\d  alice@example\.org', out[1]), out[1]
    assert out[1][16:26] == f"  {m['size']:>8}"  # no mark: neither active nor held
    assert out[2] == ' ' * 48 + f"({r['reply']})"
    assert out[3] == ' ' * 48 + 'bob@example.org'
    assert out[4] == ''
    assert out[5] == f"-- {(m['size'] + 1023) // 1024} Kbytes in 1 Request."
    assert len(out) == 6

    queue.start_mdad()
    f = queue.q('flush')
    assert f.returncode == 0, f.stderr
    assert f.stdout == 'scheduled 1 message\n'
    wait_for(lambda: queue.site.messages('bob'), 20, "the message in bob's Maildir")
    queue.site.wait_queue_empty()
    [got] = queue.site.messages('bob')
    assert got.endswith(BODY.replace(b'\r\n', b'\n'))
    assert queue.mailq(tmp_path).stdout == 'Mail queue is empty\n'
    assert f'flush requested by the administrator messages=1' in queue.mtad_log()


def test_hold_survives_a_restart_and_blocks_delivery_until_release(queue, tmp_path):
    qid = queue.deferred()
    h = queue.q('hold', qid)
    assert h.returncode == 0, h.stderr
    assert h.stdout == f'{qid}: held\n'
    assert queue.show(qid)['state'] == 'held'
    spool = queue.site.spool
    assert (spool / 'hold' / qid).is_file() and not (spool / 'queue' / qid).exists()
    again = queue.q('hold', qid)
    assert again.returncode == 0 and again.stdout == f'{qid}: already on hold\n'

    # mtad killed and restarted by the master: the hold is on disk.
    old = queue.inst.daemon('mtad')['pid']
    os.kill(old, signal.SIGKILL)
    queue.inst.wait_daemon('mtad', timeout=30, not_pid=old)
    wait_for(queue.site.smtp_ready, 20, 'the new mtad to greet')
    queue.start_mdad()

    # Deliveries run (a message to carol arrives), the held one does not move.
    assert queue.q('flush').stdout == 'scheduled 0 messages\n'
    retry = queue.q('retry', qid)
    assert retry.returncode == 1
    assert retry.stderr == f'yubinctl queue retry: message {qid} is on hold: release it instead\n'
    queue.send('carol@example.org')
    wait_for(lambda: queue.site.messages('carol'), 20, "the message in carol's Maildir")
    assert queue.site.messages('bob') == []
    m = queue.show(qid)
    assert m['state'] == 'held'
    assert m['recipients'][0]['attempts'] == 1
    listing = queue.site.queue()
    assert [(e['id'], e['status']) for e in listing] == [(qid, 'held')]

    mq = queue.mailq(tmp_path).stdout.splitlines()
    assert mq[1].startswith(qid + '!')
    assert mq[-1].endswith('in 1 Request.')

    rel = queue.q('release', qid)
    assert rel.returncode == 0, rel.stderr
    assert rel.stdout == f'{qid}: released\n'
    wait_for(lambda: queue.site.messages('bob'), 20, "the message in bob's Maildir")
    queue.site.wait_queue_empty()
    assert not (spool / 'hold' / qid).exists()
    log = queue.mtad_log()
    assert f'held by the administrator id={qid}' in log
    assert f'released by the administrator id={qid}' in log


def test_delete_removes_the_message_without_a_report(queue):
    qid = queue.deferred()
    queue.start_mdad()
    d = queue.q('delete', qid)
    assert d.returncode == 0, d.stderr
    assert d.stdout == f'{qid}: deleted\n'
    spool = queue.site.spool
    for area in ('queue', 'hold', 'state', 'corrupt'):
        assert not (spool / area / qid).exists(), area
    gone = queue.q('show', qid)
    assert gone.returncode == 1
    assert gone.stderr == f'yubinctl queue show: no message {qid} in the queue\n'
    # A later message to alice arrives; it is the only thing she gets (no
    # report about the deleted one), and bob gets nothing.
    queue.send('alice@example.org', sender='carol@example.org')
    [only] = wait_for(lambda: queue.site.messages('alice'), 20, "a message in alice's Maildir")
    queue.site.wait_queue_empty()
    assert b'Subject: queue control' in only
    assert queue.site.messages('alice') == [only]
    assert queue.site.messages('bob') == []
    assert f'deleted by the administrator id={qid}' in queue.mtad_log()


def test_bounce_sends_one_dsn_to_the_sender(queue):
    qid = queue.deferred()
    queue.start_mdad()
    b = queue.q('bounce', qid)
    assert b.returncode == 0, b.stderr
    assert b.stdout == f'{qid}: bounced 1 recipient\n'
    [raw] = wait_for(lambda: queue.site.messages('alice'), 20, "the report in alice's Maildir")
    queue.site.wait_queue_empty()
    assert queue.site.messages('bob') == []
    dsn = email.message_from_bytes(raw, policy=email.policy.compat32)
    assert dsn.get_content_type() == 'multipart/report'
    assert dsn.get_param('report-type') == 'delivery-status'
    assert dsn['To'] == '<alice@example.org>'
    human, status, original = dsn.get_payload()
    per_message, per_rcpt = status.get_payload()
    assert per_message['X-Yubin-Queue-ID'] == qid
    assert per_message['Original-Envelope-Id'] == 'QQ314159'
    assert per_rcpt['Final-Recipient'] == 'rfc822; bob@example.org'
    assert per_rcpt['Original-Recipient'] == 'rfc822; bob@example.org'
    assert per_rcpt['Action'] == 'failed'
    assert per_rcpt['Status'] == '5.0.0'
    assert per_rcpt['Diagnostic-Code'] == 'smtp; 554 5.0.0 bounced by the administrator'
    # RET=HDRS: the headers only.
    assert original.get_content_type() == 'text/rfc822-headers'
    assert 'Subject: queue control' in original.get_payload()
    assert 'hello' not in original.get_payload()
    log = queue.mtad_log()
    assert f'bounce requested by the administrator id={qid} rcpts=1' in log


def test_unknown_and_bad_ids(queue):
    qid = queue.deferred()
    missing = '0' * 16
    for verb in ('show', 'retry', 'hold', 'release', 'delete', 'bounce'):
        r = queue.q(verb, missing)
        assert r.returncode == 1, (verb, r.stdout)
        assert r.stderr == f'yubinctl queue {verb}: no message {missing} in the queue\n'
        assert r.stdout == ''
        bad = queue.q(verb, '../../etc/passwd')
        assert bad.returncode == 1
        assert "invalid queue ID '../../etc/passwd'" in bad.stderr
    r = queue.q('release', qid)
    assert r.returncode == 1
    assert r.stderr == f'yubinctl queue release: message {qid} is not on hold\n'
    r = queue.q('retry', qid)
    assert r.returncode == 0 and r.stdout == f'{qid}: scheduled\n'
    # The message is untouched by all this.
    assert queue.show(qid)['state'] in ('deferred', 'active')
    assert queue.q('frob').returncode == 2


def test_without_mtad_or_master(instance, binary, tmp_path):
    binary('master/yubin-master')
    link = tmp_path / 'mailq'
    link.symlink_to(instance.ctl_bin)
    # No master: a clear error, exit 1.
    instance.write_config()
    down = instance.ctl('queue', 'flush')
    assert down.returncode == 1
    assert down.stderr.startswith('yubinctl queue flush: yubin-master is not running')
    mq = subprocess.run([str(link), '-c', str(instance.conf)], capture_output=True, text=True,
                        timeout=60)
    assert mq.returncode == 1 and mq.stderr.startswith('mailq: yubin-master is not running')
    # A master without an [mtad] section: no queue to act on.
    instance.start_master()
    r = instance.ctl('queue', 'show', '0' * 16)
    assert r.returncode == 1
    assert r.stderr == 'yubinctl queue show: no [mtad] section: there is no queue\n'
    mq = subprocess.run([str(link), '-c', str(instance.conf)], capture_output=True, text=True,
                        timeout=60)
    assert mq.returncode == 1
    assert mq.stderr == 'mailq: no [mtad] section: there is no queue\n'
