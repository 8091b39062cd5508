/*
 * WebSocketBridge: the Channels 1.x JavaScript client.
 *
 * THE source of the client: js/build.mjs makes the ES module (lib/websocketbridge.mjs) and the
 * classic script (lib/websocketbridge.js, which sets window.channels.WebSocketBridge) from this
 * file, and copies both to channels_core/static/channels_core/js/, where Django serves them.
 * Edit this file, then run `node js/build.mjs`; a test fails while the built files are stale.
 *
 *   <script src="{% static 'channels_core/js/websocketbridge.js' %}"></script>   (classic script)
 *   import { WebSocketBridge } from "channels-core-bridge";                       (ES module)
 *
 *   const bridge = new channels.WebSocketBridge();   // or new WebSocketBridge() when imported
 *   bridge.connect("/ws/chat/");                    // relative: ws:// or wss:// from the page
 *   bridge.listen((data, stream) => { ... });        // frames that are not {stream, payload}
 *   bridge.demultiplex("values", (payload, stream) => { ... });
 *   bridge.send({say: "hi"});                        // JSON
 *   bridge.stream("values").send({action: "create", data: {...}});
 *   bridge.resumed((status) => { if (!status.recovered) reload(); });  // group history
 *
 * Group history (docs/topics/history.md): a frame {history: {group, epoch, offset}, text} is a
 * message of a group that keeps history; the bridge remembers the last position per group
 * (bridge.positions), hands `text` on as if it were the frame, and on every reconnection adds
 * ?since=GROUP:EPOCH:OFFSET per group to the URL, so the consumer can replay what was missed.
 * The status frame {history: {group, epoch, offset, recovered}} that ends a replay goes to
 * the resumed() callback; recovered: false means messages were lost (reload the state).
 *
 * The socket reconnects by itself after the connection drops, waiting
 * minReconnectionDelay ms, growing by reconnectionDelayGrowFactor up to
 * maxReconnectionDelay, at most maxRetries times in a row (options of
 * connect()); frames sent while it is down are queued (up to maxQueued)
 * and sent on reconnection. bridge.socket is that socket. Outside a browser
 * (Node < 22), pass a WebSocket class as the WebSocket option (e.g. the ws
 * package's); the default is the global WebSocket.
 *
 * Written in ES5 (var, prototypes) so that the classic script runs in any browser the page
 * supports; only the export statement at the end is ES2015.
 */
var root = typeof globalThis !== "undefined" ? globalThis : self;

var DEFAULTS = {
  minReconnectionDelay: 1000,
  maxReconnectionDelay: 10000,
  reconnectionDelayGrowFactor: 1.3,
  maxRetries: Infinity,
  maxQueued: 1000,
  WebSocket: null, // null: the global WebSocket, looked up at each (re)connection
};

function resolveUrl(url) {
  if (url && /^wss?:\/\//i.test(url)) {
    return url;
  }
  var location = root.location;
  if (!location) {
    // Outside a page there is nothing to resolve a path against.
    throw new Error("WebSocketBridge.connect(): " + (url ? "'" + url + "'" : "no URL") + " needs a page; pass a ws:// or wss:// URL");
  }
  if (!url) {
    url = location.pathname;
  }
  var scheme = location.protocol === "https:" ? "wss://" : "ws://";
  if (url.charAt(0) !== "/") {
    var base = location.pathname.replace(/[^/]*$/, "");
    url = base + url;
  }
  return scheme + location.host + url;
}

/* A WebSocket that comes back after the connection drops. */
function ReconnectingSocket(url, protocols, options, urlFor) {
  this.url = url;
  this.urlFor = urlFor || null; // the URL of each (re)connection from this.url (the bridge adds ?since=)
  this.protocols = protocols;
  this.options = {};
  for (var key in DEFAULTS) {
    this.options[key] = options && options[key] !== undefined ? options[key] : DEFAULTS[key];
  }
  this.retries = 0;
  this.queue = [];
  this.closedByUser = false;
  this.gaveUp = false;
  this.ws = null;
  this.timer = null;
  this.onopen = null;
  this.onclose = null;
  this.onmessage = null;
  this.onerror = null;
  this._listeners = { open: [], close: [], message: [], error: [] };
  this._open();
}

ReconnectingSocket.prototype._emit = function (type, event) {
  var handler = this["on" + type];
  if (typeof handler === "function") {
    handler.call(this, event);
  }
  var listeners = this._listeners[type].slice();
  for (var i = 0; i < listeners.length; i++) {
    listeners[i].call(this, event);
  }
};

ReconnectingSocket.prototype.addEventListener = function (type, listener) {
  this._listeners[type].push(listener);
};

ReconnectingSocket.prototype.removeEventListener = function (type, listener) {
  this._listeners[type] = this._listeners[type].filter(function (l) { return l !== listener; });
};

ReconnectingSocket.prototype._open = function () {
  var self = this;
  var Socket = this.options.WebSocket || root.WebSocket;
  if (typeof Socket !== "function") {
    throw new Error("WebSocketBridge: no WebSocket here; pass one as the WebSocket option (Node < 22: the ws package)");
  }
  var url = this.urlFor ? this.urlFor(this.url) : this.url;
  var ws = this.protocols ? new Socket(url, this.protocols) : new Socket(url);
  this.ws = ws;
  ws.onopen = function (event) {
    self.retries = 0;
    var queued = self.queue;
    self.queue = [];
    for (var i = 0; i < queued.length; i++) {
      ws.send(queued[i]);
    }
    self._emit("open", event);
  };
  ws.onmessage = function (event) { self._emit("message", event); };
  var lost = false;
  ws.onerror = function (event) {
    self._emit("error", event);
    if (ws.readyState === 0) {
      // A connection that failed to open: the standard follows with "close", but Node 20's
      // WebSocket (undici before nodejs/undici#3566) never does and stays CONNECTING, which would
      // end the reconnections. Count it as lost now; the close event, if it comes, is then ignored.
      ws.onclose({ type: "close", code: 1006, reason: "", wasClean: false });
    }
  };
  ws.onclose = function (event) {
    if (lost) {
      return;
    }
    lost = true;
    self._emit("close", event);
    if (self.closedByUser) {
      return;
    }
    if (self.retries >= self.options.maxRetries) {
      self.gaveUp = true;
      return;
    }
    var delay = Math.min(
      self.options.minReconnectionDelay * Math.pow(self.options.reconnectionDelayGrowFactor, self.retries),
      self.options.maxReconnectionDelay
    );
    self.retries += 1;
    self.timer = setTimeout(function () { self.timer = null; self._open(); }, delay);
  };
};

