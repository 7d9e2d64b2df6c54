// What a plugin's entry module imports inside a component: `exportGame` over the host's imports.
//   import { exportGame } from 'warden-sdk/component';
//   export const { init, onJoin, onLeave, onMessage, onTick, onTimer, snapshot, restore } = exportGame(MyGame);

import { kick, send } from 'warden:plugin/messaging@0.1.0';
import { nowMs, setTimer, tick } from 'warden:plugin/clock@0.1.0';
import { next } from 'warden:plugin/random@0.1.0';
import { loadSave, storeSave } from 'warden:plugin/saves@0.1.0';
import { featureEnabled, log, metric } from 'warden:plugin/telemetry@0.1.0';
import { exportGame as exportOver } from './export.js';

const host = { send, kick, nowMs, tick, setTimer, random: next, loadSave, storeSave, log, metric, featureEnabled };

/**
 * @param {import('./index.js').GameClass} GameClass
 * @returns {import('./export.js').Exports}
 */
export function exportGame(GameClass) {
  return exportOver(GameClass, host);
}
