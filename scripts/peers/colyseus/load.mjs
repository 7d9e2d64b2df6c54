// The load generator of scripts/bench-peers for Colyseus, on its official client (@colyseus/sdk):
// PLAYERS players join rooms of 4 (joinOrCreate fills them), each sends RATE moves a second for
// SECONDS, and the round trip of every move is timed from its send to its `moved` answer.
// Usage: node load.mjs URL PLAYERS RATE SECONDS. Prints one JSON line with the report.
import { Client } from "@colyseus/sdk";

const [url, players, rate, seconds] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4]), Number(process.argv[5])];
const client = new Client(url);
const rtts = [];
let sent = 0, answered = 0, failed = 0, sending = true;
const rooms = [];
// Joins in batches, so matchmaking fills each room before the next opens.
for (let i = 0; i < players; i += 50) {
  const batch = [];
  for (let j = i; j < Math.min(players, i + 50); j++) {
    batch.push(client.joinOrCreate("tiny").then((room) => rooms.push(room), () => failed++));
  }
  await Promise.all(batch);
}
const dirs = ["up", "left", "down", "right"];
for (const room of rooms) {
  const pending = new Map();
  let seq = 0;
  room.onMessage("moved", (m) => {
    const at = pending.get(m.seq);
    if (at !== undefined) {
      pending.delete(m.seq);
      answered++;
      rtts.push(performance.now() - at);
    }
  });
  room.onStateChange(() => {});
  // Spread over the period, as warden bots does.
  setTimeout(() => {
    const timer = setInterval(() => {
      if (!sending) return clearInterval(timer);
      seq++;
      pending.set(seq, performance.now());
      sent++;
      room.send("move", { dir: dirs[seq % 4], seq });
    }, 1000 / rate);
  }, Math.random() * (1000 / rate));
}
await new Promise((r) => setTimeout(r, seconds * 1000));
sending = false;
// The answers still on their way.
await new Promise((r) => setTimeout(r, 1000));
rtts.sort((a, b) => a - b);
const q = (f) => (rtts.length ? rtts[Math.min(rtts.length - 1, Math.floor(rtts.length * f))] : NaN);
console.log(JSON.stringify({ players, connected: rooms.length, failed_connections: failed, sent, answered, lost: sent - answered, rtt_p50_ms: q(0.5), rtt_p99_ms: q(0.99) }));
process.exit(0);
