// The component's side: the exports componentize-js makes of a Game, over a host (`component.js` passes
// the `warden:plugin/*` imports; the native harness does not load this file).

import { Ctx } from './ctx.js';
import { Driver, GameError } from './game.js';

/** The exports for `GameClass`: each runs the game through a Driver and turns any exception into the
 * `err` string the host counts and hands the player (a GameError's message; anything else as its name and
 * message, its stack going to the server's log, never to the player). `console` goes to the log too. */
export function exportGame(GameClass, host) {
  const ctx = new Ctx(host);
  // The build defines the plugin's version (its package.json's); outside a build there is none.
  const version = typeof __WARDEN_PLUGIN_VERSION__ !== 'undefined' ? __WARDEN_PLUGIN_VERSION__ : '0.0.0-dev';
  const driver = new Driver(GameClass, version);
  const line = (args) => args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a, (_, v) => (typeof v === 'bigint' ? v.toString() : v)))).join(' ');
  for (const [name, level] of [['log', 'info'], ['info', 'info'], ['debug', 'debug'], ['warn', 'warn'], ['error', 'error']]) {
    globalThis.console[name] = (...args) => host.log(level, line(args));
  }
  const run = (call) => {
    try {
      return call();
    } catch (e) {
      if (e instanceof GameError) throw e.message;
      const stack = String(e?.stack ?? '').split('\n').map((s) => s.trim()).filter(Boolean).join(' | ');
      host.log('error', `${e?.name ?? 'Error'}: ${e?.message ?? e}${stack ? ` | ${stack}` : ''}`);
      throw `${e?.name ?? 'Error'}: ${e?.message ?? e}`;
    }
  };
  return {
    init: (room, config) => run(() => driver.init(ctx, room, config)),
    onJoin: (player) => run(() => driver.onJoin(ctx, player)),
    onLeave: (player) => run(() => driver.onLeave(ctx, player)),
    onMessage: (player, payload) => run(() => driver.onMessage(ctx, player, payload)),
    onTick: (tick, dtMs) => run(() => driver.onTick(ctx, Number(tick), dtMs)),
    onTimer: (tag) => run(() => driver.onTimer(ctx, tag)),
    snapshot: () => run(() => driver.snapshot()),
    restore: (state, fromVersion) => run(() => driver.restore(state, fromVersion)),
  };
}
