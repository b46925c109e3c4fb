// Live feed: a snapshot on every (re)connect to /ws/live/, then batches of alerts per tick.
// Reconnects by itself with backoff (wall screens run unattended); a refused socket (4401:
// the session ended) reloads the page, which sends the browser to the login page.
(function () {
  "use strict";
  var table = document.getElementById("live-feed");
  if (!table) return;
  var tbody = table.tBodies[0];
  var badge = document.getElementById("live-connection");
  var wall = document.body.classList.contains("wall");
  var MAX_ROWS = wall ? 25 : 100;  // a wall screen shows what fits
  var delay = 1000;
  var MAX_DELAY = 30000;

  function setConnection(state, text) {
    if (!badge) return;
    badge.className = "status " + state;
    badge.textContent = text;
  }
  function pct(p) { return Math.round(100 * p) + "%"; }
  function money(v) { return "£" + Math.round(v).toLocaleString("en-GB"); }
  function cell(tr, text, cls) {
    var td = document.createElement("td");
    if (cls) td.className = cls;
    if (text instanceof Node) td.appendChild(text); else td.textContent = text;
    tr.appendChild(td);
    return td;
  }
  function row(a, fresh) {
    var tr = document.createElement("tr");
    tr.dataset.eventId = a.event_id;
    if (fresh) tr.className = "fresh";
    cell(tr, (a.occurred_at || "").slice(0, 16).replace("T", " "));
    var link = document.createElement("a");
    link.href = "/customers/" + encodeURIComponent(a.customer_id) + "/";
    link.textContent = a.customer_id;
    cell(tr, link);
    cell(tr, (a.kind === "return" ? "Return" : "Purchase") + " of £" + Math.abs(a.amount).toFixed(2));
    cell(tr, a.reason);
    var risk = document.createElement("span");
    risk.textContent = (a.old_probability === null ? "" : pct(a.old_probability) + " → ");
    var strong = document.createElement("strong");
    strong.textContent = pct(a.new_probability);
    risk.appendChild(strong);
    var band = document.createElement("span");
    band.className = "status " + a.new_band;
    band.textContent = " " + a.new_band;
    risk.appendChild(band);
    var td = cell(tr, risk, "num");
    td.title = "P(alive) before: " + (a.old_p_alive === null ? "–" : pct(a.old_p_alive));
    cell(tr, a.new_p_alive === null ? "–" : pct(a.new_p_alive), "num");
    cell(tr, a.clv === null ? "–" : money(a.clv), "num");
    return tr;
  }
  function stats(s) {
    if (!s) return;
    Object.keys(s).forEach(function (k) {
      var el = document.querySelector('[data-stat="' + k + '"]');
      if (el) el.textContent = (typeof s[k] === "number") ? s[k].toLocaleString("en-GB") : s[k];
    });
  }
  function apply(msg) {
    if (msg.snapshot) tbody.innerHTML = "";
    var alerts = msg.alerts || [];
    if (alerts.length) {
      var empty = tbody.querySelector("tr.empty");
      if (empty) empty.remove();
    }
    // alerts arrive newest first: insert from the oldest so the newest ends on top
    for (var i = alerts.length - 1; i >= 0; i--) {
      tbody.insertBefore(row(alerts[i], !msg.snapshot), tbody.firstChild);
    }
    while (tbody.rows.length > MAX_ROWS) tbody.deleteRow(tbody.rows.length - 1);
    stats(msg.stats);
  }
  var downSince = null;
  function connect() {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var socket = new WebSocket(scheme + location.host + "/ws/live/");
    socket.onopen = function () { delay = 1000; downSince = null; setConnection("active", "live"); };
    socket.onmessage = function (e) { apply(JSON.parse(e.data)); };
    socket.onclose = function (e) {
      if (e.code === 4401) { location.reload(); return; }
      setConnection("failed", "reconnecting…");
      downSince = downSince || Date.now();
      // an unattended wall reloads after 5 minutes down (new deploys, expired pages)
      if (wall && Date.now() - downSince > 300000) { location.reload(); return; }
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, MAX_DELAY);
    };
  }
  connect();
})();
