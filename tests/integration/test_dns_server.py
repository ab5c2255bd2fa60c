"""The loopback DNS server the tests use (dns_server.py), checked with raw
queries built here with struct, over UDP and TCP, imported and as a program.
So a failing mtad test can trust that the DNS side said what the zone says."""

import json
import socket
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from dns_server import DnsServer, validate_zone

HERE = Path(__file__).resolve().parent

ZONE = {
    "example.test": {"mx": [[20, "mx2.example.test"], [10, "MX1.example.test."]]},
    "mx1.example.test": {"a": ["127.0.0.2", "127.0.0.3"], "aaaa": ["::1"]},
    "nullmx.test": {"mx": [[0, "."]]},
    "alias.test": {"cname": "mx1.example.test"},
    "nodata.test": {"a": ["127.0.0.9"]},
    "servfail.test": "servfail",
    "refused.test": "refused",
    "gone.test": "nxdomain",
    "silent.test": "timeout",
    "garbage.test": "malformed",
    "big.test": {"behaviour": "truncate", "mx": [[i, f"mx{i}.big.test"] for i in range(30)]},
    "v6bad.test": {"a": ["127.0.0.4"], "behaviour": {"aaaa": "servfail"}},
    "*.many.test": {"mx": [[10, "mx.many.test"]]},
    "own.many.test": {"a": ["127.0.0.6"]},
}

TYPES = {"a": 1, "cname": 5, "mx": 15, "aaaa": 28}


def build_query(name, qtype, qid=0x1234):
    q = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\0" + struct.pack("!HH", TYPES[qtype], 1)


def read_name(msg, pos):
    """(name, position after it); follows compression pointers."""
    labels, end = [], None
    for _ in range(64):
        length = msg[pos]
        if length & 0xC0 == 0xC0:
            if end is None:
                end = pos + 2
            pos = ((length & 0x3F) << 8) | msg[pos + 1]
            continue
        pos += 1
        if length == 0:
            break
        labels.append(msg[pos:pos + length].decode())
        pos += length
    return ".".join(labels), (end if end is not None else pos)


def parse_reply(msg):
    qid, flags, qd, an, _ns, _ar = struct.unpack("!HHHHHH", msg[:12])
    pos = 12
    for _ in range(qd):
        _, pos = read_name(msg, pos)
        pos += 4
    answers = []
    for _ in range(an):
        owner, pos = read_name(msg, pos)
        rtype, _cls, _ttl, rdlen = struct.unpack("!HHIH", msg[pos:pos + 10])
        pos += 10
        rdata = msg[pos:pos + rdlen]
        if rtype == 15:
            value = (struct.unpack("!H", rdata[:2])[0], read_name(msg, pos + 2)[0])
        elif rtype == 1:
            value = socket.inet_ntop(socket.AF_INET, rdata)
        elif rtype == 28:
            value = socket.inet_ntop(socket.AF_INET6, rdata)
        elif rtype == 5:
            value = read_name(msg, pos)[0]
        else:
            value = rdata
        answers.append((owner, rtype, value))
        pos += rdlen
    return {"id": qid, "rcode": flags & 0xF, "tc": bool(flags & 0x0200),
            "aa": bool(flags & 0x0400), "qr": bool(flags & 0x8000), "answers": answers}


def udp(server, name, qtype, timeout=2.0):
    family = socket.AF_INET6 if ":" in server.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(build_query(name, qtype), (server.host, server.port))
        return s.recv(65535)


def tcp(server, name, qtype):
    with socket.create_connection((server.host, server.port), timeout=5) as s:
        q = build_query(name, qtype)
        s.sendall(struct.pack("!H", len(q)) + q)
        data = b""
        while len(data) < 2 or len(data) < 2 + struct.unpack("!H", data[:2])[0]:
            chunk = s.recv(65535)
            assert chunk, "connection closed before the whole answer"
            data += chunk
        return data[2:]


@pytest.fixture
def dns():
    with DnsServer(json.loads(json.dumps(ZONE))) as server:
        yield server


