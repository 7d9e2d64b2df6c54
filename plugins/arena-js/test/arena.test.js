// arena-js natively, through the SDK's harness: the Rust arena's rules and its state format.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decode, encode } from 'warden-sdk';
import { Harness } from 'warden-sdk/testing';
import { Arena } from '../arena.js';

const room = (config) => new Harness(Arena, { config });

test('a joiner is welcomed at a random cell and moves are answered with their seq', () => {
  const r = room({ width: 4, height: 4 });
  r.join('a');
  const [welcome] = r.received('a');
  assert.equal(welcome.type, 'welcome');
  assert.deepEqual([welcome.width, welcome.height, welcome.total], [4, 4, 0]);
  r.message('a', { type: 'move', dir: 'up', seq: 1 });
  r.message('a', { type: 'move', dir: 'up', seq: 1 });
  const moved = r.received('a');
  assert.deepEqual(moved.map((m) => [m.type, m.seq]), [['moved', 1], ['moved', 1]]);
  assert.equal(r.game.players.a.moves, 1, 'a move sent again is answered again, not applied twice');
  assert.equal(moved[0].pos.y, Math.max(welcome.pos.y - 1, 0));
});

test('coins spawn on the tick schedule, are picked up and saved', () => {
  const r = room({ width: 1, height: 1, spawn_every_ticks: 1, state_every_ticks: 100 });
  r.join('a');
  r.tick();
  r.tick();
  assert.deepEqual(r.game.coins, [{ x: 0, y: 0 }], 'one coin on the one cell, never two on one cell');
  // Against the wall, a move left stays on the cell, and picks the coin up.
  r.message('a', { type: 'move', dir: 'left', seq: 1 });
  const moved = r.received('a').find((m) => m.type === 'moved');
  assert.deepEqual([moved.picked, moved.score], [true, 1]);
  assert.deepEqual(decode(r.host.saves.get('a')[0]), { total: 1 });
});

test('the state round-trips and keeps the Rust arena format: sorted players, departed as pairs', () => {
  const r = room();
  for (const id of ['zed', 'amy', 'bob']) r.join(id);
  r.leave('bob');
  r.ticks(40);
  const state = decode(r.snapshot());
  assert.deepEqual(Object.keys(state), ['config', 'players', 'coins', 'departed']);
  assert.deepEqual(Object.keys(state.players), ['amy', 'zed']);
  assert.deepEqual(Object.keys(state.players.amy), ['pos', 'score', 'lifetime', 'moves', 'last_seq']);
  assert.equal(state.departed[0][0], 'bob');
  const again = r.roundTrip();
  assert.deepEqual(again.snapshot(), r.snapshot());
  r.ticks(20);
  again.ticks(20);
  assert.deepEqual(again.snapshot(), r.snapshot(), 'the same random stream after the round trip');
});

test('format 1 (before 0.2.0) migrates as the Rust arena migrates it', () => {
  const v1 = encode({ config: { width: 8, height: 8, max_coins: 5, spawn_every_ticks: 20, state_every_ticks: 2 }, players: { a: { pos: { x: 1, y: 2 }, score: 3, total: 9 } }, coins: [] });
  const arena = Arena.migrate('0.1.4', v1);
  assert.deepEqual(arena.players.a, { pos: { x: 1, y: 2 }, score: 3, lifetime: 9, moves: 0, last_seq: 0 });
});

test('an unknown message is refused and the room goes on', () => {
  const r = room();
  r.join('a');
  assert.throws(() => r.message('a', { type: 'fly' }), /type "fly" is not one of move/);
  r.message('a', { type: 'move', dir: 'down', seq: 1 });
});
