// The bridge over long-polling in Node (no WebSocket, no EventSource: fetch only) against a real
// interface-server and runworker; tests/js/test_node_fallback.py starts them and runs
//
//   BRIDGE_TEST_WS=ws://127.0.0.1:PORT node --test js/test/fallback-server.test.mjs
import { test } from "node:test";
import assert from "node:assert/strict";
import { WebSocketBridge } from "../lib/websocketbridge.mjs";

const WS = process.env.BRIDGE_TEST_WS;
if (!WS) {
  throw new Error("BRIDGE_TEST_WS is unset: run this through pytest tests/js/test_node_fallback.py");
}

async function waitFor(what, predicate, timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

test("no WebSocket: the bridge long-polls the same consumer, echo both ways, streams, close", async () => {
  const blocked = class {
    constructor() {
      throw new Error("WebSockets are blocked here");
    }
  };
  const bridge = new WebSocketBridge({ WebSocket: blocked });
  const received = [];
  bridge.connect(WS + "/ws/bridge/");
  bridge.listen((data, stream) => received.push({ default: data, stream }));
  bridge.demultiplex("s1", (payload, stream) => received.push({ s1: payload, stream }));
  assert.equal(bridge.transport, "poll"); // no EventSource in Node: SSE is skipped too
  await waitFor("the socket to open", () => bridge.socket.readyState === 1);
  const sent = [];
  for (let n = 0; n < 20; n++) {
    sent.push({ n, text: "héllo ✓ " + "x".repeat(n * 500) });
    bridge.send(sent[n]); // batched into few POSTs, in order
  }
  bridge.stream("s1").send({ m: 1 });
  await waitFor("21 echoes", () => received.length === 21);
  const plain = received.filter((r) => r.stream === null).map((r) => r.default.n);
  assert.deepEqual([...plain].sort((a, b) => a - b), sent.map((m) => m.n));
  assert.deepEqual(received.find((r) => r.stream === "s1"), { s1: { m: 1 }, stream: "s1" });
  bridge.socket.close();
  await waitFor("the close", () => bridge.socket.ws.readyState === 3);
});
