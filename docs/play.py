#!/usr/bin/env python3
"""Play a Warden game from a terminal: a one-file WebSocket client (Python 3 standard library only).

    python3 docs/play.py --url ws://127.0.0.1:7350/ws --game hello --room r1
    python3 docs/play.py --url ws://127.0.0.1:7350/ws --game arena --room lobby --send '{"type":"move","dir":"up","seq":1}'

Each line you type is sent as a game message: valid JSON goes as that JSON value, anything else as a JSON
string (which is what `hello` wants). Every envelope the server sends is printed as one JSON line.
`--send MSG` (repeatable) sends messages without a terminal, prints what comes back for `--wait` seconds
(or until `--count` game messages arrived), then leaves. `--token` authenticates (mint one with `warden token --player ID`); without it the server
admits a guest only in `--dev` mode. The envelopes are in docs/protocol.md, the games' messages in
docs/games.md.
"""

import argparse
import base64
import json
import os
import select
import socket
import struct
import sys
import time
import urllib.parse


class WebSocket:
    """The client side of RFC 6455, text frames only, enough for Warden's JSON envelopes."""

    def __init__(self, url):
        u = urllib.parse.urlparse(url)
        if u.scheme != "ws":
            sys.exit(f"play.py: {url} is not a ws:// URL (this client speaks plain WebSocket)")
        self.sock = socket.create_connection((u.hostname, u.port or 80), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        path = u.path or "/"
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {u.hostname}:{u.port or 80}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        self.sock.sendall(request.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                sys.exit("play.py: the server closed the connection during the WebSocket handshake")
            head += chunk
        head, self.buf = head.split(b"\r\n\r\n", 1)
        status = head.split(b"\r\n", 1)[0].decode(errors="replace")
        if " 101 " not in status + " ":
            sys.exit(f"play.py: the server refused the WebSocket upgrade: {status}")
        self.sock.settimeout(None)

    def send_frame(self, opcode, payload):
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 1 << 16:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def send(self, value):
        self.send_frame(0x1, json.dumps(value).encode())

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv(self):
        """The next text message as a JSON value, or None when the server closed (after its close frame)."""
        while True:
            b0, b1 = self._read(2)
            opcode, n = b0 & 0x0F, b1 & 0x7F
            if n == 126:
                (n,) = struct.unpack("!H", self._read(2))
            elif n == 127:
                (n,) = struct.unpack("!Q", self._read(8))
            payload = self._read(n)
            if opcode == 0x1:
                return json.loads(payload)
            if opcode == 0x9:  # ping
                self.send_frame(0xA, payload)
            elif opcode == 0x8:  # close: answer it, report the reason
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                print(json.dumps({"closed": code, "reason": payload[2:].decode(errors="replace")}), flush=True)
                try:
                    self.send_frame(0x8, payload[:2])
                except OSError:
                    pass
                return None

    def pending(self, timeout):
        return bool(self.buf) or bool(select.select([self.sock], [], [], timeout)[0])


def message(line):
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        return line


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", default="ws://127.0.0.1:7350/ws", help="the server's WebSocket URL")
    p.add_argument("--game", required=True, help="the game (plugin) name, e.g. hello, chat, arena")
    p.add_argument("--room", default="lobby", help="the room id")
    p.add_argument("--token", help="a player token from `warden token --player ID`")
    p.add_argument("--send", action="append", default=[], help="send this message and leave (repeatable)")
    p.add_argument("--wait", type=float, default=2.0, help="with --send: seconds to print answers for")
    p.add_argument("--count", type=int, help="with --send: leave as soon as this many game messages arrived")
    args = p.parse_args()

    ws = WebSocket(args.url)
    ws.send({"type": "hello", **({"token": args.token} if args.token else {})})
    ws.send({"type": "join", "game": args.game, "room": args.room})
    while True:
        env = ws.recv()
        if env is None:
            return 1
        print(json.dumps(env), flush=True)
        if env.get("type") == "joined":
            break
        if env.get("type") == "error":  # the hello or the join was refused: the message says why
            return 1

    if args.send:
        for line in args.send:
            ws.send({"type": "msg", "data": message(line)})
        deadline, got = time.monotonic() + args.wait, 0
        while time.monotonic() < deadline and (args.count is None or got < args.count):
            if ws.pending(max(0.0, deadline - time.monotonic())):
                env = ws.recv()
                if env is None:
                    return 1
                print(json.dumps(env), flush=True)
                got += env.get("type") == "msg"
        ws.send({"type": "leave"})
        return 0

    print("# type a message per line; Ctrl-D leaves", file=sys.stderr)
    while True:
        ready = select.select([sys.stdin, ws.sock], [], [])[0] if not ws.buf else [ws.sock]
        if ws.sock in ready:
            env = ws.recv()
            if env is None:
                return 1
            print(json.dumps(env), flush=True)
        if sys.stdin in ready:
            line = sys.stdin.readline()
            if not line:
                ws.send({"type": "leave"})
                return 0
            if line.strip():
                ws.send({"type": "msg", "data": message(line.strip())})


if __name__ == "__main__":
    sys.exit(main())
