#!/usr/bin/env python3
"""Readiness probes for the test services, using only the standard library.

  probe.py kafka HOST:PORT [N]  sends a Kafka Metadata request (v4) and succeeds when a broker list comes back
                             (with at least N brokers, default 1).
  probe.py cql HOST:PORT [N]  opens a CQL v4 session and succeeds when `SELECT release_version FROM system.local`
                             returns rows and the node knows at least N nodes in its ring, itself included (rows of
                             `system.peers` plus one; default 1): a cluster is formed only when every node sees the
                             others, or a keyspace created on one node is missing on another.
  probe.py registry HOST:PORT  asks the schema registry's Confluent API for its compatibility level and succeeds
                             when it answers with one.

Exit status 0 when the server answered, 1 otherwise (with the reason on stderr).
"""
import socket
import struct
import sys


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed")
        buf += chunk
    return buf


def kafka(host, port, want=1):
    client = b"mora-probe"
    # Request header v1: api_key=3 (Metadata), api_version=4, correlation_id, client_id.
    header = struct.pack(">hhih", 3, 4, 7, len(client)) + client
    # Metadata v4 body: topics = null (all topics), allow_auto_topic_creation = false.
    body = struct.pack(">i", -1) + b"\x00"
    req = header + body
    with socket.create_connection((host, port), timeout=5) as s:
        s.sendall(struct.pack(">i", len(req)) + req)
        size = struct.unpack(">i", recv_exact(s, 4))[0]
        resp = recv_exact(s, size)
    correlation, _throttle, brokers = struct.unpack(">iii", resp[:12])
    if correlation != 7 or brokers < want:
        raise RuntimeError(f"unexpected metadata answer: correlation {correlation}, brokers {brokers}")
    return f"metadata answered, {brokers} broker(s)"


def cql_frame(opcode, body, stream=1):
    return struct.pack(">BBhBi", 0x04, 0, stream, opcode, len(body)) + body


def cql_read(s):
    version, _flags, _stream, opcode, length = struct.unpack(">BBhBi", recv_exact(s, 9))
    return opcode, recv_exact(s, length)


def cql_string(s):
    b = s.encode()
    return struct.pack(">H", len(b)) + b


def cql_rows_count(body):
    """The row count of a Rows result body (after its kind), skipping the metadata."""
    pos = 0

    def take(fmt):
        nonlocal pos
        vals = struct.unpack_from(fmt, body, pos)
        pos += struct.calcsize(fmt)
        return vals

    def skip_string():
        nonlocal pos
        (n,) = take(">H")
        pos += n

    def skip_type():
        (kind,) = take(">H")
        if kind == 0x0000:  # custom: class name
            skip_string()
        elif kind in (0x0020, 0x0022):  # list, set
            skip_type()
        elif kind == 0x0021:  # map
            skip_type()
            skip_type()

    flags, columns = take(">ii")
    if flags & 0x0002:  # has more pages: paging state
        (n,) = take(">i")
        pos += max(n, 0)
    if not flags & 0x0004:  # metadata present
        if flags & 0x0001:  # global table spec
            skip_string()
            skip_string()
        for _ in range(columns):
            if not flags & 0x0001:
                skip_string()
                skip_string()
            skip_string()
            skip_type()
    (rows,) = take(">i")
    return rows


def cql_select_rows(s, text, stream):
    query = text.encode()
    # QUERY: long string, consistency ONE (0x0001), flags 0.
    s.sendall(cql_frame(0x07, struct.pack(">i", len(query)) + query + struct.pack(">HB", 1, 0), stream=stream))
    opcode, body = cql_read(s)
    if opcode != 0x08:  # RESULT
        raise RuntimeError(f"QUERY answered with opcode {opcode:#x}: {body[:200]!r}")
    kind = struct.unpack(">i", body[:4])[0]
    if kind != 2:  # Rows
        raise RuntimeError(f"QUERY result kind {kind}, expected rows")
    return cql_rows_count(body[4:])


def cql(host, port, want=1):
    with socket.create_connection((host, port), timeout=5) as s:
        startup = struct.pack(">H", 1) + cql_string("CQL_VERSION") + cql_string("3.0.0")
        s.sendall(cql_frame(0x01, startup))
        opcode, body = cql_read(s)
        if opcode != 0x02:  # READY
            raise RuntimeError(f"STARTUP answered with opcode {opcode:#x}: {body[:200]!r}")
        if cql_select_rows(s, "SELECT release_version FROM system.local", 2) < 1:
            raise RuntimeError("system.local returned no row")
        nodes = 1 + cql_select_rows(s, "SELECT peer FROM system.peers", 3) if want > 1 else 1
    if nodes < want:
        raise RuntimeError(f"the node knows {nodes} node(s) in its ring, expected {want}")
    return f"CQL query answered, {nodes} node(s) in the ring" if want > 1 else "CQL query answered"


def registry(host, port):
    import json
    import urllib.request

    url = f"http://{host}:{port}/apis/ccompat/v7/config"
    with urllib.request.urlopen(url, timeout=5) as r:
        level = json.load(r).get("compatibilityLevel")
    if not level:
        raise RuntimeError(f"no compatibility level from {url}")
    return f"compatibility level {level}"


def main():
    if len(sys.argv) not in (3, 4) or sys.argv[1] not in ("kafka", "cql", "registry"):
        print(__doc__, file=sys.stderr)
        return 2
    host, _, port = sys.argv[2].rpartition(":")
    extra = [int(sys.argv[3])] if len(sys.argv) == 4 and sys.argv[1] in ("kafka", "cql") else []
    try:
        msg = {"kafka": kafka, "cql": cql, "registry": registry}[sys.argv[1]](host, int(port), *extra)
    except Exception as e:  # any failure means "not ready yet"
        print(f"{sys.argv[1]} {sys.argv[2]} not ready: {e}", file=sys.stderr)
        return 1
    print(f"{sys.argv[1]} {sys.argv[2]}: {msg}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
