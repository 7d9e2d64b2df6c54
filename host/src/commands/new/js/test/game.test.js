import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Harness } from 'warden-sdk/testing';
import { Hello } from '../game.js';

test('greets and counts, and keeps the count across a swap', () => {
  const room = new Harness(Hello);
  room.join('ann');
  room.message('ann', 'Ann');
  room.message('ann', 'Ann');
  assert.deepEqual(room.received('ann'), ['hello, Ann (greeting #1)', 'hello, Ann (greeting #2)']);
  assert.equal(room.roundTrip().game.greeted, 2);
});
