// The WebSocketBridge in Node against a real interface-server and runworker (the test project's
// /ws/bridge/ consumer echoes each frame back). tests/js/test_node_client.py starts them and runs
//
//   BRIDGE_TEST_WS=ws://127.0.0.1:PORT BRIDGE_TEST_CONTROL=http://127.0.0.1:PORT2 node --test js/test/interface-server.test.mjs
//
// where POST BRIDGE_TEST_CONTROL/stop stops the interface-server and /start starts it again on the
// same port (the reconnection test). Each bridge test runs with Node's own WebSocket where there is
// one (the bridge's default) and with test/support/mini-websocket.mjs passed as the WebSocket option.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { WebSocketBridge } from "../lib/websocketbridge.mjs";
import { MiniWebSocket } from "./support/mini-websocket.mjs";

const WS = process.env.BRIDGE_TEST_WS;
const CONTROL = process.env.BRIDGE_TEST_CONTROL;
if (!WS || !CONTROL) {
  throw new Error("BRIDGE_TEST_WS and BRIDGE_TEST_CONTROL are unset: run these through pytest tests/js/test_node_client.py");
}
const URL_ = WS + "/ws/bridge/";

const open = [];
after(() => open.forEach((bridge) => bridge.socket && bridge.socket.close()));

async function waitFor(what, predicate, timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function control(action) {
  const response = await fetch(`${CONTROL}/${action}`, { method: "POST" });
  assert.equal(response.status, 200, `control ${action}: ${await response.text()}`);
}

/** A bridge recording what reaches listen() and demultiplex("s1"/"s2"), connected and open. */
async function connected(Bridge, options) {
  const bridge = new Bridge(options);
  open.push(bridge);
  bridge.received = [];
  bridge.connect(URL_);
  bridge.listen((data, stream) => bridge.received.push({ default: data, stream }));
  bridge.demultiplex("s1", (payload, stream) => bridge.received.push({ s1: payload, stream }));
  bridge.demultiplex("s2", (payload, stream) => bridge.received.push({ s2: payload, stream }));
  await waitFor("the socket to open", () => bridge.socket.readyState === 1);
  return bridge;
}

async function echo(bridge, marker) {
  bridge.send({ n: marker });
  await waitFor(`echo ${marker}`, () => bridge.received.some((r) => r.default && r.default.n === marker));
}

const sockets = [["mini-websocket (the WebSocket option)", { WebSocket: MiniWebSocket }]];
if (typeof globalThis.WebSocket === "function") {
  sockets.unshift([`Node ${process.version}'s WebSocket (the default)`, {}]);
}

for (const [label, socketOption] of sockets) {
  describe(label, () => {
    test("connect, send JSON and receive it back through the worker", async () => {
      const bridge = await connected(WebSocketBridge, socketOption);
      assert.equal(bridge.socket.url, URL_);
      const message = { text: "héllo ✓", n: 1, nested: { list: [1, 2.5, null, true] } };
      bridge.send(message);
      await waitFor("the echo", () => bridge.received.length === 1);
      assert.deepEqual(bridge.received, [{ default: message, stream: null }]);
      bridge.socket.close();
    });

    test("demultiplex and stream(name).send: each stream's payload reaches its callback only", async () => {
      const bridge = await connected(WebSocketBridge, socketOption);
      bridge.stream("s1").send({ m: 1 });
      bridge.stream("s2").send({ m: 2 });
      bridge.stream("nobody").send({ x: 1 }); // no callback: dropped, not given to listen()
      bridge.send({ after: true });
      await waitFor("the three echoes", () => bridge.received.length === 3);
      await new Promise((resolve) => setTimeout(resolve, 200)); // time for a fourth, which must not come
      // Sorted: a runworker's threads may answer in any order (Channels 1.x orders only on request).
      const sorted = (list) => list.map((r) => JSON.stringify(r)).sort();
      assert.deepEqual(sorted(bridge.received), sorted([
        { s1: { m: 1 }, stream: "s1" },
        { s2: { m: 2 }, stream: "s2" },
        { default: { after: true }, stream: null },
      ]));
      bridge.socket.close();
    });

    test("reconnect after the interface-server restarts, sending what was queued meanwhile", { timeout: 40000 }, async () => {
      const bridge = await connected(WebSocketBridge, { ...socketOption, minReconnectionDelay: 100, maxReconnectionDelay: 300 });
      await echo(bridge, 1);
      await control("stop");
      await waitFor("the socket to see the server go", () => bridge.socket.readyState === 3);
      bridge.send({ queued: true }); // queued while the server is down
      assert.equal(bridge.socket.queue.length, 1);
      await control("start");
      await waitFor("the queued frame's echo", () => bridge.received.some((r) => r.default && r.default.queued), 20000);
      assert.equal(bridge.socket.readyState, 1);
      assert.equal(bridge.socket.retries, 0);
      assert.equal(bridge.socket.queue.length, 0);
      await echo(bridge, 2);
      bridge.socket.close();
    });
  });
}

test("the classic script (require()) is the same bridge: channels.WebSocketBridge echoes too", async () => {
  const require = createRequire(import.meta.url);
  require("../lib/websocketbridge.js");
  const bridge = await connected(globalThis.channels.WebSocketBridge, { WebSocket: globalThis.WebSocket || MiniWebSocket });
  bridge.stream("s1").send({ classic: true });
  await waitFor("the echo", () => bridge.received.length === 1);
  assert.deepEqual(bridge.received, [{ s1: { classic: true }, stream: "s1" }]);
  bridge.socket.close();
});
