// Live progress of campaign planning on the campaign page: listens on /ws/jobs/, shows jobs of kind
// "campaigns.plan" for this page's campaign in #plan-jobs, and reloads the page when one finishes.
(function () {
  "use strict";
  var box = document.getElementById("plan-jobs");
  if (!box) return;
  var KIND = "campaigns.plan";
  var known = {};
  box.querySelectorAll("[data-job-id]").forEach(function (el) { known[el.dataset.jobId] = true; });
  var delay = 1000;

  function row(job) {
    var el = box.querySelector('[data-job-id="' + job.id + '"]');
    if (!el) {
      el = document.createElement("div");
      el.className = "uplift-job";
      el.dataset.jobId = job.id;
      el.innerHTML = '<span class="status" data-field="state"></span> job #' + job.id +
        ' <div class="progress" role="progressbar" aria-valuemin="0" aria-valuemax="100"><span></span></div>' +
        ' <small data-field="progress"></small> <span data-field="message"></span>';
      box.insertBefore(el, box.firstChild);
    }
    return el;
  }

  function update(job) {
    if (!job || job.kind !== KIND || !known[String(job.id)]) return;
    box.hidden = false;
    var el = row(job);
    var state = el.querySelector('[data-field="state"]');
    state.className = "status " + job.state;
    state.textContent = job.state_display || job.state;
    var bar = el.querySelector(".progress");
    bar.setAttribute("aria-valuenow", job.progress);
    bar.firstElementChild.style.width = job.progress + "%";
    el.querySelector('[data-field="progress"]').textContent = job.progress + "%";
    var message = el.querySelector('[data-field="message"]');
    message.textContent = job.error || job.message || "";
    message.className = job.error ? "error" : "";
    if ((job.state === "succeeded" || job.state === "failed") && el.dataset.reloaded !== "1") {
      el.dataset.reloaded = "1";
      window.setTimeout(function () { window.location.reload(); }, 1500);
    }
  }

  function connect() {
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    var socket = new WebSocket(scheme + window.location.host + "/ws/jobs/");
    socket.onopen = function () { delay = 1000; };
    socket.onmessage = function (event) {
      try { update(JSON.parse(event.data)); } catch (e) { /* ignore a malformed frame */ }
    };
    socket.onclose = function (event) {
      if (event.code === 4401) return;
      var wait = delay + Math.random() * 500;
      delay = Math.min(delay * 2, 30000);
      window.setTimeout(connect, wait);
    };
  }
  connect();
})();
