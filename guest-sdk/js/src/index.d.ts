// The SDK's public types (hand-written; `tsc -p .` checks them against the WIT: test/wit-types.ts).
// 64-bit WIT values (seeds, ticks, random draws) are BigInt where the SDK passes them on as they are.

/** A player id. */
export type PlayerId = string;

/** Who a send goes to (the WIT's `recipient`). */
export type Recipient = { tag: 'player'; val: PlayerId } | { tag: 'all' } | { tag: 'all-except'; val: PlayerId };
export declare const Recipient: {
  to(player: PlayerId): Recipient;
  all(): Recipient;
  allExcept(player: PlayerId): Recipient;
};

/** A log line's level (the WIT's `log-level`). */
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error';
/** How urgently a save is written (the WIT's `save-priority`). */
export type SavePriority = 'normal' | 'critical';

/** The room a game runs in (the WIT's `room-info`). */
export interface RoomInfo {
  id: string;
  game: string;
  /** The room's seed: its random stream is a function of it. */
  seed: bigint;
  tickHz: number;
  maxPlayers: number;
}

/** An error whose message is the `err` string the host counts and hands the player. */
export declare class GameError extends Error {}

/** MessagePack, as the host and the clients speak it. */
export declare function encode(value: unknown): Uint8Array;
export declare function decode(bytes: Uint8Array): unknown;

/** The plugin's configuration from `warden.toml` (a MessagePack map). */
export declare class Config {
  constructor(bytes: Uint8Array);
  /** The configuration over `defaults`. */
  parse<T extends object>(defaults?: T): T;
}

/** What a hook may do. */
export declare class Ctx {
  send(to: PlayerId | Recipient, msg: unknown): void;
  broadcast(msg: unknown): void;
  sendRaw(to: PlayerId | Recipient, payload: Uint8Array): void;
  kick(player: PlayerId, reason: string): void;
  /** Game time in milliseconds. */
  nowMs(): number;
  /** The current tick's number. */
  tick(): number;
  setTimer(afterMs: number | bigint, tag: string): void;
  /** 64 bits from the room's deterministic random stream. */
  random(): bigint;
  /** A uniformly distributed whole number in 0..n. */
  randomBelow(n: number): number;
  loadSave<T = unknown>(player: PlayerId): T | undefined;
  storeSave(player: PlayerId, save: unknown, priority?: SavePriority): void;
  featureEnabled(name: string): boolean;
  metric(name: string, value: number | bigint): void;
  log(level: LogLevel, message: unknown): void;
}

/** A game: subclass it and override the hooks you need (they default to doing nothing). Its own
 * enumerable fields are its state: `snapshot` encodes them, `restore` assigns them to a new instance. */
export declare class Game {
  /** The `type`s of the object messages it takes (null: any message). */
  static inbound: string[] | null;
  init(ctx: Ctx, room: RoomInfo, config: Config): void;
  onJoin(ctx: Ctx, player: PlayerId): void;
  onLeave(ctx: Ctx, player: PlayerId): void;
  onMessage(ctx: Ctx, player: PlayerId, msg: any): void;
  onTick(ctx: Ctx, tick: number, dtMs: number): void;
  onTimer(ctx: Ctx, tag: string): void;
  snapshot(): Uint8Array;
  static restore(bytes: Uint8Array): Game;
  /** State of another version `fromVersion`, as this version's (default: the same fields). */
  static migrate(fromVersion: string, bytes: Uint8Array): Game;
}

/** A class of game. */
export type GameClass = typeof Game;

/** Runs a game's hooks with its state across snapshot and restore (what the exports and the harness
 * drive). */
export declare class Driver {
  constructor(GameClass: GameClass, version: string);
  readonly game: Game;
}

export declare const SDK_VERSION: string;
