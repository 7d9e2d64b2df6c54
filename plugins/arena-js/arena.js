// `arena` in JavaScript: the Rust arena (plugins/arena) rule for rule, with its messages and its state
// format (format 2, as MessagePack maps), so that a room hot-swaps between the Rust and the JavaScript
// build and keeps its scores. Players move on a grid and pick up coins that appear at random cells; a
// player's lifetime total is kept in its save.

import { Game, GameError, decode, encode } from 'warden-sdk';

export const DEFAULTS = { width: 16, height: 16, max_coins: 5, spawn_every_ticks: 20, state_every_ticks: 2 };
export const DEPARTED_KEPT = 64;
export const COIN_POINTS = 1;

const pos = (p) => ({ x: p.x, y: p.y });
const player = (p) => ({ pos: pos(p.pos), score: p.score, lifetime: p.lifetime, moves: p.moves, last_seq: p.last_seq ?? 0 });

export class Arena extends Game {
  static inbound = ['move'];

  constructor() {
    super();
    this.config = { ...DEFAULTS };
    this.players = {}; // id -> { pos, score, lifetime, moves, last_seq }, kept sorted by id when encoded
    this.coins = [];
    this.departed = []; // [id, player], oldest first
  }

  init(ctx, room, config) {
    const c = config.parse(DEFAULTS);
    if (!(c.width > 0 && c.height > 0 && c.spawn_every_ticks > 0 && c.state_every_ticks > 0)) {
      throw new GameError('bad arena configuration: width, height, spawn_every_ticks and state_every_ticks must be above 0');
    }
    this.config = { width: c.width, height: c.height, max_coins: c.max_coins, spawn_every_ticks: c.spawn_every_ticks, state_every_ticks: c.state_every_ticks };
  }

  randomCell(ctx) {
    const x = ctx.randomBelow(this.config.width);
    const y = ctx.randomBelow(this.config.height);
    return { x, y };
  }

  step(p, dir) {
    const { width, height } = this.config;
    switch (dir) {
      case 'up':
        return { x: p.x, y: Math.max(p.y - 1, 0) };
      case 'left':
        return { x: Math.max(p.x - 1, 0), y: p.y };
      case 'down':
        return { x: p.x, y: Math.min(p.y + 1, height - 1) };
      case 'right':
        return { x: Math.min(p.x + 1, width - 1), y: p.y };
      default:
        throw new GameError(`unknown direction ${JSON.stringify(dir)}: up, down, left or right`);
    }
  }

  onJoin(ctx, id) {
    const save = ctx.loadSave(id) ?? { total: 0 };
    const i = this.departed.findIndex(([d]) => d === id);
    let p;
    if (i >= 0) {
      const back = this.departed.splice(i, 1)[0][1];
      p = { ...back, lifetime: Math.max(back.lifetime, save.total) };
    } else {
      p = { pos: this.randomCell(ctx), score: 0, lifetime: save.total, moves: 0, last_seq: 0 };
    }
    ctx.send(id, { type: 'welcome', pos: p.pos, total: p.lifetime, width: this.config.width, height: this.config.height });
    this.players[id] = p;
    // console.log goes to the server's log, with the plugin, room and tick attached.
    console.log(`${id} joined at ${p.pos.x},${p.pos.y} with ${p.lifetime} coins in all`);
  }

  onLeave(ctx, id) {
    const p = this.players[id];
    if (!p) return;
    delete this.players[id];
    if (this.departed.length === DEPARTED_KEPT) this.departed.shift();
    this.departed.push([id, p]);
  }

  onMessage(ctx, id, msg) {
    const { dir, seq } = msg;
    const current = this.players[id];
    if (!current) throw new GameError(`${id} moved but is not in the arena`);
    if (seq !== 0 && seq <= current.last_seq) {
      ctx.send(id, { type: 'moved', seq, pos: current.pos, score: current.score, picked: false });
      return;
    }
    const to = this.step(current.pos, dir);
    const i = this.coins.findIndex((c) => c.x === to.x && c.y === to.y);
    const picked = i >= 0;
    if (picked) this.coins.splice(i, 1);
    current.pos = to;
    current.moves += 1;
    current.last_seq = Math.max(current.last_seq, seq);
    if (picked) {
      current.score += COIN_POINTS;
      current.lifetime += 1;
      ctx.storeSave(id, { total: current.lifetime }, 'normal');
    }
    ctx.send(id, { type: 'moved', seq, pos: to, score: current.score, picked });
  }

  onTick(ctx, tick) {
    if (tick % this.config.spawn_every_ticks === 0 && this.coins.length < this.config.max_coins) {
      const cell = this.randomCell(ctx);
      if (!this.coins.some((c) => c.x === cell.x && c.y === cell.y)) this.coins.push(cell);
    }
    const ids = Object.keys(this.players).sort();
    if (tick % this.config.state_every_ticks === 0 && ids.length > 0) {
      const players = ids.map((id) => ({ id, pos: this.players[id].pos, score: this.players[id].score }));
      ctx.broadcast({ type: 'state', tick, players, coins: this.coins });
    }
  }

  // The Rust arena's format 2: a map of config, players (sorted by id, as its BTreeMap), coins, departed.
  snapshot() {
    const players = {};
    for (const id of Object.keys(this.players).sort()) players[id] = player(this.players[id]);
    const c = this.config;
    const config = { width: c.width, height: c.height, max_coins: c.max_coins, spawn_every_ticks: c.spawn_every_ticks, state_every_ticks: c.state_every_ticks };
    return encode({ config, players, coins: this.coins.map(pos), departed: this.departed.map(([id, p]) => [id, player(p)]) });
  }

  static restore(bytes) {
    const s = decode(bytes);
    const arena = new Arena();
    arena.config = { ...DEFAULTS, ...s.config };
    for (const [id, p] of Object.entries(s.players ?? {})) arena.players[id] = player(p);
    arena.coins = (s.coins ?? []).map(pos);
    arena.departed = (s.departed ?? []).map(([id, p]) => [id, player(p)]);
    return arena;
  }

  // Format 1 (before 0.2.0) kept `total` in the player and had no moves, sequence numbers or departed.
  static migrate(fromVersion, bytes) {
    const [major, minor] = fromVersion.split('.').map(Number);
    if (!(major === 0 && minor < 2)) return Arena.restore(bytes);
    const old = decode(bytes);
    const arena = new Arena();
    arena.config = { ...DEFAULTS, ...old.config };
    for (const [id, p] of Object.entries(old.players ?? {})) {
      arena.players[id] = { pos: pos(p.pos), score: p.score, lifetime: p.total, moves: 0, last_seq: 0 };
    }
    arena.coins = (old.coins ?? []).map(pos);
    return arena;
  }
}
