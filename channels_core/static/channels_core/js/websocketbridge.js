/*
 * WebSocketBridge: the Channels 1.x JavaScript client, with no build step.
 *
 *   <script src="{% static 'channels_core/js/websocketbridge.js' %}"></script>
 *   const bridge = new channels.WebSocketBridge();
 *   bridge.connect("/ws/chat/");                    // relative: ws:// or wss:// from the page
 *   bridge.listen((data, stream) => { ... });        // frames that are not {stream, payload}
 *   bridge.demultiplex("values", (payload, stream) => { ... });
 *   bridge.send({say: "hi"});                        // JSON
 *   bridge.stream("values").send({action: "create", data: {...}});
 *
 * or as an ES module: import { WebSocketBridge } from ".../websocketbridge.mjs".
 *
 * The socket reconnects by itself after the connection drops, waiting
 * minReconnectionDelay ms, growing by reconnectionDelayGrowFactor up to
 * maxReconnectionDelay, at most maxRetries times in a row (options of
 * connect()); frames sent while it is down are queued (up to maxQueued)
 * and sent on reconnection. bridge.socket is that socket.
 */
(function (root) {
  "use strict";

  var DEFAULTS = {
    minReconnectionDelay: 1000,
    maxReconnectionDelay: 10000,
    reconnectionDelayGrowFactor: 1.3,
    maxRetries: Infinity,
    maxQueued: 1000,
  };

  function resolveUrl(url) {
    var location = root.location;
    if (!url) {
      url = location.pathname;
    }
    if (/^wss?:\/\//i.test(url)) {
      return url;
    }
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    if (url.charAt(0) !== "/") {
      var base = location.pathname.replace(/[^/]*$/, "");
      url = base + url;
    }
    return scheme + location.host + url;
  }

  /* A WebSocket that comes back after the connection drops. */
  function ReconnectingSocket(url, protocols, options) {
    this.url = url;
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
    var ws = this.protocols ? new root.WebSocket(this.url, this.protocols) : new root.WebSocket(this.url);
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
    ws.onerror = function (event) { self._emit("error", event); };
    ws.onclose = function (event) {
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
    get: function () { return this.ws ? this.ws.readyState : 3; },
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
  }

  WebSocketBridge.prototype.connect = function (url, protocols, options) {
    var merged = {};
    var key;
    for (key in this.options) { merged[key] = this.options[key]; }
    for (key in options || {}) { merged[key] = options[key]; }
    this.socket = new ReconnectingSocket(resolveUrl(url), protocols, merged);
    var self = this;
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
    if (msg !== null && typeof msg === "object" && msg.stream !== undefined) {
      var streamCb = this.streams[msg.stream];
      if (streamCb) {
        streamCb(msg.payload, msg.stream);
      }
    } else if (this.default_cb) {
      this.default_cb(msg, null);
    }
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

  var exported = { WebSocketBridge: WebSocketBridge, ReconnectingSocket: ReconnectingSocket };
  root.channels = root.channels || {};
  root.channels.WebSocketBridge = WebSocketBridge;
  root.channels.ReconnectingSocket = ReconnectingSocket;
  if (typeof module === "object" && module.exports) {
    module.exports = exported;
  }
})(typeof globalThis !== "undefined" ? globalThis : this);