Object.defineProperty(ReconnectingSocket.prototype, "readyState", {
  // CLOSED while a reconnection waits, whatever the lost WebSocket says (see onerror above).
  get: function () { return this.ws && this.timer === null ? this.ws.readyState : 3; },
});

ReconnectingSocket.prototype.send = function (data) {
  if (this.ws && this.ws.readyState === 1) {
    this.ws.send(data);
  } else if (!this.closedByUser && !this.gaveUp) {
    if (this.queue.length >= this.options.maxQueued) {
      throw new Error("WebSocketBridge: " + this.queue.length + " frames already wait for the connection");
    }
    this.queue.push(data);
  } else {
    throw new Error("WebSocketBridge: the socket is closed");
  }
};

ReconnectingSocket.prototype.close = function (code, reason) {
  this.closedByUser = true;
  if (this.timer !== null) {
    clearTimeout(this.timer);
    this.timer = null;
  }
  if (this.ws) {
    this.ws.close(code || 1000, reason);
  }
};

/* The bridge: JSON frames, and {stream, payload} multiplexing. */
function WebSocketBridge(options) {
  this.options = options || {};
  this.socket = null;
  this.streams = {};
  this.default_cb = null;
  this.positions = {}; // group -> {epoch, offset}: the last history position seen (sent back on reconnection)
  this.resume_cb = null;
}

/* url with ?since=GROUP:EPOCH:OFFSET for each group position known. */
function withSince(url, positions) {
  var parts = [];
  for (var group in positions) {
    if (Object.prototype.hasOwnProperty.call(positions, group)) {
      var p = positions[group];
      parts.push("since=" + encodeURIComponent(group + ":" + p.epoch + ":" + p.offset));
    }
  }
  return parts.length ? url + (url.indexOf("?") < 0 ? "?" : "&") + parts.join("&") : url;
}

WebSocketBridge.prototype.connect = function (url, protocols, options) {
  var merged = {};
  var key;
  for (key in this.options) { merged[key] = this.options[key]; }
  for (key in options || {}) { merged[key] = options[key]; }
  var self = this;
  this.socket = new ReconnectingSocket(resolveUrl(url), protocols, merged, function (base) {
    return withSince(base, self.positions);
  });
  this.socket.addEventListener("message", function (event) { self._dispatch(event); });
  return this;
};

WebSocketBridge.prototype._dispatch = function (event) {
  var msg;
  try {
    msg = JSON.parse(event.data);
  } catch (error) {
    if (root.console) {
      root.console.warn("WebSocketBridge: a frame that is not JSON was ignored", event.data);
    }
    return;
  }
  if (msg !== null && typeof msg === "object" && msg.history && typeof msg.history.group === "string") {
    this._history(msg);
    return;
  }
  if (msg !== null && typeof msg === "object" && msg.stream !== undefined) {
    var streamCb = this.streams[msg.stream];
    if (streamCb) {
      streamCb(msg.payload, msg.stream);
    }
  } else if (this.default_cb) {
    this.default_cb(msg, null);
  }
};

/* A frame of a group with history: remember its position, then hand its text on (or the status to resumed()). */
WebSocketBridge.prototype._history = function (msg) {
  var h = msg.history;
  var known = this.positions[h.group];
  if (h.recovered === undefined && known && known.epoch === h.epoch && h.offset <= known.offset) {
    return; // seen already (the server never sends one twice; this guards the app all the same)
  }
  this.positions[h.group] = { epoch: h.epoch, offset: h.offset };
  if (h.recovered !== undefined) {
    if (this.resume_cb) {
      this.resume_cb({ group: h.group, epoch: h.epoch, offset: h.offset, recovered: h.recovered });
    }
  } else if (typeof msg.text === "string") {
    this._dispatch({ data: msg.text });
  }
};

/* cb({group, epoch, offset, recovered}) after each join to a group with history (see the top). */
WebSocketBridge.prototype.resumed = function (cb) {
  this.resume_cb = cb || null;
  return this;
};

WebSocketBridge.prototype._needSocket = function (what) {
  if (!this.socket) {
    throw new Error("WebSocketBridge." + what + "(): call connect() first");
  }
};

WebSocketBridge.prototype.listen = function (cb) {
  this._needSocket("listen");
  this.default_cb = cb || null;
  return this;
};

WebSocketBridge.prototype.demultiplex = function (stream, cb) {
  this._needSocket("demultiplex");
  this.streams[stream] = cb;
  return this;
};

WebSocketBridge.prototype.send = function (msg) {
  this._needSocket("send");
  this.socket.send(JSON.stringify(msg));
};

WebSocketBridge.prototype.stream = function (name) {
  var self = this;
  return {
    send: function (payload) {
      self.send({ stream: name, payload: payload });
    },
  };
};

// build.mjs: the classic script replaces everything from this line on.
export { WebSocketBridge, ReconnectingSocket };
export default WebSocketBridge;
