// index.d.ts is written by hand: these tests hold it to the built code, both ways, so a method,
// field or option added to (or removed from) src/websocketbridge.mjs without its declaration fails.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import * as esm from "../lib/websocketbridge.mjs";

const require = createRequire(import.meta.url);
const DTS = readFileSync(new URL("../index.d.ts", import.meta.url), "utf8");

/** A WebSocket that never connects: enough to build a ReconnectingSocket and read its fields. */
class InertSocket {
  constructor(url) {
    this.url = url;
    this.readyState = 0;
  }
  send() {}
  close() {}
}

/** The body of `export class|interface NAME { ... }` in index.d.ts (members are one per line, no nesting). */
function block(kind, name) {
  const match = DTS.match(new RegExp(`^export ${kind} ${name} \\{\\n([\\s\\S]*?)^\\}`, "m"));
  assert.ok(match, `index.d.ts has no 'export ${kind} ${name} {'`);
  return match[1];
}

function declaredMembers(kind, name) {
  const names = new Set();
  for (const line of block(kind, name).split("\n")) {
    const member = line.match(/^ {2}(?:readonly )?(\w+)\??\s*[(:]/);
    if (member && member[1] !== "constructor") {
      names.add(member[1]);
    }
  }
  return [...names].sort();
}

/** Public members of a built class: prototype methods and accessors plus the constructor's fields. */
function runtimeMembers(cls, instance) {
  const names = new Set([...Object.getOwnPropertyNames(cls.prototype), ...Object.keys(instance)]);
  return [...names].filter((n) => n !== "constructor" && !n.startsWith("_")).sort();
}

function socket(Module) {
  return new Module.ReconnectingSocket("ws://127.0.0.1:9/", undefined, { WebSocket: InertSocket });
}

test("every public method and field of WebSocketBridge is declared, and nothing else", () => {
  assert.deepEqual(declaredMembers("class", "WebSocketBridge"), runtimeMembers(esm.WebSocketBridge, new esm.WebSocketBridge()));
});

test("every public method and field of ReconnectingSocket is declared, and nothing else", () => {
  const s = socket(esm);
  try {
    assert.deepEqual(declaredMembers("class", "ReconnectingSocket"), runtimeMembers(esm.ReconnectingSocket, s));
  } finally {
    s.close();
  }
});

test("the options interface lists exactly the options the socket reads (its defaults)", () => {
  const s = socket(esm);
  s.close();
  assert.deepEqual(declaredMembers("interface", "WebSocketBridgeOptions"), Object.keys(s.options).sort());
  // Options given to the bridge reach the socket; the declared defaults are the real ones.
  for (const [name, value] of Object.entries(s.options)) {
    if (value !== null && typeof value !== "function") {
      // A class or function from the platform (WebSocket, EventSource, fetch) is documented in words.
      const lines = block("interface", "WebSocketBridgeOptions").split("\n");
      const doc = lines[lines.findIndex((line) => line.startsWith(`  ${name}?:`)) - 1];
      const shown = typeof value === "number" ? String(value) : JSON.stringify(value).replace(/,/g, ", ");
      assert.ok(doc.includes(`Default ${shown}.`), `${name}'s documented default is ${shown}: ${doc}`);
    }
  }
});

test("the stream sender is declared with its one method", () => {
  const bridge = new esm.WebSocketBridge();
  assert.deepEqual(Object.keys(bridge.stream("s")), ["send"]);
  assert.match(block("class", "WebSocketBridge"), /stream\(name: string\): \{ send\(payload: any\): void \};/);
});

test("the ES module, require() and the classic script's global export the same classes as declared", () => {
  const declared = [...DTS.matchAll(/^export (?:class (\w+)|default (\w+))/gm)].map((m) => (m[1] ? m[1] : "default"));
  assert.deepEqual(Object.keys(esm).sort(), declared.sort());
  assert.equal(esm.default, esm.WebSocketBridge);
  const cjs = require("../lib/websocketbridge.js");
  assert.deepEqual(Object.keys(cjs).sort(), declared.sort());
  // Loading the classic script sets the 1.x global, channels.WebSocketBridge.
  assert.equal(globalThis.channels.WebSocketBridge, cjs.WebSocketBridge);
  assert.equal(globalThis.channels.ReconnectingSocket, cjs.ReconnectingSocket);
});

test("outside a page: a relative URL and a missing WebSocket are refused in one clear line", () => {
  assert.throws(() => new esm.WebSocketBridge().connect("/ws/"), /connect\(\): '\/ws\/' needs a page; pass a ws:\/\/ or wss:\/\/ URL/);
  const saved = globalThis.WebSocket;
  try {
    globalThis.WebSocket = undefined;
    const webSocketsOnly = { fallbackTransports: [] };
    assert.throws(() => new esm.WebSocketBridge(webSocketsOnly).connect("ws://127.0.0.1:9/"), /no WebSocket here; pass one as the WebSocket option/);
  } finally {
    globalThis.WebSocket = saved;
  }
});
