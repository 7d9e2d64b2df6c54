// The plugin's view of the host: Ctx (typed) over a host (raw bytes): the component's imports, or the
// harness's in-memory host.

import { encode, decode, GameError } from './game.js';

const U64 = 1n << 64n;

/** Who a send goes to. */
export const Recipient = {
  to: (player) => ({ tag: 'player', val: player }),
  all: () => ({ tag: 'all' }),
  allExcept: (player) => ({ tag: 'all-except', val: player }),
};

/** What a hook may do: talk to players, read the game clock, draw from the room's random stream, set
 * timers, load and store saves, kick, read feature switches, report metrics, log. */
export class Ctx {
  constructor(host) {
    this.host = host;
  }

  /** Sends `msg` (any MessagePack value) to a player id or a Recipient. */
  send(to, msg) {
    let payload;
    try {
      payload = encode(msg);
    } catch (e) {
      this.host.log('error', `failed to encode an outbound message: ${e.message}`);
      return;
    }
    this.host.send(typeof to === 'string' ? Recipient.to(to) : to, payload);
  }

  broadcast(msg) {
    this.send(Recipient.all(), msg);
  }

  sendRaw(to, payload) {
    this.host.send(typeof to === 'string' ? Recipient.to(to) : to, payload);
  }

  kick(player, reason) {
    this.host.kick(player, reason);
  }

  /** Game time in milliseconds (a Number). */
  nowMs() {
    return Number(this.host.nowMs());
  }

  /** The current tick's number (a Number). */
  tick() {
    return Number(this.host.tick());
  }

  setTimer(afterMs, tag) {
    this.host.setTimer(BigInt(afterMs), tag);
  }

  /** 64 bits from the room's deterministic random stream, as a BigInt. */
  random() {
    return BigInt.asUintN(64, BigInt(this.host.random()));
  }

  /** A uniformly distributed whole number in 0..n (a Number): the numbers the Rust SDK's gives. */
  randomBelow(n) {
    if (!(n >= 1)) throw new RangeError(`randomBelow(${n}): the range is empty; pass n >= 1`);
    const bn = BigInt(n);
    const max = U64 - 1n;
    const zone = max - (max % bn);
    for (;;) {
      const r = this.random();
      if (r < zone) return Number(r % bn);
    }
  }

  /** The newest save of `player`, decoded; undefined if there is none. */
  loadSave(player) {
    const bytes = this.host.loadSave(player);
    if (bytes === undefined || bytes === null) return undefined;
    try {
      return decode(bytes);
    } catch (e) {
      throw new GameError(`the save of ${player} does not decode: ${e.message}`);
    }
  }

  /** Stores `save` as the newest save of `player` (`priority`: 'normal' or 'critical'). */
  storeSave(player, save, priority = 'normal') {
    this.host.storeSave(player, encode(save), priority);
  }

  featureEnabled(name) {
    return this.host.featureEnabled(name);
  }

  metric(name, value) {
    this.host.metric(name, Number(value));
  }

  /** Writes a log line at 'trace', 'debug', 'info', 'warn' or 'error'. */
  log(level, message) {
    this.host.log(level, String(message));
  }
}
