// The component's entry point: componentize-js exports what this module exports.
import { exportGame } from 'warden-sdk/component';
import { Hello } from './game.js';

export const { init, onJoin, onLeave, onMessage, onTick, onTimer, snapshot, restore } = exportGame(Hello);