def test_mx_a_aaaa_cname(dns):
    r = parse_reply(udp(dns, "Example.Test", "mx"))
    assert r["qr"] and r["aa"] and r["id"] == 0x1234 and r["rcode"] == 0
    assert [a[2] for a in r["answers"]] == [(20, "mx2.example.test"), (10, "mx1.example.test")]
    assert all(a[0] == "example.test" and a[1] == 15 for a in r["answers"])

    assert [a[2] for a in parse_reply(udp(dns, "mx1.example.test", "a"))["answers"]] == \
        ["127.0.0.2", "127.0.0.3"]
    assert [a[2] for a in parse_reply(udp(dns, "mx1.example.test", "aaaa"))["answers"]] == ["::1"]

    alias = parse_reply(udp(dns, "alias.test", "a"))["answers"]
    assert alias == [("alias.test", 5, "mx1.example.test"),
                     ("mx1.example.test", 1, "127.0.0.2"),
                     ("mx1.example.test", 1, "127.0.0.3")]

    null = parse_reply(udp(dns, "nullmx.test", "mx"))["answers"]
    assert null == [("nullmx.test", 15, (0, ""))]


def test_nodata_nxdomain_and_failures(dns):
    nodata = parse_reply(udp(dns, "nodata.test", "mx"))
    assert nodata["rcode"] == 0 and nodata["answers"] == []
    assert parse_reply(udp(dns, "unknown.test", "a"))["rcode"] == 3
    assert parse_reply(udp(dns, "gone.test", "mx"))["rcode"] == 3
    assert parse_reply(udp(dns, "servfail.test", "mx"))["rcode"] == 2
    assert parse_reply(udp(dns, "refused.test", "a"))["rcode"] == 5
    # Per-type behaviour: A fine, AAAA fails.
    assert parse_reply(udp(dns, "v6bad.test", "a"))["answers"][0][2] == "127.0.0.4"
    assert parse_reply(udp(dns, "v6bad.test", "aaaa"))["rcode"] == 2


def test_timeout_never_answers(dns):
    with pytest.raises(socket.timeout):
        udp(dns, "silent.test", "mx", timeout=0.3)
    # ...but the server is still there for the next query.
    assert parse_reply(udp(dns, "example.test", "mx"))["rcode"] == 0
    assert ("silent.test", "mx", "udp") in dns.queries


def test_malformed_answer_is_cut_short(dns):
    msg = udp(dns, "garbage.test", "mx")
    qid, flags, qd, an = struct.unpack("!HHHH", msg[:8])
    assert qid == 0x1234 and flags & 0x8000 and qd == 1 and an == 1
    with pytest.raises((struct.error, IndexError)):
        parse_reply(msg)


def test_truncate_over_udp_full_over_tcp(dns):
    r = parse_reply(udp(dns, "big.test", "mx"))
    assert r["tc"] and r["answers"] == []
    full = parse_reply(tcp(dns, "big.test", "mx"))
    assert not full["tc"]
    assert [a[2] for a in full["answers"]] == [(i, f"mx{i}.big.test") for i in range(30)]
    assert ("big.test", "mx", "tcp") in dns.queries


def test_wildcard(dns):
    for name in ("d1.many.test", "a.b.many.test"):
        r = parse_reply(udp(dns, name, "mx"))
        assert r["answers"] == [(name, 15, (10, "mx.many.test"))]
    own = parse_reply(udp(dns, "own.many.test", "mx"))  # its own entry, no MX: NODATA
    assert own["rcode"] == 0 and own["answers"] == []
    assert parse_reply(udp(dns, "many.test", "mx"))["rcode"] == 3  # not under itself


def test_zone_changes_apply_at_once(dns):
    assert parse_reply(udp(dns, "late.test", "a"))["rcode"] == 3
    dns.zone["late.test"] = {"a": ["127.0.0.7"]}
    assert parse_reply(udp(dns, "late.test", "a"))["answers"][0][2] == "127.0.0.7"


def test_bad_queries_are_ignored(dns):
    family = socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.settimeout(0.3)
        for junk in [b"", b"\x00", b"\x12\x34\x81\x00" + b"\x00" * 8, b"\xff" * 40]:
            s.sendto(junk, (dns.host, dns.port))
        with pytest.raises(socket.timeout):
            s.recv(65535)
    assert parse_reply(udp(dns, "example.test", "mx"))["rcode"] == 0


def test_ipv6_loopback():
    try:
        server = DnsServer(json.loads(json.dumps(ZONE)), host="::1").start()
    except OSError:
        pytest.skip("no IPv6 loopback")
    try:
        assert server.server.startswith("[::1]:")
        assert parse_reply(udp(server, "example.test", "mx"))["answers"]
    finally:
        server.stop()


