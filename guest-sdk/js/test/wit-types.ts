// The SDK's types against the WIT's (types/wit, generated from wit/ by wit-types.mjs): `tsc -p .` fails
// if they disagree in either direction. Not a test node runs: a type check.
import type * as World from 'warden:plugin/game@0.1.0';
import type * as Types from 'warden:plugin/types@0.1.0';
import * as messaging from 'warden:plugin/messaging@0.1.0';
import * as clock from 'warden:plugin/clock@0.1.0';
import * as random from 'warden:plugin/random@0.1.0';
import * as saves from 'warden:plugin/saves@0.1.0';
import * as telemetry from 'warden:plugin/telemetry@0.1.0';
import type { Exports, Host } from '../src/export.js';
import type { LogLevel, Recipient, RoomInfo, SavePriority } from '../src/index.js';

/** `A` and `B` are the same type (each assignable to the other), else `never`. */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : never) : never;
const same = <A, B>(proof: Same<A, B>): Same<A, B> => proof;

// The records, variants and enums of the WIT's `types`, as the SDK spells them.
same<RoomInfo, Types.RoomInfo>(true);
same<Recipient, Types.Recipient>(true);
same<LogLevel, Types.LogLevel>(true);
same<SavePriority, Types.SavePriority>(true);

// What a plugin exports is the `game` world's exports, exactly: no export missing, none extra, each of
// the WIT's type.
same<Exports, typeof World>(true);

// The host the SDK calls is the WIT's imports, each of its type (component.js passes these).
const imports = {
  send: messaging.send,
  kick: messaging.kick,
  nowMs: clock.nowMs,
  tick: clock.tick,
  setTimer: clock.setTimer,
  random: random.next,
  loadSave: saves.loadSave,
  storeSave: saves.storeSave,
  log: telemetry.log,
  metric: telemetry.metric,
  featureEnabled: telemetry.featureEnabled,
};
same<Host, typeof imports>(true);
