// The reference JavaScript client of the Warden protocol (docs/protocol.md): WebSocket, binary frames,
// MessagePack envelopes. One file, no dependencies: copy it into a game's own web client.
//
//   const c = await WardenClient.connect("ws://127.0.0.1:7350/ws", { token });   // hello -> welcome
//   const joined = await c.join("arena", "r1");                                  // joined envelope
//                                   // (in a fleet it follows a `redirect` to the host that runs the room)
//   c.onMessage = (data) => ...;     // the plugin's messages, decoded
//   c.send({ type: "move", dir: "up", seq: 1 });
//
// 64-bit integers (a room's `seed`, a `ping` nonce, plugin fields) arrive as BigInt when they do not fit
// in a double exactly (above 2^53), as Number otherwise; send a BigInt to encode a 64-bit integer.
"use strict";

const MsgPack = (() => {
  const te = new TextEncoder(), td = new TextDecoder();

  function encode(value) {
    const out = [];
    const u8 = (n) => out.push(n & 0xff);
    const be = (n, bytes) => { for (let i = bytes - 1; i >= 0; i--) out.push(Number((BigInt(n) >> BigInt(8 * i)) & 0xffn)); };
    const write = (v) => {
      if (v === null || v === undefined) u8(0xc0);
      else if (v === false) u8(0xc2);
      else if (v === true) u8(0xc3);
      else if (typeof v === "bigint") {
        if (v >= 0n) { u8(0xcf); be(v, 8); } else { u8(0xd3); be(BigInt.asUintN(64, v), 8); }
      } else if (typeof v === "number") {
        if (Number.isInteger(v) && Number.isSafeInteger(v)) {
          if (v >= 0 && v < 128) u8(v);
          else if (v < 0 && v >= -32) u8(v & 0xff);
          else if (v >= 0) { u8(0xcf); be(v, 8); }
          else { u8(0xd3); be(BigInt.asUintN(64, BigInt(v)), 8); }
        } else {
          const b = new DataView(new ArrayBuffer(8)); b.setFloat64(0, v);
          u8(0xcb); for (let i = 0; i < 8; i++) u8(b.getUint8(i));
        }
      } else if (typeof v === "string") {
        const s = te.encode(v);
        if (s.length < 32) u8(0xa0 | s.length); else if (s.length < 256) { u8(0xd9); u8(s.length); } else { u8(0xdb); be(s.length, 4); }
        out.push(...s);
      } else if (v instanceof Uint8Array) {
        if (v.length < 256) { u8(0xc4); u8(v.length); } else { u8(0xc6); be(v.length, 4); }
        out.push(...v);
      } else if (Array.isArray(v)) {
        if (v.length < 16) u8(0x90 | v.length); else { u8(0xdd); be(v.length, 4); }
        v.forEach(write);
      } else if (typeof v === "object") {
        const keys = Object.keys(v).filter((k) => v[k] !== undefined);
        if (keys.length < 16) u8(0x80 | keys.length); else { u8(0xdf); be(keys.length, 4); }
        for (const k of keys) { write(k); write(v[k]); }
      } else throw new TypeError("cannot encode " + typeof v);
    };
    write(value);
    return new Uint8Array(out);
  }

  function decode(bytes) {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    let at = 0;
    const big = (unsigned) => {
      const v = unsigned ? view.getBigUint64(at) : view.getBigInt64(at); at += 8;
      return (v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER)) ? Number(v) : v;
    };
    const str = (n) => { const s = td.decode(bytes.subarray(at, at + n)); at += n; return s; };
    const bin = (n) => { const b = bytes.slice(at, at + n); at += n; return b; };
    const arr = (n) => { const a = []; for (let i = 0; i < n; i++) a.push(read()); return a; };
    const map = (n) => { const o = {}; for (let i = 0; i < n; i++) { const k = read(); o[k] = read(); } return o; };
    const read = () => {
      const t = view.getUint8(at++);
      if (t < 0x80) return t;
      if (t < 0x90) return map(t & 0x0f);
      if (t < 0xa0) return arr(t & 0x0f);
      if (t < 0xc0) return str(t & 0x1f);
      if (t >= 0xe0) return t - 256;
      let v;
      switch (t) {
        case 0xc0: return null;
        case 0xc2: return false;
        case 0xc3: return true;
        case 0xc4: v = view.getUint8(at); at += 1; return bin(v);
        case 0xc5: v = view.getUint16(at); at += 2; return bin(v);
        case 0xc6: v = view.getUint32(at); at += 4; return bin(v);
        case 0xca: v = view.getFloat32(at); at += 4; return v;
        case 0xcb: v = view.getFloat64(at); at += 8; return v;
        case 0xcc: return view.getUint8(at++);
        case 0xcd: v = view.getUint16(at); at += 2; return v;
        case 0xce: v = view.getUint32(at); at += 4; return v;
        case 0xcf: return big(true);
        case 0xd0: return view.getInt8(at++);
        case 0xd1: v = view.getInt16(at); at += 2; return v;
        case 0xd2: v = view.getInt32(at); at += 4; return v;
        case 0xd3: return big(false);
        case 0xd9: v = view.getUint8(at); at += 1; return str(v);
        case 0xda: v = view.getUint16(at); at += 2; return str(v);
        case 0xdb: v = view.getUint32(at); at += 4; return str(v);
        case 0xdc: v = view.getUint16(at); at += 2; return arr(v);
        case 0xdd: v = view.getUint32(at); at += 4; return arr(v);
        case 0xde: v = view.getUint16(at); at += 2; return map(v);
        case 0xdf: v = view.getUint32(at); at += 4; return map(v);
        default: throw new Error("MessagePack type 0x" + t.toString(16) + " is not used by the protocol");
      }
    };
    return read();
  }

  return { encode, decode };
})();