@pytest.mark.parametrize("zone", [
    {"x.test": "explode"},
    {"x.test": {"mx": [[70000, "a.test"]]}},
    {"x.test": {"a": ["::1"]}},
    {"x.test": {"aaaa": ["127.0.0.1"]}},
    {"x.test": {"txt": ["hi"]}},
    {"x.test": {"behaviour": {"a": "sometimes"}}},
    {"x.test": ["not", "a", "dict"]},
    {"a.*.test": {"a": ["127.0.0.1"]}},
])
def test_bad_zones_are_refused(zone):
    with pytest.raises(ValueError):
        validate_zone(zone)


def test_as_a_program(tmp_path):
    zone_file = tmp_path / "zone.json"
    zone_file.write_text(json.dumps(ZONE))
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "dns_server.py"), "--listen", "127.0.0.1", "--port", "0",
         "--zone", str(zone_file)],
        stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("ready 127.0.0.1:"), line
        port = int(line.rsplit(":", 1)[1])

        class Target:
            host = "127.0.0.1"

        Target.port = port
        r = parse_reply(udp(Target, "example.test", "mx"))
        assert [a[2] for a in r["answers"]] == [(20, "mx2.example.test"), (10, "mx1.example.test")]
        assert parse_reply(tcp(Target, "mx1.example.test", "aaaa"))["answers"][0][2] == "::1"
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


def test_program_refuses_non_loopback(tmp_path):
    zone_file = tmp_path / "zone.json"
    zone_file.write_text("{}")
    r = subprocess.run([sys.executable, str(HERE / "dns_server.py"), "--listen", "192.0.2.1",
                        "--zone", str(zone_file)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert "loopback" in r.stderr


# -- the C++ resolver (libcommon/dns through dns-lookup) against this server --

def lookup(binary, dns, what, *names, timeout_ms=300, tries=1):
    out = subprocess.run(
        [str(binary("libcommon/dns/dns-lookup")), "--server", dns.server,
         "--timeout-ms", str(timeout_ms), "--tries", str(tries), what, *names],
        capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert [line["name"] for line in lines] == list(names)
    return lines


def test_resolver_mx_against_server(binary, dns):
    got = {r["name"]: r for r in lookup(
        binary, dns, "mx", "example.test", "nullmx.test", "nodata.test", "unknown.test",
        "servfail.test", "refused.test", "silent.test", "garbage.test", "big.test", "alias.test")}
    assert got["example.test"]["status"] == "ok"
    assert got["example.test"]["records"] == [[10, "mx1.example.test"], [20, "mx2.example.test"]]
    assert got["nullmx.test"]["records"] == [[0, ""]]
    assert got["nodata.test"]["status"] == "nodata"
    assert got["alias.test"]["status"] == "nodata"  # CNAME to a name without MX
    assert got["unknown.test"]["status"] == "nxdomain"
    for name in ("servfail.test", "refused.test", "silent.test"):
        assert got[name]["status"] == "tempfail", name
        assert name in got[name]["error"]
    assert got["garbage.test"]["status"] == "badanswer"
    assert got["big.test"]["status"] == "ok"  # retried over TCP
    assert len(got["big.test"]["records"]) == 30
    assert ("big.test", "mx", "tcp") in dns.queries


def test_resolver_addresses_and_route_against_server(binary, dns):
    got = {r["name"]: r for r in lookup(
        binary, dns, "addresses", "mx1.example.test", "alias.test", "v6bad.test", "unknown.test",
        "127.0.0.5")}
    assert got["mx1.example.test"]["addresses"] == ["::1", "127.0.0.2", "127.0.0.3"]
    assert got["alias.test"]["addresses"] == ["::1", "127.0.0.2", "127.0.0.3"]
    assert got["v6bad.test"]["status"] == "ok"
    assert got["v6bad.test"]["addresses"] == ["127.0.0.4"]
    assert "AAAA" in got["v6bad.test"]["error"]
    assert got["unknown.test"]["status"] == "nxdomain"
    assert got["127.0.0.5"]["addresses"] == ["127.0.0.5"]

    routes = {r["name"]: r for r in lookup(
        binary, dns, "route", "example.test", "nullmx.test", "nodata.test", "unknown.test",
        "servfail.test")}
    assert routes["example.test"]["kind"] == "hosts"
    assert routes["example.test"]["hosts"] == [[10, "mx1.example.test"], [20, "mx2.example.test"]]
    assert routes["nullmx.test"]["kind"] == "nullmx"
    assert routes["nodata.test"]["hosts"] == [[0, "nodata.test"]]  # implicit MX
    assert routes["unknown.test"]["kind"] == "nosuchdomain"
    assert routes["servfail.test"]["kind"] == "tempfail"
