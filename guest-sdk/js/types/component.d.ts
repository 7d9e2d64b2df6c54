// 'warden-sdk/component': `exportGame(MyGame)` over the host's imports (src/component.js, which
// `tsc -p .` checks against the WIT).
import type { GameClass } from '../src/index.js';
import type { Exports } from '../src/export.js';

export type { Exports };
export declare function exportGame(GameClass: GameClass): Exports;
