// ReconnectingSocket's reconnection with scripted WebSockets: no network, so each failure shape is exact.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ReconnectingSocket, WebSocketBridge } from "../lib/websocketbridge.mjs";

/** A WebSocket whose every instance is driven by the test: `open()`, `fail(withClose)`, `drop()`. */
function scripted() {
  const made = [];
  class Scripted {
    constructor(url) {
      this.url = url;
      this.readyState = 0;
      this.sent = [];
      made.push(this);
    }
    send(data) {
      this.sent.push(data);
    }
    close() {
      this.readyState = 3;
    }
    open() {
      this.readyState = 1;
      this.onopen({ type: "open" });
    }
    fail(withClose) {
      // Browsers set CLOSED, fire error then close; Node 20's undici fires error only, still CONNECTING.
      if (withClose) this.readyState = 3;
      this.onerror({ type: "error" });
      if (withClose) this.onclose({ type: "close", code: 1006 });
    }
    drop() {
      this.readyState = 3;
      this.onclose({ type: "close", code: 1001 });
    }
  }
  return { Scripted, made };
}

const tick = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
// These are about WebSockets alone: no fallback to SSE or long-polling (js/test/fallback.test.mjs has those).
const FAST = { minReconnectionDelay: 5, maxReconnectionDelay: 5, fallbackTransports: [] };

for (const [shape, withClose] of [["error then close (browsers)", true], ["error only (Node 20)", false]]) {
  test(`a connection that fails to open, ${shape}: one close, one retry each, then the queue goes out`, async () => {
    const { Scripted, made } = scripted();
    const socket = new ReconnectingSocket("ws://x/", undefined, { ...FAST, WebSocket: Scripted });
    const closes = [];
    socket.addEventListener("close", (event) => closes.push(event.code));
    socket.send("queued");
    made[0].fail(withClose);
    assert.equal(socket.readyState, 3, "CLOSED while the reconnection waits");
    await tick(20);
    made[1].fail(withClose);
    await tick(20);
    assert.equal(made.length, 3);
    assert.equal(socket.retries, 2);
    assert.equal(closes.length, 2);
    made[2].open();
    assert.deepEqual(made[2].sent, ["queued"]);
    assert.equal(socket.retries, 0);
    assert.equal(socket.readyState, 1);
    socket.close();
  });
}

test("maxRetries failures in a row: gives up, and send() then throws", async () => {
  const { Scripted, made } = scripted();
  const socket = new ReconnectingSocket("ws://x/", undefined, { ...FAST, maxRetries: 2, WebSocket: Scripted });
  made[0].open();
  made[0].drop();
  for (let i = 1; i <= 2; i++) {
    await tick(20);
    made[i].fail(false);
  }
  await tick(20);
  assert.equal(made.length, 3);
  assert.equal(socket.gaveUp, true);
  assert.throws(() => socket.send("late"), /the socket is closed/);
});

test("the wait grows by the factor up to the maximum", async () => {
  const { Scripted, made } = scripted();
  const options = { minReconnectionDelay: 10, reconnectionDelayGrowFactor: 3, maxReconnectionDelay: 50, WebSocket: Scripted, fallbackTransports: [] };
  const socket = new ReconnectingSocket("ws://x/", undefined, options);
  const waits = [];
  const realSetTimeout = globalThis.setTimeout;
  for (let i = 0; i < 4; i++) {
    // The socket schedules its reconnection inside fail(): record the wait, reconnect at once.
    globalThis.setTimeout = (fn, ms) => {
      waits.push(ms);
      return realSetTimeout(fn, 0);
    };
    try {
      made[i].fail(false);
    } finally {
      globalThis.setTimeout = realSetTimeout;
    }
    await tick(5);
  }
  assert.deepEqual(waits, [10, 30, 50, 50]);
  socket.close();
});

test("the bridge: a frame that is not JSON is ignored with a warning; listen() gets the rest", () => {
  const { Scripted, made } = scripted();
  const bridge = new WebSocketBridge({ WebSocket: Scripted }).connect("ws://x/");
  const got = [];
  bridge.listen((data, stream) => got.push([data, stream]));
  const warn = console.warn;
  const warnings = [];
  console.warn = (...args) => warnings.push(args);
  try {
    made[0].open();
    made[0].onmessage({ data: "not json" });
    made[0].onmessage({ data: "[1,2]" });
  } finally {
    console.warn = warn;
  }
  assert.deepEqual(got, [[[1, 2], null]]);
  assert.equal(warnings.length, 1);
  bridge.socket.close();
});
