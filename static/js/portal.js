// Renders every <div data-figure="ID"> from the figure JSON in <script id="ID" type="application/json">.
(function () {
  function render(el) {
    var source = document.getElementById(el.dataset.figure);
    if (!source || typeof Plotly === "undefined") return;
    var fig = JSON.parse(source.textContent);
    if (!fig) return;
    Plotly.newPlot(el, fig.data, fig.layout, { responsive: true, displaylogo: false });
  }
  window.RFM = window.RFM || {};
  window.RFM.renderFigures = function (root) {
    (root || document).querySelectorAll("[data-figure]").forEach(render);
  };
  document.addEventListener("DOMContentLoaded", function () { window.RFM.renderFigures(); });
})();
