// Type declarations of channels-core-bridge, the WebSocketBridge (written by hand; test/types.test.mjs
// checks them against src/websocketbridge.mjs: every public method, field and option in one is in the other).

/** What a WebSocket class must offer: the browser's, Node's (>= 22, or 20 with --experimental-websocket) or the ws package's. */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: ((event: any) => void) | null;
  onclose: ((event: any) => void) | null;
  onmessage: ((event: { data: any }) => void) | null;
  onerror: ((event: any) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export type WebSocketClass = new (url: string, protocols?: string | string[]) => WebSocketLike;

/** Options of `new WebSocketBridge(options)` and `connect(url, protocols, options)` (the latter win). */
export interface WebSocketBridgeOptions {
  /** Milliseconds before the first reconnection attempt. Default 1000. */
  minReconnectionDelay?: number;
  /** The longest wait between attempts, in milliseconds. Default 10000. */
  maxReconnectionDelay?: number;
  /** Each failed attempt multiplies the wait by this. Default 1.3. */
  reconnectionDelayGrowFactor?: number;
  /** Attempts in a row before giving up (`socket.gaveUp`). Default Infinity. */
  maxRetries?: number;
  /** Frames kept while the socket is down; `send` throws beyond. Default 1000. */
  maxQueued?: number;
  /** The WebSocket class to use; default (null) the global `WebSocket`. */
  WebSocket?: WebSocketClass | null;
  /** Tried in turn, at once, when a WebSocket cannot open: Server-Sent Events + POST, long-polling; [] for WebSockets only. Default ["sse", "poll"]. */
  fallbackTransports?: Transport[];
  /** Where the interface server serves the fallbacks (its `--fallback-prefix`). Default "/_channels/". */
  fallbackPrefix?: string;
  /** The EventSource class for "sse"; default (null) the global `EventSource`. */
  EventSource?: (new (url: string) => any) | null;
  /** The fetch function for "sse" and "poll"; default (null) the global `fetch`. */
  fetch?: ((input: string, init?: any) => Promise<any>) | null;
}

export type SocketEventType = "open" | "close" | "message" | "error";

/** How the socket reaches the server: a WebSocket, Server-Sent Events + POST, or long-polling. */
export type Transport = "websocket" | "sse" | "poll";

/** A WebSocket that comes back after the connection drops; `bridge.socket`. */
export class ReconnectingSocket {
  constructor(
    url: string,
    protocols?: string | string[],
    options?: WebSocketBridgeOptions,
    urlFor?: ((url: string) => string) | null,
  );
  /** The absolute ws:// or wss:// URL. */
  readonly url: string;
  /** Makes each (re)connection's URL from `url` (the bridge adds `?since=` positions); null: `url` as is. */
  urlFor: ((url: string) => string) | null;
  readonly protocols: string | string[] | undefined;
  /** The options in effect, defaults filled in. */
  readonly options: Required<WebSocketBridgeOptions>;
  /** Failed attempts since the last open connection. */
  readonly retries: number;
  /** Frames (JSON text) waiting for the connection. */
  readonly queue: string[];
  /** The transport in use, or being tried (the open event carries it too, as `event.transport`). */
  readonly transport: Transport;
  /** The transport that opened (reconnections use it alone); null until one did. */
  readonly worked: Transport | null;
  /** `close()` was called: no more reconnections. */
  readonly closedByUser: boolean;
  /** `maxRetries` attempts failed in a row: no more reconnections. */
  readonly gaveUp: boolean;
  /** The current WebSocket (a new one after each reconnection). */
  readonly ws: WebSocketLike | null;
  /** The pending reconnection's timer, if any. */
  readonly timer: ReturnType<typeof setTimeout> | null;
  /** 0 connecting, 1 open, 2 closing, 3 closed (the current WebSocket's). */
  readonly readyState: number;
  onopen: ((event: any) => void) | null;
  onclose: ((event: any) => void) | null;
  onmessage: ((event: { data: any }) => void) | null;
  onerror: ((event: any) => void) | null;
  addEventListener(type: SocketEventType, listener: (event: any) => void): void;
  removeEventListener(type: SocketEventType, listener: (event: any) => void): void;
  /** Sends now when open, else queues (throws when closed, given up, or `maxQueued` frames wait). */
  send(data: string): void;
  /** Closes for good: no reconnection. */
  close(code?: number, reason?: string): void;
}

/** A position in a group's history (docs/topics/history.md). */
export interface HistoryPosition {
  epoch: string;
  offset: number;
}

/** The status frame after a join with `since`: the group's position, and whether every missed message was replayed. */
export interface HistoryStatus extends HistoryPosition {
  group: string;
  recovered: boolean;
}

/** Called with a frame's payload and its stream name (`null` for frames that are not `{stream, payload}`). */
export type StreamCallback = (payload: any, stream: string | null) => void;

/** The Channels 1.x bridge: JSON frames over a ReconnectingSocket, with `{stream, payload}` multiplexing. */
export class WebSocketBridge {
  constructor(options?: WebSocketBridgeOptions);
  readonly options: WebSocketBridgeOptions;
  /** Set by `connect()`. */
  socket: ReconnectingSocket | null;
  /** `socket.transport`: "websocket", "sse" or "poll"; null before `connect()`. */
  readonly transport: Transport | null;
  /** The `demultiplex` callbacks by stream name. */
  readonly streams: { [stream: string]: StreamCallback };
  /** The `listen` callback. */
  readonly default_cb: StreamCallback | null;
  /** The last group history position seen per group; sent as `?since=GROUP:EPOCH:OFFSET` on each (re)connection. */
  positions: { [group: string]: HistoryPosition };
  /** The `resumed` callback. */
  readonly resume_cb: ((status: HistoryStatus) => void) | null;
  /** `cb(status)` for the status frame that ends each join to a group with history; `recovered: false`: messages were lost. */
  resumed(cb?: ((status: HistoryStatus) => void) | null): this;
  /** Opens the socket; a relative `url` (or none: the page's path) resolves against the page as ws:// or wss://. */
  connect(url?: string, protocols?: string | string[], options?: WebSocketBridgeOptions): this;
  /** `cb(data, null)` for each JSON frame that is not `{stream, payload}`. */
  listen(cb?: StreamCallback | null): this;
  /** `cb(payload, stream)` for each `{stream, payload}` frame of that stream. */
  demultiplex(stream: string, cb: StreamCallback): this;
  /** Sends `msg` as JSON (queued while the socket is down). */
  send(msg: any): void;
  /** A sender of `{stream: name, payload}` frames. */
  stream(name: string): { send(payload: any): void };
}

export default WebSocketBridge;
