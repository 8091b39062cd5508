// The websocket-shootout load generator (Hashrocket's `websocket-bench broadcast` algorithm), on Node's ws.
//
//   node benchmarks/shootout/client.mjs --url ws://127.0.0.1:PORT/shootout/ [--command broadcast|echo]
//        [--initial-clients N] [--step-size N] [--limit-clients N] [--concurrent N] [--sample-size N]
//        [--limit-percentile 95] [--limit-rtt-ms 500] [--payload-padding 0] [--max-seconds S]
//
// Steps: connect clients until there are --initial-clients (then --step-size more each step); keep
// --concurrent requests in flight, each from a random client, until --sample-size round trips are
// measured (the RTT ends when the SENDER has its echo or broadcastResult, as in the original); stop at
// the first step whose --limit-percentile RTT exceeds --limit-rtt-ms, or after the step that reaches
// --limit-clients. Beyond the original: every broadcast is tracked to every client connected when it was
// sent, so each step also reports missing and extra (duplicate or unknown) broadcasts and the time until
// the LAST client had each broadcast. Prints one JSON object per line (events "connected", "sampling",
// "step", "done") for benchmarks/shootout_bench.py, which also reads this process's CPU from them.

import { performance } from "node:perf_hooks";
import WebSocket from "ws";

const defaults = {
  url: "",
  command: "broadcast",
  "initial-clients": 0,
  "step-size": 1000,
  "limit-clients": 100000,
  concurrent: 4,
  "sample-size": 40,
  "limit-percentile": 95,
  "limit-rtt-ms": 500,
  "payload-padding": 0,
  "connect-concurrency": 100,
  "settle-ms": 3000,
  "request-timeout-ms": 15000,
  "max-seconds": 0,
};

function parseArgs(argv) {
  const opts = { ...defaults };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, "");
    if (!(key in opts)) throw new Error(`unknown option --${key}`);
    opts[key] = typeof defaults[key] === "number" ? Number(argv[i + 1]) : argv[i + 1];
  }
  if (!opts.url) throw new Error("--url is required");
  return opts;
}

const opts = parseArgs(process.argv.slice(2));
const started = performance.now();
const padding = "1234567890".repeat(opts["payload-padding"] / 10 + 1).slice(0, opts["payload-padding"]);
const emit = (event) => process.stdout.write(JSON.stringify(event) + "\n");
const cpuSeconds = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

function pct(sorted, p) {
  if (sorted.length === 0) return null;
  const rank = (p / 100) * (sorted.length - 1); // inclusive method, as Python's statistics.quantiles
  const lo = Math.floor(rank);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo);
}

function summary(values) {
  const s = [...values].sort((a, b) => a - b);
  return { n: s.length, min: s[0] ?? null, p50: pct(s, 50), p95: pct(s, 95), p99: pct(s, 99), max: s.at(-1) ?? null };
}

const clients = [];
const broadcasts = new Map(); // id -> {sent, expected, seen: Uint8Array, received, last}
let nextId = 0;
let extra = 0;
let closedEarly = 0;
let failure = null;
let onResult = null; // the sampling loop's callback for an RTT

function handle(index, data) {
  const now = performance.now();
  const text = data.toString();
  let msg;
  try {
    msg = JSON.parse(text);
  } catch {
    failure = failure ?? `client ${index} got unparsable ${text.slice(0, 80)}`;
    return;
  }
  if (msg.type === "broadcast") {
    const b = broadcasts.get(msg.payload?.id);
    if (!b || index >= b.expected || b.seen[index]) {
      extra += 1;
      return;
    }
    b.seen[index] = 1;
    b.received += 1;
    b.last = now;
  } else if (msg.type === "echo" || msg.type === "broadcastResult") {
    if (onResult) onResult(now - msg.payload.sendTime);
  } else {
    failure = failure ?? `client ${index} got unknown message type ${msg.type}`;
  }
}

function connectOne(index) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(opts.url, { perMessageDeflate: false, handshakeTimeout: 60000 });
    ws.on("open", () => resolve(ws));
    ws.on("error", (err) => reject(err));
    ws.on("message", (data) => handle(index, data));
    ws.on("close", () => {
      if (!shuttingDown) closedEarly += 1;
    });
  });
}

let shuttingDown = false;

async function connectUpTo(target) {
  let next = clients.length;
  const workers = [];
  for (let w = 0; w < opts["connect-concurrency"]; w++) {
    workers.push(
      (async () => {
        while (next < target) {
          const index = next++;
          clients[index] = await connectOne(index);
        }
      })(),
    );
  }
  await Promise.all(workers);
}

function send(ws) {
  const id = nextId++;
  const payload = { sendTime: performance.now(), id };
  if (padding) payload.padding = padding;
  if (opts.command === "broadcast") {
    broadcasts.set(id, {
      sent: payload.sendTime,
      expected: clients.length,
      seen: new Uint8Array(clients.length),
      received: 0,
      last: null,
    });
  }
  ws.send(JSON.stringify({ type: opts.command, payload }));
}

