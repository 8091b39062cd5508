// The bridge's fallbacks (Server-Sent Events + POST, long-polling) against scripted EventSource, fetch
// and WebSocket classes: which transport is tried when, and the wire protocol each one speaks.
// tests/js/test_node_fallback.py runs this, and the bridge over long-polling against a real server.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ReconnectingSocket, WebSocketBridge } from "../lib/websocketbridge.mjs";

const tick = (ms = 5) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(what, predicate, timeoutMs = 2000) {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}`);
    }
    await tick(2);
  }
}
const FAST = { minReconnectionDelay: 5, maxReconnectionDelay: 5 };

/** WebSockets that fail to open, as a proxy that blocks them makes them (error, then close). */
function blockedWebSockets() {
  const made = [];
  class Blocked {
    constructor(url) {
      this.url = url;
      this.readyState = 0;
      made.push(this);
      setTimeout(() => {
        this.readyState = 3;
        this.onerror({ type: "error" });
        this.onclose({ type: "close", code: 1006 });
      }, 1);
    }
    send() {}
    close() {}
  }
  return { Blocked, made };
}

/** EventSources the test drives: `session(id)`, `event(obj)`, `fail()`. */
function scriptedEventSources() {
  const made = [];
  class Scripted {
    constructor(url) {
      this.url = url;
      this.closed = false;
      this.listeners = {};
      this.onmessage = this.onerror = null;
      made.push(this);
    }
    addEventListener(type, fn) {
      (this.listeners[type] = this.listeners[type] || []).push(fn);
    }
    close() {
      this.closed = true;
    }
    session(id) {
      this.listeners.session.forEach((fn) => fn({ data: JSON.stringify({ session: id, transport: "sse" }) }));
    }
    event(obj) {
      this.onmessage({ data: JSON.stringify(obj) });
    }
    fail() {
      this.onerror({ type: "error" });
    }
  }
  return { Scripted, made };
}

/** A fetch whose every call waits for the test: `calls[i].reply(status, body)` or `.fail()`. */
function scriptedFetch() {
  const calls = [];
  function fetch(url, init) {
    return new Promise((resolve, reject) => {
      calls.push({
        url,
        method: init.method,
        body: init.body === undefined ? undefined : JSON.parse(init.body),
        reply: (status, body) => resolve({ status, json: async () => body }),
        fail: () => reject(new TypeError("network")),
      });
    });
  }
  return { fetch, calls };
}

test("no WebSocket in the page: SSE at once, the consumer's URL under the prefix; bridge.transport says so", async () => {
  const { Scripted, made } = scriptedEventSources();
  const { fetch, calls } = scriptedFetch();
  const saved = globalThis.WebSocket;
  globalThis.WebSocket = undefined;
  try {
    const bridge = new WebSocketBridge({ EventSource: Scripted, fetch }).connect("wss://example.com/ws/chat/?room=1");
    assert.equal(bridge.transport, "sse");
    assert.equal(made[0].url, "https://example.com/_channels/sse/ws/chat/?room=1");
    const opens = [];
    bridge.socket.addEventListener("open", (event) => opens.push(event.transport));
    const got = [];
    bridge.listen((data) => got.push(data));
    bridge.send({ early: true }); // queued until open
    made[0].session("S1");
    assert.deepEqual(opens, ["sse"]);
    assert.equal(bridge.socket.readyState, 1);
    assert.equal(calls.length, 1);
    assert.equal(calls[0].url, "https://example.com/_channels/s/S1/send");
    assert.deepEqual(calls[0].body, { seq: 1, frames: [{ text: '{"early":true}' }] });
    made[0].event({ id: 1, text: '{"hello":1}' });
    assert.deepEqual(got, [{ hello: 1 }]);
    bridge.socket.close();
  } finally {
    globalThis.WebSocket = saved;
  }
});

test("a blocked WebSocket: SSE, then long-polling, each at once; then the usual wait, starting over", async () => {
  const { Blocked, made: sockets } = blockedWebSockets();
  const { Scripted, made: sources } = scriptedEventSources();
  const { fetch, calls } = scriptedFetch();
  const socket = new ReconnectingSocket("ws://h/ws/", undefined, { ...FAST, WebSocket: Blocked, EventSource: Scripted, fetch });
  const closes = [];
  socket.addEventListener("close", () => closes.push(socket.transport));
  await until("the SSE attempt", () => sources.length === 1);
  assert.equal(socket.transport, "sse");
  assert.equal(socket.retries, 0, "falling back is not a retry");
  sources[0].fail();
  await until("the long-poll attempt", () => calls.length === 1);
  assert.equal(socket.transport, "poll");
  assert.equal(calls[0].url, "http://h/_channels/poll/ws/");
  calls[0].reply(502, null);
  await until("a WebSocket again", () => sockets.length === 2);
  assert.equal(socket.retries, 1);
  assert.equal(sockets.length, 2, "after the wait, a WebSocket again: none of them ever opened");
  assert.deepEqual(closes.slice(0, 3), ["websocket", "sse", "poll"]); // one close per attempt, naming its transport
  socket.close();
});

test("once SSE opened, reconnections use SSE alone", async () => {
  const { Blocked, made: sockets } = blockedWebSockets();
  const { Scripted, made: sources } = scriptedEventSources();
  const { fetch } = scriptedFetch();
  const socket = new ReconnectingSocket("ws://h/ws/", undefined, { ...FAST, WebSocket: Blocked, EventSource: Scripted, fetch });
  await until("the SSE attempt", () => sources.length === 1);
  sources[0].session("A");
  assert.equal(socket.worked, "sse");
  sources[0].fail(); // the stream is lost after it opened: a reconnection, as for a WebSocket
  await until("the reconnection", () => sources.length === 2);
  assert.equal(sockets.length, 1);
  assert.equal(sources.length, 2);
  assert.equal(socket.transport, "sse");
  assert.equal(sources[0].closed, true, "EventSource's own reconnection is stopped");
  sources[1].fail(); // the server is down: SSE again after the wait, not long-polling at once
  await until("the next SSE attempt", () => sources.length === 3);
  assert.equal(socket.retries, 2);
  socket.close();
});

test("once a WebSocket opened, a server that goes away is retried over WebSockets only (the 1.x behaviour)", async () => {
  const made = [];
  class Flaky {
    constructor(url) {
      this.url = url;
      this.readyState = 0;
      made.push(this);
    }
    send() {}
    close() {}
  }
  const { fetch, calls } = scriptedFetch();
  const { Scripted, made: sources } = scriptedEventSources();
  const socket = new ReconnectingSocket("ws://h/ws/", undefined, { ...FAST, WebSocket: Flaky, EventSource: Scripted, fetch });
  made[0].readyState = 1;
  made[0].onopen({ type: "open" });
  assert.equal(socket.worked, "websocket");
  made[0].readyState = 3;
  made[0].onclose({ type: "close", code: 1006 });
  await until("a WebSocket again", () => made.length === 2);
  made[1].readyState = 3;
  made[1].onerror({ type: "error" });
  made[1].onclose({ type: "close", code: 1006 });
  await until("a third WebSocket", () => made.length === 3);
  assert.equal(sources.length + calls.length, 0, "no fallback tried");
  assert.equal(socket.retries, 2);
  socket.close();
});

test("long-polling: acknowledged polls, duplicates skipped, one POST at a time, close after the frames", async () => {
  const { fetch, calls } = scriptedFetch();
  const socket = new ReconnectingSocket("ws://h/ws/?since=g:e:1", undefined, {
    ...FAST,
    fallbackTransports: ["poll"],
    WebSocket: blockedWebSockets().Blocked,
    fetch,
  });
  const got = [];
  socket.addEventListener("message", (event) => got.push(event.data));
  await until("the long-poll attempt", () => calls.length === 1);
  assert.equal(calls[0].url, "http://h/_channels/poll/ws/?since=g:e:1");
  calls[0].reply(200, { session: "P", transport: "poll", events: [{ id: 1, text: "a" }] });
  await until("the first poll", () => calls.length === 2);
  assert.equal(socket.transport, "poll");
  assert.equal(calls[1].url, "http://h/_channels/s/P/poll?ack=1");
  calls[1].reply(200, { events: [{ id: 1, text: "a" }, { id: 2, text: "b" }, { id: 3, bytes: "AAE=" }] });
  await until("the second poll", () => calls.length === 3);
  assert.deepEqual(got.slice(0, 2), ["a", "b"]);
  assert.deepEqual([...new Uint8Array(got[2])], [0, 1]);
  assert.equal(calls[2].url, "http://h/_channels/s/P/poll?ack=3");

  assert.throws(() => socket.ws.send(new Blob(["b"])), /not Blobs/);
  socket.send("x");
  socket.send("y"); // waits for the first POST's answer, then goes in the next one
  const posts = () => calls.filter((call) => call.method === "POST");
  assert.deepEqual(posts().map((call) => call.body), [{ seq: 1, frames: [{ text: "x" }] }]);
  posts()[0].fail(); // lost on the way: sent again with the same seq
  await until("the POST again", () => posts().length === 2);
  assert.deepEqual(posts()[1].body, { seq: 1, frames: [{ text: "x" }] });
  posts()[1].reply(204);
  await until("the next POST", () => posts().length === 3);
  assert.deepEqual(posts()[2].body, { seq: 2, frames: [{ text: "y" }] });
  socket.close(4000);
  assert.equal(posts().length, 3, "the close waits for the frames before it");
  posts()[2].reply(204);
  await until("the close", () => posts().length === 4);
  assert.equal(posts()[3].url, "http://h/_channels/s/P/close");
  assert.deepEqual(posts()[3].body, { code: 4000 });
  assert.equal(socket.readyState, 3);
});

test("the server's close event closes the socket with its code (and the socket reconnects, as after a close frame)", async () => {
  const { Scripted, made } = scriptedEventSources();
  const { fetch } = scriptedFetch();
  const socket = new ReconnectingSocket("ws://h/ws/", undefined, { ...FAST, WebSocket: blockedWebSockets().Blocked, EventSource: Scripted, fetch });
  const codes = [];
  socket.addEventListener("close", (event) => codes.push(event.code));
  await until("the SSE attempt", () => made.length === 1);
  made[0].session("C");
  made[0].event({ id: 1, close: 4001 });
  assert.deepEqual(codes.slice(-1), [4001]);
  await until("the reconnection", () => made.length === 2);
  assert.equal(made.length, 2);
  socket.close();
});
