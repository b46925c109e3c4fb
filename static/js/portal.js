// Renders every <div data-figure="ID"> from the figure JSON in <script id="ID" type="application/json">.
(function () {
  function render(el) {
    var source = document.getElementById(el.dataset.figure);
    if (!source || typeof Plotly === "undefined") return;
    var fig = JSON.parse(source.textContent);
    if (!fig) return;
    Plotly.newPlot(el, fig.data, fig.layout, window.RFM.plotlyConfig);
  }
  window.RFM = window.RFM || {};
  // One toolbar for every chart: what a marketer uses (save as image, zoom, reset), nothing else.
  window.RFM.plotlyConfig = {
    responsive: true,
    displaylogo: false,
    modeBarButtons: [["toImage", "zoom2d", "resetScale2d"]],
    toImageButtonOptions: { format: "png", scale: 2 }
  };
  window.RFM.renderFigures = function (root) {
    (root || document).querySelectorAll("[data-figure]").forEach(render);
  };
  document.addEventListener("DOMContentLoaded", function () { window.RFM.renderFigures(); });
})();
