// {{name}}: a Warden plugin. It greets whoever writes to it and counts greetings.
// Test: `npm install && npm test`. Build: `npm run build`, then put {{name}}.wasm into a
// `warden serve --dev` plugin directory (docs/plugins.md, "Plugins in JavaScript").
import { Game } from 'warden-sdk';

export class Hello extends Game {
  constructor() {
    super();
    this.greeted = 0;
  }

  onMessage(ctx, player, name) {
    this.greeted += 1;
    ctx.send(player, `hello, ${name} (greeting #${this.greeted})`);
  }
}
