// The JavaScript SDK natively: the random stream, messages, timers, state and the harness.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Game, GameError, Recipient, decode, encode } from '../src/index.js';
import { Harness, randomAt } from '../src/testing.js';

test('the random stream is SplitMix64 as the host draws it', () => {
  // SplitMix64's published first outputs for state 0.
  assert.deepEqual([0, 1, 2].map((n) => randomAt(0n, n)), [0xe220a8397b1dcdafn, 0x6e789e6aa1b965f4n, 0x06c45d188009454fn]);
});

class Walker extends Game {
  static inbound = ['move_to'];
  constructor() {
    super();
    this.at = { x: 0, y: 0 };
    this.rolls = [];
    this.fired = [];
  }
  onJoin(ctx, player) {
    this.rolls.push(ctx.randomBelow(6));
    ctx.setTimer(100, 'b');
    ctx.setTimer(50, 'a');
    ctx.setTimer(100, 'c');
    ctx.send(Recipient.allExcept(player), { joined: player });
  }
  onMessage(ctx, player, msg) {
    this.at = { x: msg.x, y: msg.y };
    ctx.send(player, { at: [msg.x, msg.y] });
  }
  onTimer(ctx, tag) {
    this.fired.push(`${tag}@${ctx.nowMs()}`);
  }
}

test('messages are refused unless their type is listed; sends reach whom they name', () => {
  const r = new Harness(Walker);
  r.join('a');
  r.join('b');
  assert.deepEqual(r.received('a'), [{ joined: 'b' }]);
  r.message('b', { type: 'move_to', x: 3, y: 4 });
  assert.deepEqual(r.received('b'), [{ at: [3, 4] }]);
  assert.throws(() => r.message('b', { type: 'jump' }), (e) => e instanceof GameError && /not one of move_to/.test(e.message));
  assert.throws(() => decode(Uint8Array.of(0xc1)), GameError);
});

test('timers fire in due order, then set order, on the game clock', () => {
  const slow = new Harness(Walker, { room: { tickHz: 5 } });
  slow.join('p');
  slow.tick();
  assert.deepEqual(slow.game.fired, ['a@200', 'b@200', 'c@200']);
});

test('the default snapshot round-trips and the random stream goes on', () => {
  const r = new Harness(Walker);
  r.join('p');
  r.message('p', { type: 'move_to', x: 1, y: 2 });
  const again = r.roundTrip();
  assert.deepEqual(again.game, r.game);
  r.join('q');
  again.join('q');
  assert.deepEqual(again.game.rolls, r.game.rolls);
  assert.deepEqual(decode(encode({ big: 1n << 60n })), { big: 2 ** 60 });
});

test('configuration parses over defaults and a bad one says where to look', () => {
  class Configured extends Game {
    init(ctx, room, config) {
      this.settings = config.parse({ speed: 3, name: 'x' });
    }
  }
  assert.deepEqual(new Harness(Configured).game.settings, { speed: 3, name: 'x' });
  assert.deepEqual(new Harness(Configured, { config: { speed: 7 } }).game.settings, { speed: 7, name: 'x' });
  assert.throws(() => new Harness(Configured, { config: [1] }), /check this plugin's section in warden.toml/);
});
