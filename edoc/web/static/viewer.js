// Zoom for the drawn pages and the print button: the only script of the viewer, loaded
// from this origin (the Content-Security-Policy allows no inline script).
(function () {
  "use strict";
  var scale = 1;
  function apply() {
    var pages = document.querySelectorAll("#pages img.page");
    for (var i = 0; i < pages.length; i++) {
      pages[i].style.width = (scale * 100) + "%";
      pages[i].style.maxWidth = scale > 1 ? "none" : "100%";
    }
    var box = document.getElementById("pages");
    if (box) { box.setAttribute("data-scale", String(scale)); }
  }
  document.addEventListener("click", function (ev) {
    var target = ev.target;
    if (!(target instanceof Element)) { return; }
    var zoom = target.getAttribute("data-zoom");
    if (zoom === "in") { scale = Math.min(scale * 1.5, 8); apply(); }
    else if (zoom === "out") { scale = Math.max(scale / 1.5, 0.25); apply(); }
    else if (zoom === "reset") { scale = 1; apply(); }
    else if (target.getAttribute("data-print")) { window.print(); }
  });
})();
