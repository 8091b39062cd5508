// The WebSocketBridge as an ES module: import { WebSocketBridge } from "./websocketbridge.mjs".
// It runs the classic script (one implementation), which registers globalThis.channels.
import "./websocketbridge.js";

export const WebSocketBridge = globalThis.channels.WebSocketBridge;
export const ReconnectingSocket = globalThis.channels.ReconnectingSocket;
export default WebSocketBridge;
