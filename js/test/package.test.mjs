// package.json as a bundler or Node resolves it: the package laid out as `npm install` leaves it
// (its "files" under node_modules/channels-core-bridge/), then imported and required by name.
import { test } from "node:test";
import assert from "node:assert/strict";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const PACKAGE = fileURLToPath(new URL("..", import.meta.url));
const manifest = JSON.parse(readFileSync(join(PACKAGE, "package.json"), "utf8"));

test("import, require and the script entry resolve by name to the built files, with the declared types", () => {
  const project = mkdtempSync(join(tmpdir(), "bridge-package-"));
  try {
    const installed = join(project, "node_modules", manifest.name);
    cpSync(join(PACKAGE, "package.json"), join(installed, "package.json"));
    for (const entry of manifest.files) {
      cpSync(join(PACKAGE, entry), join(installed, entry), { recursive: true });
    }
    writeFileSync(
      join(project, "check.mjs"),
      `import Default, { WebSocketBridge, ReconnectingSocket } from "${manifest.name}";
       import { createRequire } from "node:module";
       const require = createRequire(import.meta.url);
       const cjs = require("${manifest.name}");
       require("${manifest.name}/script");
       console.log(JSON.stringify({
         esm: typeof WebSocketBridge, same: Default === WebSocketBridge, socket: typeof ReconnectingSocket,
         cjs: typeof cjs.WebSocketBridge, global: globalThis.channels.WebSocketBridge === cjs.WebSocketBridge,
         esmFile: WebSocketBridge === (await import("./node_modules/${manifest.name}/lib/websocketbridge.mjs")).WebSocketBridge,
         cjsFile: cjs === require("./node_modules/${manifest.name}/lib/websocketbridge.js"),
       }));`
    );
    const result = JSON.parse(execFileSync(process.execPath, ["check.mjs"], { cwd: project, encoding: "utf8" }));
    assert.deepEqual(
      result,
      { esm: "function", same: true, socket: "function", cjs: "function", global: true, esmFile: true, cjsFile: true }
    );
    assert.equal(manifest.exports["."].types, "./index.d.ts");
    assert.ok(manifest.files.includes("index.d.ts"));
  } finally {
    rmSync(project, { recursive: true, force: true });
  }
});
