"""A small authoritative DNS server for tests, benchmarks and the dev instance.

Standard library only. Serves UDP and TCP (RFC 1035 §4.2; TCP with the
two-byte length prefix) on one loopback port, from a zone held in a dict, so
that nothing under test ever asks the machine's own resolver or leaves the
machine.

Zone: a dict from name (case-insensitive, trailing dot optional) to either a
behaviour string or a dict of records and an optional behaviour:

    {
      "example.test":  {"mx": [[10, "mx1.example.test"], [20, "mx2.example.test"]]},
      "mx1.example.test": {"a": ["127.0.0.2"], "aaaa": ["::1"]},
      "nullmx.test":   {"mx": [[0, "."]]},
      "alias.test":    {"cname": "mx1.example.test"},
      "broken.test":   "servfail",
      "big.test":      {"behaviour": "truncate", "mx": [[1, "a.test"]]},
      "v6bad.test":    {"a": ["127.0.0.3"], "behaviour": {"aaaa": "servfail"}},
      "*.many.test":   {"mx": [[10, "mx.many.test"]]},
    }

Behaviours: "servfail", "refused", "nxdomain" (also what an unknown name
gets), "timeout" (never answers), "malformed" (a header and question that
match, then an answer record cut short), "truncate" (TC bit and no records
over UDP, the full answer over TCP). A name that exists without records of
the asked type gets NOERROR with no answer (NODATA). A CNAME answers every
type, followed by the target's records when the target is in the zone.
A "*.suffix" entry answers for every name under suffix that has no entry of
its own (a simplified RFC 4592 wildcard; records keep the asked name).

From a test:

    with DnsServer(zone) as dns:
        settings = f"127.0.0.1:{dns.port}"
        dns.zone["late.test"] = {"a": ["127.0.0.4"]}   # changes apply at once
        dns.queries                                    # [(name, type, "udp"|"tcp")]

As a program (prints "ready" once listening, runs until SIGTERM/SIGINT):

    python3 dns_server.py --listen 127.0.0.1 --port 5353 --zone zone.json
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import selectors
import signal
import socket
import struct
import sys
import threading

TYPE_A = 1
TYPE_CNAME = 5
TYPE_MX = 15
TYPE_AAAA = 28
TYPE_NAMES = {TYPE_A: "a", TYPE_CNAME: "cname", TYPE_MX: "mx", TYPE_AAAA: "aaaa"}

RCODE_NOERROR = 0
RCODE_SERVFAIL = 2
RCODE_NXDOMAIN = 3
RCODE_REFUSED = 5

BEHAVIOURS = {"servfail", "refused", "nxdomain", "timeout", "malformed", "truncate"}
TTL = 60


def normalize(name: str) -> str:
    return name.rstrip(".").lower() if name not in ("", ".") else ""


def encode_name(name: str) -> bytes:
    out = b""
    for label in normalize(name).split(".") if normalize(name) else []:
        raw = label.encode("ascii")
        if not 0 < len(raw) < 64:
            raise ValueError(f"bad label in {name!r}")
        out += bytes([len(raw)]) + raw
    return out + b"\0"


def parse_query(msg: bytes):
    """(id, flags, name, qtype, question bytes) or None for a bad query."""
    if len(msg) < 12:
        return None
    qid, flags, qdcount = struct.unpack("!HHH", msg[:6])
    if qdcount != 1 or flags & 0x8000:
        return None
    pos, labels = 12, []
    while True:
        if pos >= len(msg):
            return None
        length = msg[pos]
        pos += 1
        if length == 0:
            break
        if length > 63 or pos + length > len(msg):
            return None
        labels.append(msg[pos:pos + length].decode("ascii", "replace"))
        pos += length
    if pos + 4 > len(msg):
        return None
    qtype, _qclass = struct.unpack("!HH", msg[pos:pos + 4])
    return qid, flags, ".".join(labels), qtype, msg[12:pos + 4]


def validate_zone(zone: dict) -> None:
    """Raises ValueError on an entry this server would not understand."""
    for name, entry in zone.items():
        if name.count("*") > (1 if name.startswith("*.") else 0):
            raise ValueError(f"{name}: '*' only as the whole first label")
        if isinstance(entry, str):
            if entry not in BEHAVIOURS:
                raise ValueError(f"{name}: unknown behaviour {entry!r}")
            continue
        if not isinstance(entry, dict):
            raise ValueError(f"{name}: entry must be a behaviour or a dict")
        for key, value in entry.items():
            if key == "mx":
                for pref, host in value:
                    if not 0 <= int(pref) <= 65535:
                        raise ValueError(f"{name}: MX preference {pref}")
                    encode_name(host)
            elif key == "a":
                for ip in value:
                    ipaddress.IPv4Address(ip)
            elif key == "aaaa":
                for ip in value:
                    ipaddress.IPv6Address(ip)
            elif key == "cname":
                encode_name(value)
            elif key == "behaviour":
                per_type = value.values() if isinstance(value, dict) else [value]
                for b in per_type:
                    if b not in BEHAVIOURS:
                        raise ValueError(f"{name}: unknown behaviour {b!r}")
            else:
                raise ValueError(f"{name}: unknown key {key!r}")


class DnsServer:
    """UDP and TCP on one port of a loopback address, answering from `zone`."""

    def __init__(self, zone: dict | None = None, host: str = "127.0.0.1", port: int = 0):
        self.zone = {} if zone is None else zone
        validate_zone(self.zone)
        self.host = host
        self.port = port
        self.queries: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._udp = self._tcp = None
        self._thread = None
        self._conns: list[socket.socket] = []

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> "DnsServer":
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        for _ in range(50):
            udp = socket.socket(family, socket.SOCK_DGRAM)
            udp.bind((self.host, self.port))
            port = udp.getsockname()[1]
            tcp = socket.socket(family, socket.SOCK_STREAM)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                tcp.bind((self.host, port))
            except OSError:
                udp.close()
                tcp.close()
                if self.port:
                    raise
                continue  # TCP side of this ephemeral port is taken: another one
            tcp.listen(64)
            self._udp, self._tcp, self.port = udp, tcp, port
            break
        else:
            raise OSError("no port free for both UDP and TCP")
        self._udp.setblocking(False)
        self._tcp.setblocking(False)
        self._thread = threading.Thread(target=self._run, name="dns-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
        for s in [self._udp, self._tcp, *self._conns]:
            if s:
                s.close()

    def __enter__(self) -> "DnsServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def server(self) -> str:
        """The address:port form a resolver setting takes."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    # -- serving -----------------------------------------------------------
    def _run(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self._udp, selectors.EVENT_READ, "udp")
        sel.register(self._tcp, selectors.EVENT_READ, "accept")
        buffers: dict[socket.socket, bytearray] = {}
        while not self._stop.is_set():
            for key, _ in sel.select(timeout=0.1):
                sock = key.fileobj
                if key.data == "udp":
                    self._serve_udp(sock)
                elif key.data == "accept":
                    try:
                        conn, _ = sock.accept()
                    except OSError:
                        continue
                    conn.setblocking(False)
                    self._conns.append(conn)
                    buffers[conn] = bytearray()
                    sel.register(conn, selectors.EVENT_READ, "tcp")
                else:
                    if not self._serve_tcp(sock, buffers[sock]):
                        sel.unregister(sock)
                        del buffers[sock]
                        self._conns.remove(sock)
                        sock.close()
        sel.close()

    def _serve_udp(self, sock: socket.socket) -> None:
        while True:
            try:
                msg, peer = sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            reply = self.answer(msg, tcp=False)
            if reply is not None:
                try:
                    sock.sendto(reply, peer)
                except OSError:
                    pass

    def _serve_tcp(self, sock: socket.socket, buf: bytearray) -> bool:
        try:
            data = sock.recv(65535)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            return False
        if not data:
            return False
        buf += data
        while len(buf) >= 2:
            (length,) = struct.unpack("!H", buf[:2])
            if len(buf) < 2 + length:
                break
            msg = bytes(buf[2:2 + length])
            del buf[:2 + length]
            reply = self.answer(msg, tcp=True)
            if reply is not None:
                try:
                    sock.setblocking(True)
                    sock.sendall(struct.pack("!H", len(reply)) + reply)
                    sock.setblocking(False)
                except OSError:
                    return False
        return True

    # -- answering ---------------------------------------------------------
    def answer(self, msg: bytes, tcp: bool) -> bytes | None:
        """The reply to one query message, or None to stay silent."""
        parsed = parse_query(msg)
        if parsed is None:
            return None
        qid, qflags, qname, qtype, question = parsed
        name = normalize(qname)
        with self._lock:
            self.queries.append((name, TYPE_NAMES.get(qtype, str(qtype)), "tcp" if tcp else "udp"))
            entry = self._lookup(name)
            if isinstance(entry, dict):
                entry = dict(entry)
        behaviour = None
        if entry is None:
            behaviour = "nxdomain"
        elif isinstance(entry, str):
            behaviour, entry = entry, {}
        else:
            b = entry.get("behaviour")
            behaviour = b.get(TYPE_NAMES.get(qtype, "")) if isinstance(b, dict) else b

        def header(rcode: int, ancount: int, tc: bool = False) -> bytes:
            flags = 0x8000 | 0x0400 | (qflags & 0x0100) | 0x0080 | rcode  # QR AA RD RA
            if tc:
                flags |= 0x0200
            return struct.pack("!HHHHHH", qid, flags, 1, ancount, 0, 0)

        if behaviour == "timeout":
            return None
        if behaviour == "servfail":
            return header(RCODE_SERVFAIL, 0) + question
        if behaviour == "refused":
            return header(RCODE_REFUSED, 0) + question
        if behaviour == "nxdomain":
            return header(RCODE_NXDOMAIN, 0) + question
        if behaviour == "malformed":
            # One answer announced; its owner and type are there, the rest is cut.
            return header(RCODE_NOERROR, 1) + question + b"\xc0\x0c" + struct.pack("!H", qtype)
        if behaviour == "truncate" and not tcp:
            return header(RCODE_NOERROR, 0, tc=True) + question

        records = self._records(name, qtype, depth=0)
        return header(RCODE_NOERROR, len(records)) + question + b"".join(records)

    def _lookup(self, name: str):
        """The zone entry for name: its own, else the closest wildcard."""
        entry = self.zone.get(name)
        labels = name.split(".")
        for i in range(1, len(labels)):
            if entry is not None:
                break
            entry = self.zone.get("*." + ".".join(labels[i:]))
        return entry

    def _records(self, name: str, qtype: int, depth: int) -> list[bytes]:
        with self._lock:
            entry = self._lookup(name)
        if not isinstance(entry, dict) or depth > 8:
            return []

        def rr(rtype: int, rdata: bytes) -> bytes:
            return encode_name(name) + struct.pack("!HHIH", rtype, 1, TTL, len(rdata)) + rdata

        if "cname" in entry and qtype != TYPE_CNAME:
            target = normalize(entry["cname"])
            return [rr(TYPE_CNAME, encode_name(target))] + self._records(target, qtype, depth + 1)
        out = []
        if qtype == TYPE_MX:
            for pref, host in entry.get("mx", []):
                out.append(rr(TYPE_MX, struct.pack("!H", int(pref)) + encode_name(host)))
        elif qtype == TYPE_A:
            for ip in entry.get("a", []):
                out.append(rr(TYPE_A, ipaddress.IPv4Address(ip).packed))
        elif qtype == TYPE_AAAA:
            for ip in entry.get("aaaa", []):
                out.append(rr(TYPE_AAAA, ipaddress.IPv6Address(ip).packed))
        elif qtype == TYPE_CNAME and "cname" in entry:
            out.append(rr(TYPE_CNAME, encode_name(entry["cname"])))
        return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Loopback DNS server for Yubin tests")
    ap.add_argument("--listen", default="127.0.0.1", help="loopback address to listen on")
    ap.add_argument("--port", type=int, default=0, help="port (0: any free one, printed)")
    ap.add_argument("--zone", required=True, help="zone as a JSON file (see the module doc)")
    args = ap.parse_args(argv)
    if not ipaddress.ip_address(args.listen).is_loopback:
        print("dns_server: --listen must be a loopback address", file=sys.stderr)
        return 2
    with open(args.zone, encoding="utf-8") as f:
        zone = json.load(f)
    try:
        server = DnsServer(zone, args.listen, args.port)
        server.start()
    except (ValueError, OSError) as e:
        print(f"dns_server: {e}", file=sys.stderr)
        return 1
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    print(f"ready {server.server}", flush=True)
    while not done.wait(1.0):
        pass
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
