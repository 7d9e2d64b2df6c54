// Run a game natively, as the host would, under `node --test`: no wasm, the same hooks in the same order,
// the same random stream (SplitMix64 over seed and draw count, as the host and the Rust SDK's harness).

import { Ctx } from './ctx.js';
import { Driver, decode, encode } from './game.js';

const MASK = (1n << 64n) - 1n;

/** The room stream's number `draw` (from 0) for `seed`, as a BigInt: the host's function. */
export function randomAt(seed, draw) {
  let z = (BigInt(seed) + (BigInt(draw) + 1n) * 0x9e3779b97f4a7c15n) & MASK;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK;
  return z ^ (z >> 31n);
}

/** An in-memory host: what the game sent, kicked, saved, logged, and its clock and random stream. */
export class TestHost {
  constructor(seed, features) {
    Object.assign(this, { sent: [], kicked: [], timers: [], saves: new Map(), logs: [], metrics: new Map() });
    Object.assign(this, { features: new Set(features), tickNo: 0, now: 0, seed: BigInt(seed), draws: 0n });
  }
  send(to, payload) { this.sent.push({ to, payload: Uint8Array.from(payload) }); }
  kick(player, reason) { this.kicked.push([player, reason]); }
  nowMs() { return BigInt(this.now); }
  tick() { return BigInt(this.tickNo); }
  setTimer(afterMs, tag) { this.timers.push([this.now + Number(afterMs), tag]); }
  random() { return randomAt(this.seed, this.draws++); }
  loadSave(player) { return this.saves.get(player)?.[0]; }
  storeSave(player, data, priority) { this.saves.set(player, [Uint8Array.from(data), priority]); }
  log(level, message) { this.logs.push([level, message]); }
  metric(name, value) { this.metrics.set(name, value); }
  featureEnabled(name) { return this.features.has(name); }
}

/** A room running one game natively: `new Harness(Arena, { config: {...}, features: ['x'] })`. */
export class Harness {
  constructor(GameClass, { config, features = [], room = {}, version = '0.0.0-test' } = {}) {
    this.room = { id: 'test-room', game: 'test', seed: 42n, tickHz: 20, maxPlayers: 16, ...room };
    this.host = new TestHost(this.room.seed, features);
    this.driver = new Driver(GameClass, version);
    this.members = [];
    this.log = [];
    this.mailboxes = new Map();
    this.driver.init(new Ctx(this.host), this.room, config === undefined ? new Uint8Array() : encode(config));
  }

  get game() { return this.driver.game; }

  run(call) {
    try {
      call(new Ctx(this.host));
    } finally {
      this.deliver();
    }
  }

  join(player) {
    this.members.push(player);
    this.run((ctx) => this.driver.onJoin(ctx, player));
  }

  leave(player) {
    this.members = this.members.filter((m) => m !== player);
    this.run((ctx) => this.driver.onLeave(ctx, player));
  }

  /** `player` sends `msg`, encoded as MessagePack the way a client would. */
  message(player, msg) {
    this.run((ctx) => this.driver.onMessage(ctx, player, encode(msg)));
  }

  /** One tick: the clock moves one step, due timers fire in the order they were due (then set), then onTick. */
  tick() {
    const hz = Math.max(this.room.tickHz, 1);
    this.host.tickNo += 1;
    this.host.now = Math.floor((this.host.tickNo * 1000) / hz);
    const due = this.host.timers.filter((t) => t[0] <= this.host.now).sort((a, b) => a[0] - b[0]);
    this.host.timers = this.host.timers.filter((t) => t[0] > this.host.now);
    this.run((ctx) => {
      for (const [, tag] of due) this.driver.onTimer(ctx, tag);
      this.driver.onTick(ctx, this.host.tickNo, Math.floor(1000 / hz));
    });
  }

  ticks(n) {
    for (let i = 0; i < n; i++) this.tick();
  }

  deliver() {
    for (const sent of this.host.sent) {
      for (const member of this.members) {
        const { tag, val } = sent.to;
        if (tag === 'all' || (tag === 'player' && val === member) || (tag === 'all-except' && val !== member)) {
          if (!this.mailboxes.has(member)) this.mailboxes.set(member, []);
          this.mailboxes.get(member).push(sent.payload);
        }
      }
      this.log.push(sent);
    }
    this.host.sent = [];
  }

  /** Every send so far not taken yet, as the game addressed it. */
  takeSent() {
    const sent = this.log;
    this.log = [];
    return sent;
  }

  /** The messages `player` received and the test has not read yet, decoded. */
  received(player) {
    const got = (this.mailboxes.get(player) ?? []).map((p) => decode(p));
    this.mailboxes.delete(player);
    return got;
  }

  snapshot() { return this.driver.snapshot(); }

  /** A new room restored from this one's snapshot (same version), with the same host state: what a hot
   * swap to the same code does. */
  roundTrip() {
    const other = Object.create(Harness.prototype);
    Object.assign(other, this, { members: [...this.members], log: [], mailboxes: new Map() });
    other.host = Object.assign(new TestHost(0n, []), this.host, {
      sent: [], kicked: [], logs: [], timers: this.host.timers.map((t) => [...t]), saves: new Map(this.host.saves),
      features: new Set(this.host.features), metrics: new Map(this.host.metrics),
    });
    other.driver = new Driver(this.driver.GameClass, this.driver.version);
    other.driver.restore(this.snapshot(), this.driver.version);
    return other;
  }
}
