// The bridge's side of group history (docs/topics/history.md), with scripted WebSockets: positions
// remembered per group, the text handed on, ?since= on reconnection, the status to resumed().
import { test } from "node:test";
import assert from "node:assert/strict";
import { WebSocketBridge } from "../lib/websocketbridge.mjs";

function scripted() {
  const made = [];
  class Scripted {
    constructor(url) {
      this.url = url;
      this.readyState = 0;
      made.push(this);
    }
    send() {}
    close() {
      this.readyState = 3;
    }
    open() {
      this.readyState = 1;
      this.onopen({ type: "open" });
    }
    frame(obj) {
      this.onmessage({ data: JSON.stringify(obj) });
    }
    drop() {
      this.readyState = 3;
      this.onclose({ type: "close", code: 1006 });
    }
  }
  return { Scripted, made };
}

const tick = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const h = (group, epoch, offset, text) => ({ history: { group, epoch, offset }, text: JSON.stringify(text) });

test("history frames reach listen() as their text; the last position per group comes back as ?since=", async () => {
  const { Scripted, made } = scripted();
  const bridge = new WebSocketBridge({
    WebSocket: Scripted,
    minReconnectionDelay: 5,
    maxReconnectionDelay: 5,
    fallbackTransports: [],
  });
  const got = [];
  const statuses = [];
  bridge.connect("ws://x/ws/room/?user=1");
  bridge.listen((data) => got.push(data));
  bridge.resumed((status) => statuses.push(status));
  bridge.demultiplex("s", (payload) => got.push(["s", payload]));
  assert.equal(made[0].url, "ws://x/ws/room/?user=1", "nothing to resume on the first connection");
  made[0].open();
  made[0].frame({ history: { group: "room-1", epoch: "e1", offset: 0, recovered: true } });
  made[0].frame(h("room-1", "e1", 1, { n: 1 }));
  made[0].frame(h("room-1", "e1", 2, { stream: "s", payload: 2 }));
  made[0].frame(h("room-1", "e1", 2, { n: "again" })); // a duplicate is dropped
  made[0].frame(h("news", "e9", 7, { n: 7 }));
  made[0].frame({ plain: true });
  assert.deepEqual(got, [{ n: 1 }, ["s", 2], { n: 7 }, { plain: true }]);
  assert.deepEqual(statuses, [{ group: "room-1", epoch: "e1", offset: 0, recovered: true }]);
  assert.deepEqual(bridge.positions, { "room-1": { epoch: "e1", offset: 2 }, news: { epoch: "e9", offset: 7 } });
  made[0].drop();
  await tick(30);
  const url = new URL(made[1].url);
  assert.equal(url.searchParams.get("user"), "1");
  assert.deepEqual(url.searchParams.getAll("since"), ["room-1:e1:2", "news:e9:7"]);
  made[1].open();
  made[1].frame({ history: { group: "room-1", epoch: "e2", offset: 5, recovered: false } });
  assert.equal(statuses.at(-1).recovered, false);
  assert.deepEqual(bridge.positions["room-1"], { epoch: "e2", offset: 5 }, "a new epoch replaces the old");
  made[1].frame(h("room-1", "e2", 6, { n: 6 }));
  assert.deepEqual(got.at(-1), { n: 6 });
  bridge.socket.close();
});
