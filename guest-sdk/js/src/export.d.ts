// The component's side of the SDK: what a game becomes over the host's imports.
import type { GameClass, LogLevel, PlayerId, Recipient, RoomInfo, SavePriority } from './index.js';

/** The host as the SDK calls it: the `warden:plugin/*` imports (component.js), or the harness's. Each
 * member has the WIT function's type (test/wit-types.ts checks that they agree). */
export interface Host {
  send: (to: Recipient, payload: Uint8Array) => void;
  kick: (player: PlayerId, reason: string) => void;
  nowMs: () => bigint;
  tick: () => bigint;
  setTimer: (afterMs: bigint, tag: string) => void;
  random: () => bigint;
  loadSave: (player: PlayerId) => Uint8Array | undefined;
  storeSave: (player: PlayerId, data: Uint8Array, priority: SavePriority) => void;
  log: (level: LogLevel, message: string) => void;
  metric: (name: string, value: number) => void;
  featureEnabled: (name: string) => boolean;
}

/** What a plugin's entry module exports: the `game` world's exports, exactly (checked against the WIT).
 * A hook that fails throws the `err` string. */
export interface Exports {
  init: (room: RoomInfo, config: Uint8Array) => void;
  onJoin: (player: PlayerId) => void;
  onLeave: (player: PlayerId) => void;
  onMessage: (player: PlayerId, payload: Uint8Array) => void;
  onTick: (tick: bigint, dtMs: number) => void;
  onTimer: (tag: string) => void;
  snapshot: () => Uint8Array;
  restore: (state: Uint8Array, fromVersion: string) => void;
}

export declare function exportGame(GameClass: GameClass, host: Host): Exports;