function sample() {
  // Keep `concurrent` requests in flight from random clients until sample-size RTTs are in.
  return new Promise((resolve) => {
    const rtts = [];
    let inFlight = 0;
    let lastProgress = performance.now();
    const fire = () => {
      send(clients[Math.floor(Math.random() * clients.length)]);
      inFlight += 1;
    };
    const watchdog = setInterval(() => {
      if (failure || performance.now() - lastProgress > opts["request-timeout-ms"]) {
        clearInterval(watchdog);
        onResult = null;
        resolve({ rtts, timedOut: !failure });
      }
    }, 100);
    onResult = (rtt) => {
      rtts.push(rtt);
      inFlight -= 1;
      lastProgress = performance.now();
      if (rtts.length >= opts["sample-size"]) {
        clearInterval(watchdog);
        onResult = null;
        resolve({ rtts, timedOut: false });
      } else if (rtts.length + inFlight < opts["sample-size"]) {
        fire();
      }
    };
    for (let i = 0; i < Math.min(opts.concurrent, opts["sample-size"]); i++) fire();
  });
}

async function settle(ids) {
  // Wait until every broadcast of the step reached every client, or settle-ms without progress.
  let received = -1;
  let since = performance.now();
  for (;;) {
    const now = ids.reduce((n, id) => n + broadcasts.get(id).received, 0);
    const want = ids.reduce((n, id) => n + broadcasts.get(id).expected, 0);
    if (now >= want) return;
    if (now !== received) {
      received = now;
      since = performance.now();
    } else if (performance.now() - since > opts["settle-ms"]) return;
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function main() {
  let best = 0;
  let reason = "limit-clients reached";
  let totalMissing = 0;
  let totalExtra = 0;
  let target = opts["initial-clients"] > 0 ? opts["initial-clients"] : opts["step-size"];
  for (;;) {
    const cpuConnect = cpuSeconds();
    const t0 = performance.now();
    try {
      await connectUpTo(target);
    } catch (err) {
      reason = `connect failed at ${clients.filter(Boolean).length} clients: ${err.message}`;
      break;
    }
    emit({
      event: "connected",
      clients: clients.length,
      connectSeconds: (performance.now() - t0) / 1e3,
      loadgenCpu: cpuSeconds() - cpuConnect,
    });
    await new Promise((r) => setTimeout(r, 200)); // let the last joins reach the group before sending
    emit({ event: "sampling", clients: clients.length });
    const firstId = nextId;
    const cpu0 = cpuSeconds();
    const w0 = performance.now();
    const extra0 = extra;
    const { rtts, timedOut } = await sample();
    const sampleSeconds = (performance.now() - w0) / 1e3;
    const loadgenCpu = cpuSeconds() - cpu0;
    const ids = [];
    for (let id = firstId; id < nextId; id++) if (broadcasts.has(id)) ids.push(id);
    await settle(ids);
    let missing = 0;
    const last = [];
    for (const id of ids) {
      const b = broadcasts.get(id);
      missing += b.expected - b.received;
      if (b.received === b.expected) last.push(b.last - b.sent);
      broadcasts.delete(id);
    }
    const rtt = summary(rtts);
    const step = {
      event: "step",
      clients: clients.length,
      rtt,
      last: summary(last),
      broadcasts: ids.length,
      missing,
      extra: extra - extra0,
      closedEarly,
      timedOut,
      sampleSeconds,
      loadgenCpu,
    };
    totalMissing += missing;
    totalExtra += extra - extra0;
    const over = timedOut || rtt.n === 0 || pct([...rtts].sort((a, b) => a - b), opts["limit-percentile"]) > opts["limit-rtt-ms"];
    step.passed = !over && !failure;
    emit(step);
    if (failure) {
      reason = failure;
      break;
    }
    if (over) {
      reason = timedOut
        ? `no answer for ${opts["request-timeout-ms"]} ms at ${clients.length} clients`
        : `p${opts["limit-percentile"]} above ${opts["limit-rtt-ms"]} ms at ${clients.length} clients`;
      break;
    }
    best = clients.length;
    if (clients.length >= opts["limit-clients"]) break;
    if (opts["max-seconds"] > 0 && (performance.now() - started) / 1e3 > opts["max-seconds"]) {
      reason = `--max-seconds ${opts["max-seconds"]} reached`;
      break;
    }
    target = Math.min(clients.length + opts["step-size"], opts["limit-clients"]);
  }
  emit({ event: "done", reason, maxClients: best, missing: totalMissing, extra: totalExtra, closedEarly });
  shuttingDown = true;
  for (const ws of clients) if (ws) ws.terminate();
  setTimeout(() => process.exit(0), 100);
}

main().catch((err) => {
  emit({ event: "done", reason: `crashed: ${err.stack}`, maxClients: 0, missing: 0, extra: 0, closedEarly });
  process.exit(1);
});
