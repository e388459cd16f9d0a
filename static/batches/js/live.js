/* DGX.live(path, options): one WebSocket to a progress feed, kept alive.
 *
 * - connects to ws(s)://<this host><path>, and on every (re)connect sends {"since": lastId} so the
 *   server replays what was missed (daphne closes sockets after 24 h; laptops sleep);
 * - reconnects with exponential backoff and jitter (0.5 s .. 20 s), at once when the tab wakes;
 * - drops duplicates (a replayed event can also arrive live) and dispatches by kind:
 *     DGX.live("/ws/queue/", {since: 123, on: {progress: fn, "*": fn}, onOpen: fn(reconnected)})
 * Returns {close()}.
 */
(function () {
  "use strict";
  var DGX = (window.DGX = window.DGX || {});

  DGX.live = function (path, options) {
    options = options || {};
    var handlers = options.on || {};
    var lastId = Number(options.since) || 0;
    var seen = new Set();
    var seenOrder = [];
    var socket = null;
    var attempt = 0;
    var timer = null;
    var closed = false;
    var opened = false;
    var status = document.getElementById("live-status");

    function setStatus(state, text) {
      if (!status) return;
      status.hidden = false;
      status.dataset.state = state;
      status.textContent = text;
      status.title = state === "live" ? "Live updates on" : "Live updates interrupted; reconnecting";
    }

    function remember(id) {
      seen.add(id);
      seenOrder.push(id);
      if (seenOrder.length > 5000) seen.delete(seenOrder.shift());
    }

    function dispatch(message) {
      var fns = [handlers[message.kind], handlers["*"]];
      for (var i = 0; i < fns.length; i++) {
        if (typeof fns[i] !== "function") continue;
        try { fns[i](message.data || {}, message); } catch (err) { console.error("DGX.live handler", message.kind, err); }
      }
    }

    function connect() {
      timer = null;
      if (closed) return;
      var url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + path;
      try { socket = new WebSocket(url); } catch (err) { schedule(); return; }
      socket.onopen = function () {
        var reconnected = opened;
        opened = true;
        attempt = 0;
        setStatus("live", "live");
        socket.send(JSON.stringify({ since: lastId }));
        if (typeof options.onOpen === "function") options.onOpen(reconnected);
      };
      socket.onmessage = function (event) {
        var data;
        try { data = JSON.parse(event.data); } catch (err) { return; }
        // A frame holds one event, or an array of events (a burst, or the replay after "since").
        var messages = Array.isArray(data) ? data : [data];
        messages.forEach(function (message) {
          if (!message || typeof message !== "object") return;
          if (typeof message.id === "number") {
            if (seen.has(message.id)) return;
            remember(message.id);
            if (message.id > lastId) lastId = message.id;
          }
          dispatch(message);
        });
      };
      socket.onclose = function (event) {
        socket = null;
        // 4400 (a frame the server refused) and 4404 (no such feed or job) will not get better by
        // reconnecting; 4429 (too many replays) and everything else will, after the backoff.
        if (event.code === 4400 || event.code === 4404) {
          closed = true;
          setStatus("down", event.code === 4404 ? "no live updates: not found" : "live updates refused");
          return;
        }
        if (!closed) schedule();
      };
      socket.onerror = function () { /* onclose follows */ };
    }

    function schedule() {
      if (timer || closed) return;
      setStatus("down", "reconnecting…");
      var delay = Math.min(20000, 500 * Math.pow(2, attempt)) * (0.75 + Math.random() * 0.5);
      attempt += 1;
      timer = setTimeout(connect, delay);
    }

    // A tab coming back (sleep, another desktop) reconnects now rather than after the backoff.
    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "visible" && !socket && !closed) {
        clearTimeout(timer);
        timer = null;
        connect();
      }
    });
    window.addEventListener("online", function () { if (!socket && !closed) { clearTimeout(timer); timer = null; connect(); } });

    connect();
    return {
      close: function () { closed = true; clearTimeout(timer); if (socket) socket.close(); },
      lastId: function () { return lastId; },
    };
  };
})();
