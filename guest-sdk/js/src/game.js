// The Game base class, messages and the MessagePack they travel as.

import { decode as mpDecode, encode as mpEncode } from '@msgpack/msgpack';

/** A handled gameplay error: the host counts it, the player gets its message, and the room goes on. */
export class GameError extends Error {}

/** MessagePack bytes of a value (objects as maps: a message is `{ type: 'moved', ... }`). */
export function encode(value) {
  return mpEncode(value, { useBigInt64: true, ignoreUndefined: true });
}

/** Decodes MessagePack bytes (integers past 2^53 come back as BigInt). */
export function decode(bytes) {
  try {
    return mpDecode(bytes);
  } catch (e) {
    throw new GameError(`not MessagePack: ${e.message}`);
  }
}

/** The plugin's configuration from warden.toml (its `[plugins.NAME.config]` section). */
export class Config {
  constructor(bytes) {
    this.bytes = bytes;
  }

  /** The configuration as an object, over `defaults` (what is not set keeps its default). */
  parse(defaults = {}) {
    if (!this.bytes || this.bytes.length === 0) return { ...defaults };
    let value;
    try {
      value = decode(this.bytes);
    } catch (e) {
      throw new GameError(`bad plugin configuration: ${e.message} (check this plugin's section in warden.toml)`);
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      throw new GameError("bad plugin configuration: not a map (check this plugin's section in warden.toml)");
    }
    return { ...defaults, ...value };
  }
}

/**
 * A game: one instance per room. Override the hooks you need; each gets a Ctx. Messages arrive decoded
 * (a client's `{ type: 'move', ... }` is an object); list the `type`s you take in `static inbound` and
 * any other is refused with an error (the room goes on).
 *
 * The state is the instance's own properties: the default `snapshot` encodes them as a MessagePack map
 * and `restore` makes a new instance (the constructor without arguments) and assigns them back. Override
 * both to keep another shape (arena-js keeps the Rust arena's), and `migrate` for a change of shape.
 */
export class Game {
  static inbound = null;

  init(ctx, room, config) {}
  onJoin(ctx, player) {}
  onLeave(ctx, player) {}
  onMessage(ctx, player, msg) {}
  onTick(ctx, tick, dtMs) {}
  onTimer(ctx, tag) {}

  /** The whole state as bytes (must not change it). */
  snapshot() {
    return encode({ ...this });
  }

  /** A new instance holding a state that `snapshot` of this same version returned. */
  static restore(bytes) {
    return Object.assign(new this(), decode(bytes));
  }

  /** A new instance from a snapshot of another version; by default the same as `restore`. */
  static migrate(fromVersion, bytes) {
    try {
      return this.restore(bytes);
    } catch (e) {
      throw new GameError(`cannot restore a snapshot of version ${fromVersion}: ${e.message} (override Game.migrate for this change)`);
    }
  }
}

const NOT_STARTED = 'the game has no state yet: the host must call init or restore first';

/** From raw contract calls to a Game: the one path used by the component's exports and by the harness. */
export class Driver {
  constructor(GameClass, version) {
    this.GameClass = GameClass;
    this.version = version;
    this.game = null;
  }

  get started() {
    if (!this.game) throw new GameError(NOT_STARTED);
    return this.game;
  }

  init(ctx, room, config) {
    const game = new this.GameClass();
    game.init(ctx, room, new Config(config));
    this.game = game;
  }

  onJoin(ctx, player) { this.started.onJoin(ctx, player); }
  onLeave(ctx, player) { this.started.onLeave(ctx, player); }
  onTick(ctx, tick, dtMs) { this.started.onTick(ctx, tick, dtMs); }
  onTimer(ctx, tag) { this.started.onTimer(ctx, tag); }

  onMessage(ctx, player, payload) {
    const game = this.started;
    let msg;
    try {
      msg = decode(payload);
    } catch (e) {
      throw new GameError(`message from ${player} is not one this game understands: ${e.message}`);
    }
    const inbound = this.GameClass.inbound;
    if (inbound && !(msg && typeof msg === 'object' && inbound.includes(msg.type))) {
      throw new GameError(`message from ${player} is not one this game understands: type ${JSON.stringify(msg?.type)} is not one of ${inbound.join(', ')}`);
    }
    game.onMessage(ctx, player, msg);
  }

  snapshot() {
    return this.started.snapshot();
  }

  restore(bytes, fromVersion) {
    this.game = fromVersion === this.version ? this.GameClass.restore(bytes) : this.GameClass.migrate(fromVersion, bytes);
  }
}