class WardenClient {
  constructor(ws) {
    this.onMessage = () => {};
    this.onKicked = () => {};
    this.onError = () => {};
    this.onClose = () => {};
    this.onRedirect = () => {};
    this.waiting = [];
    this.attach(ws);
  }

  attach(ws) {
    this.ws = ws;
    ws.binaryType = "arraybuffer";
    ws.onmessage = (ev) => this.receive(MsgPack.decode(new Uint8Array(ev.data)));
    ws.onclose = (ev) => { this.waiting.forEach((w) => w.reject(new Error("closed: " + ev.reason))); this.onClose(ev.reason); };
  }

  /** Connects and says hello (with a player token, or as a dev-mode guest); resolves to the client. */
  static connect(url, { token } = {}) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      ws.onerror = () => reject(new Error("cannot connect to " + url));
      ws.onopen = async () => {
        const c = new WardenClient(ws);
        try {
          c.welcome = await c.request({ type: "hello", token }, "welcome");
          c.player = c.welcome.player;
          resolve(c);
        } catch (e) { reject(e); }
      };
    });
  }

  /**
   * Joins room `room` of `game`; resolves to the `joined` envelope (its `seed` exact, as a BigInt if needed).
   * In a fleet the room may run on another host: the server answers `redirect`, and the client moves there
   * (a new connection, `hello` with the redirect's seat token) and joins the room on it.
   */
  async join(game, room) {
    for (let hops = 0; hops < 4; hops++) {
      const env = await this.request({ type: "join", game, room }, ["joined", "redirect"]);
      if (env.type === "joined") return env;
      this.onRedirect(env);
      const next = await WardenClient.connect(env.address, { token: env.seat });
      const old = this.ws;
      old.onclose = null;
      old.close();
      this.welcome = next.welcome;
      this.attach(next.ws);
    }
    throw new Error(`room ${room} of ${game}: redirected more than three times`);
  }

  /** Sends a game message (any JSON-like value; BigInt for 64-bit integers). */
  send(data) { this.raw({ type: "msg", data: MsgPack.encode(data) }); }

  leave() { this.raw({ type: "leave" }); }

  raw(envelope) { this.ws.send(MsgPack.encode(envelope)); }

  request(envelope, answer) {
    return new Promise((resolve, reject) => {
      this.waiting.push({ answer, resolve, reject });
      this.raw(envelope);
    });
  }

  receive(env) {
    const w = this.waiting[0];
    if (w && [].concat(w.answer).includes(env.type)) { this.waiting.shift(); return w.resolve(env); }
    if (w && env.type === "error") { this.waiting.shift(); this.onError(env); return w.reject(new Error(`${env.code}: ${env.message}`)); }
    switch (env.type) {
      case "msg": return this.onMessage(MsgPack.decode(env.data));
      case "kicked": return this.onKicked(env.reason);
      case "error": return this.onError(env);
      default: return undefined;
    }
  }
}

if (typeof module !== "undefined") module.exports = { WardenClient, MsgPack };
