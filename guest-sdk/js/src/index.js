// Warden game plugins in JavaScript. A plugin is a subclass of Game whose hooks get a Ctx; its entry
// module (app.js) ends with
//   export const { init, onJoin, onLeave, onMessage, onTick, onTimer, snapshot, restore } = exportGame(MyGame);
// (`exportGame` from 'warden-sdk/component'), and `node guest-sdk/js/build.mjs DIR -o OUT.wasm` makes it a
// component. 'warden-sdk/testing' runs a game natively under `node --test`.

export { Config, Driver, Game, GameError, decode, encode } from './game.js';
export { Ctx, Recipient } from './ctx.js';
export const SDK_VERSION = '0.1.0';
