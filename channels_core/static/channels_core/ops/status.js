/*
 * The Channels operations page (channels_core.ops): asks the stack for its status over a WebSocket and
 * draws it. Read-only: the only thing it ever sends is {"type": "refresh"}.
 *
 * One request at a time: the next refresh is asked `refreshMs` after the previous answer, never on a
 * fixed beat, so a slow or overloaded worker is not sent a pile of requests. While the tab is hidden
 * nothing is asked. Everything from the server is written with textContent (group and channel names
 * may come from users): no HTML is ever parsed from the figures.
 */
(function () {
  "use strict";

  var root = document.getElementById("channels-ops");
  if (!root) return;

  var refreshMs = Math.max(500, parseInt(root.getAttribute("data-refresh-ms"), 10) || 2000);
  // No answer for this long: say so (the figures come through a worker; none may be running).
  var staleMs = Math.max(10000, 5 * refreshMs);
  var path = root.getAttribute("data-websocket-path") || "/admin/channels-ops/ws/";
  var url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + path;

  var socket = null;
  var opened = false; // this socket got past its handshake
  var asked = null; // performance.now() of the refresh in flight
  var nextTimer = null;
  var staleTimer = null;
  var retryDelay = 1000;
  var stopped = false;

  // Exposed for tests and the curious: the last status received and how many have arrived.
  var ops = (window.channelsOps = { status: null, updates: 0, roundTripMs: null, url: url });

  function el(id) {
    return document.getElementById(id);
  }

  function setState(state, message) {
    var badge = el("ops-connection");
    badge.setAttribute("data-state", state);
    badge.textContent = state;
    el("ops-message").textContent = message || "";
    el("ops-figures").classList.toggle("ops-stale", state !== "live");
  }

  // -- formatting -------------------------------------------------------------------------------

  function number(value) {
    return value === null || value === undefined ? "\u2013" : Number(value).toLocaleString("en-US");
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "\u2013";
    if (seconds < 1) return Math.round(seconds * 1000) + " ms";
    if (seconds < 60) return seconds.toFixed(seconds < 10 ? 1 : 0) + " s";
    var minutes = Math.floor(seconds / 60);
    if (minutes < 60) return minutes + " min " + Math.floor(seconds % 60) + " s";
    var hours = Math.floor(minutes / 60);
    if (hours < 24) return hours + " h " + (minutes % 60) + " min";
    return Math.floor(hours / 24) + " d " + (hours % 24) + " h";
  }

  function pairs(object) {
    var keys = Object.keys(object || {});
    if (!keys.length) return "\u2013";
    return keys
      .map(function (key) {
        var value = object[key];
        return key + " " + (typeof value === "number" ? number(value) : String(value));
      })
      .join(", ");
  }

  // -- drawing ----------------------------------------------------------------------------------

  function cell(row, text, field, value, numeric) {
    var td = document.createElement("td");
    td.textContent = text;
    if (field) td.setAttribute("data-field", field);
    if (value !== undefined && value !== null) td.setAttribute("data-value", String(value));
    if (numeric) td.className = "ops-number";
    row.appendChild(td);
    return td;
  }

  function fill(tableId, rows, columns, draw, emptyText) {
    var body = el(tableId).tBodies[0];
    body.textContent = "";
    if (rows === null) {
      var unknown = body.insertRow();
      cell(unknown, "not available from this layer", null).className = "ops-empty";
      unknown.cells[0].colSpan = columns;
      return;
    }
    if (!rows.length) {
      var empty = body.insertRow();
      cell(empty, emptyText, null).className = "ops-empty";
      empty.cells[0].colSpan = columns;
      return;
    }
    rows.forEach(function (item) {
      draw(body.insertRow(), item);
    });
  }

  function drawProcess(row, p) {
    row.setAttribute("data-holder", p.holder);
    row.setAttribute("data-kind", p.kind);
    cell(row, p.kind, "kind");
    cell(row, p.host || "\u2013", "host");
    cell(row, p.pid === null || p.pid === undefined ? "\u2013" : String(p.pid), "pid", p.pid, true);
    cell(row, p.version || "\u2013", "version");
    cell(row, duration(p.uptime), "uptime", p.uptime, true);
    var load = cell(row, pairs(p.load), "load");
    Object.keys(p.load || {}).forEach(function (key) {
      load.setAttribute("data-" + key.replace(/[^a-z0-9-]/gi, "-").toLowerCase(), String(p.load[key]));
    });
    var channels = cell(row, p.channels && p.channels.length ? p.channels.length + " channels" : "\u2013", "channels");
    if (p.channels && p.channels.length) channels.title = p.channels.join("\n");
    cell(row, pairs(p.dropped), "dropped");
    var lease = cell(row, "", "holder");
    var small = document.createElement("small");
    small.textContent = p.holder;
    lease.appendChild(small);
  }

  function drawQueue(row, q) {
    row.setAttribute("data-channel", q.channel);
    cell(row, q.channel, "channel");
    cell(row, number(q.pending), "pending", q.pending, true);
    cell(row, duration(q.oldest_age), "oldest_age", q.oldest_age, true);
    cell(row, number(q.capacity), "capacity", q.capacity, true);
    var full = q.capacity ? Math.min(1, q.pending / q.capacity) : 0;
    var td = cell(row, "", "full", full);
    var bar = document.createElement("span");
    bar.className = "ops-bar" + (full >= 0.8 ? " ops-hot" : "");
    bar.title = Math.round(full * 100) + "% of capacity";
    var inner = document.createElement("span");
    inner.style.width = Math.round(full * 100) + "%";
    bar.appendChild(inner);
    td.appendChild(bar);
  }

  function drawGroup(row, g) {
    row.setAttribute("data-group", g.group);
    cell(row, g.group, "group");
    cell(row, number(g.members), "members", g.members, true);
  }

  function sum(rows, key) {
    return (rows || []).reduce(function (total, item) {
      return total + (Number(item[key]) || 0);
    }, 0);
  }

  function counted(rows, limit) {
    // At the limit, the layer listed only the fullest or largest: there may be more.
    return rows === null ? "\u2013" : number(rows.length) + (limit && rows.length >= limit ? "+" : "");
  }

  function draw(status, limit) {
    var processes = status.processes;
    fill("ops-processes", processes, 9, drawProcess, "no live process holds a lease");
    fill("ops-queues", status.queues, 5, drawQueue, "every queue is empty");
    fill("ops-groups", status.groups, 2, drawGroup, "no group has members");

    var count = function (kind) {
      return processes === null ? null : processes.filter(function (p) { return p.kind === kind; }).length;
    };
    el("ops-count-servers").textContent = number(count("interface-server"));
    el("ops-count-workers").textContent = number(count("worker"));
    el("ops-count-websockets").textContent =
      processes === null ? "\u2013" : number(processes.reduce(function (total, p) {
        var load = p.load || {};
        var open = load.websocket !== undefined ? load.websocket : load.connections;
        return total + (p.kind === "interface-server" ? Number(open) || 0 : 0);
      }, 0));
    el("ops-count-pending").textContent =
      status.queues === null
        ? "\u2013"
        : number(sum(status.queues, "pending")) + (limit && status.queues.length >= limit ? "+" : "");
    el("ops-count-groups").textContent = counted(status.groups, limit);
    el("ops-count-dropped").textContent = number(status.dropped.total);

    var dropped = el("ops-dropped");
    dropped.querySelector('[data-field="channel_full"]').textContent = number(status.dropped.channel_full);
    dropped.querySelector('[data-field="messages_sent"]').textContent = number(status.dropped.messages_sent);
    var byProcess = Object.keys(status.dropped.by_process || {}).map(function (holder) {
      return holder + ": " + pairs(status.dropped.by_process[holder]);
    });
    dropped.querySelector('[data-field="by_process"]').textContent = byProcess.length ? byProcess.join("; ") : "none";
    dropped.querySelector('[data-field="total"]').textContent = number(status.dropped.total);

    var errors = el("ops-errors");
    errors.textContent = "";
    Object.keys(status.errors || {}).forEach(function (section) {
      var item = document.createElement("li");
      item.textContent = section + ": " + status.errors[section];
      errors.appendChild(item);
    });

    el("ops-updated").textContent = new Date(status.time * 1000).toLocaleTimeString([], { hour12: false });
    el("ops-elapsed").textContent = duration(status.elapsed);
    el("ops-layer").textContent = status.layer;
  }

  // -- the socket -------------------------------------------------------------------------------

  function clearTimers() {
    clearTimeout(nextTimer);
    clearTimeout(staleTimer);
    nextTimer = staleTimer = null;
  }

  function ask() {
    nextTimer = null;
    if (!socket || socket.readyState !== WebSocket.OPEN || asked !== null) return;
    if (document.hidden) return; // asked again when the tab shows
    asked = performance.now();
    socket.send(JSON.stringify({ type: "refresh" }));
    staleTimer = setTimeout(function () {
      setState("stale", "no answer for " + Math.round(staleMs / 1000) + " s: the figures come through a worker; " +
        "is one running and consuming websocket.receive? (manage.py channels_status asks the layer directly)");
    }, staleMs);
  }

  function answered() {
    clearTimers();
    if (asked !== null) {
      ops.roundTripMs = performance.now() - asked;
      el("ops-round-trip").textContent = ops.roundTripMs.toFixed(1) + " ms";
    }
    asked = null;
    nextTimer = setTimeout(ask, refreshMs);
  }

  function connect() {
    opened = false;
    asked = null;
    socket = new WebSocket(url);
    socket.onopen = function () {
      opened = true;
      retryDelay = 1000;
      setState("connecting", "waiting for the first figures");
      // The server sends the first status unasked; if it never comes, the route is probably missing.
      staleTimer = setTimeout(function () {
        setState("stale", "connected, but nothing answered: is channels_core.ops.routing included in the " +
          "channel routing, and is a worker running?");
      }, staleMs);
    };
    socket.onmessage = function (event) {
      var data;
      try {
        data = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      if (data.type === "status") {
        ops.status = data.status;
        ops.updates += 1;
        draw(data.status, data.limit);
        setState("live", "");
        answered();
      } else if (data.type === "error") {
        setState("stale", "the server said: " + data.error);
        answered();
      }
    };
    socket.onclose = function (event) {
      clearTimers();
      socket = null;
      if (event.code === 4003) {
        stopped = true;
        setState("closed", "your session is no longer an active staff member's: log in again and reload.");
        return;
      }
      if (opened) {
        setState("connecting", "the connection closed (" + event.code + "); reconnecting");
      } else {
        setState("refused", "the WebSocket handshake failed: the session may have expired (reload to log in), " +
          "the Origin may not be in ALLOWED_HOSTS, or the interface server is down; retrying");
      }
      setTimeout(connect, retryDelay);
      retryDelay = Math.min(30000, retryDelay * 2);
    };
  }

  document.addEventListener("visibilitychange", function () {
    if (!document.hidden && !stopped && nextTimer === null && asked === null) ask();
  });

  connect();
})();
