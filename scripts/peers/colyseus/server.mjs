// The tiny game of scripts/bench-peers as a Colyseus room, the same as plugins/arena does it in
// Warden: rooms of 4; a `move` {dir, seq} moves its player one step on a 16x16 grid and scores a point,
// answered to its sender at once ({seq, score}); the state (every player's position and score) is
// synchronised 10 times a second (arena broadcasts it every other tick at 20 Hz); a 20 Hz simulation
// interval runs as arena's ticks do.
// Usage: node server.mjs PORT. Prints "colyseus listening PORT" once it accepts connections.
import { Server, Room } from "@colyseus/core";
import { WebSocketTransport } from "@colyseus/ws-transport";
import { schema, t } from "@colyseus/schema";

const Player = schema({ x: t.number(), y: t.number(), score: t.number() }, "Player");
const State = schema({ players: t.map(Player) }, "State");
const STEP = { up: [0, -1], down: [0, 1], left: [-1, 0], right: [1, 0] };

class Tiny extends Room {
  maxClients = 4;

  onCreate() {
    this.setState(new State());
    this.setPatchRate(100);
    this.setSimulationInterval(() => {}, 50);
    this.onMessage("move", (client, msg) => {
      const p = this.state.players.get(client.sessionId);
      const [dx, dy] = STEP[msg.dir] ?? [0, 0];
      p.x = (p.x + dx + 16) % 16;
      p.y = (p.y + dy + 16) % 16;
      p.score += 1;
      client.send("moved", { seq: msg.seq, score: p.score });
    });
  }

  onJoin(client) {
    this.state.players.set(client.sessionId, new Player({ x: 0, y: 0, score: 0 }));
  }

  onLeave(client) {
    this.state.players.delete(client.sessionId);
  }
}

const port = Number(process.argv[2] ?? 2567);
const server = new Server({ transport: new WebSocketTransport(), greet: false });
server.define("tiny", Tiny);
await server.listen(port, "127.0.0.1");
console.log(`colyseus listening ${port}`);
