// Live job progress: the table is rendered server-side; this applies updates pushed on
// /ws/jobs/ ({id, kind, state, progress, message, error, ...}) and reconnects with backoff.
(function () {
  "use strict";
  var table = document.getElementById("jobs-table");
  if (!table) return;
  var tbody = table.tBodies[0];
  var badge = document.getElementById("jobs-connection");
  var delay = 1000;
  var MAX_DELAY = 30000;

  function setConnection(state, text) {
    if (!badge) return;
    badge.className = "status " + state;
    badge.textContent = text;
  }

  var MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  function pad(n) { return (n < 10 ? "0" : "") + n; }

  // Same form as the server-rendered rows ("23 Nov 2026 21:27:16", UTC like the server).
  function fmt(iso) {
    if (!iso) return "–";
    var d = new Date(iso);
    if (isNaN(d)) return iso;
    return d.getUTCDate() + " " + MONTHS[d.getUTCMonth()] + " " + d.getUTCFullYear() + " " +
      pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + ":" + pad(d.getUTCSeconds());
  }

  function cell(text) {
    var td = document.createElement("td");
    td.textContent = text;
    return td;
  }

  function createRow(job) {
    var tr = document.createElement("tr");
    tr.dataset.jobId = job.id;
    tr.appendChild(cell(String(job.id)));
    tr.appendChild(cell(job.kind));
    var state = document.createElement("td");
    state.innerHTML = '<span class="status" data-field="state"></span>';
    tr.appendChild(state);
    var progress = document.createElement("td");
    progress.innerHTML = '<div class="progress" role="progressbar" aria-valuemin="0" aria-valuemax="100">' +
      '<span></span></div> <small data-field="progress"></small>';
    tr.appendChild(progress);
    var message = cell("");
    message.dataset.field = "message";
    tr.appendChild(message);
    tr.appendChild(cell(job.created_by || "system"));
    tr.appendChild(cell(fmt(job.created_at)));
    var finished = cell("–");
    finished.dataset.field = "finished_at";
    tr.appendChild(finished);
    var empty = tbody.querySelector("tr.empty");
    if (empty) empty.remove();
    tbody.insertBefore(tr, tbody.firstChild);
    return tr;
  }

  function update(job) {
    if (!job || job.id === undefined) return;
    var tr = tbody.querySelector('tr[data-job-id="' + job.id + '"]') || createRow(job);
    var state = tr.querySelector('[data-field="state"]');
    state.className = "status " + job.state;
    state.textContent = job.state_display || job.state;
    var bar = tr.querySelector(".progress");
    bar.setAttribute("aria-valuenow", job.progress);
    bar.firstElementChild.style.width = job.progress + "%";
    tr.querySelector('[data-field="progress"]').textContent = job.progress + "%";
    var message = tr.querySelector('[data-field="message"]');
    message.textContent = "";
    if (job.error) {
      var err = document.createElement("span");
      err.className = "error";
      err.textContent = job.error;
      message.appendChild(err);
    } else {
      message.textContent = job.message || "";
    }
    tr.querySelector('[data-field="finished_at"]').textContent = fmt(job.finished_at);
  }

  function connect() {
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    var socket = new WebSocket(scheme + window.location.host + "/ws/jobs/");
    socket.onopen = function () {
      delay = 1000;
      setConnection("succeeded", "live");
    };
    socket.onmessage = function (event) {
      var data;
      try { data = JSON.parse(event.data); } catch (e) { return; /* ignore a malformed frame */ }
      if (data.unavailable) { setConnection("pending", data.unavailable); return; }
      update(data);
    };
    socket.onclose = function (event) {
      if (event.code === 4401) {  // the server refused us: logged out
        setConnection("failed", "logged out — reload to log in");
        return;
      }
      if (event.code === 4403) {  // the account was deactivated
        setConnection("failed", "your account was deactivated");
        return;
      }
      setConnection("pending", "reconnecting…");
      var wait = delay + Math.random() * 500;  // jitter: many pages should not reconnect in step
      delay = Math.min(delay * 2, MAX_DELAY);
      window.setTimeout(connect, wait);
    };
  }

  connect();
})();
