// obt web UI: optional live updates. Every page works without this file (plain forms).
// Server-sent events from /events carry each torrent's live figures ("t": id -> fields)
// and the overview's ("o"); elements name what they show with data-t/data-k or data-o.
(function () {
  "use strict";
  document.querySelectorAll("button.copy").forEach(function (button) {
    if (!navigator.clipboard) { return; }
    button.hidden = false;
    button.addEventListener("click", function () {
      navigator.clipboard.writeText(button.dataset.copy).then(
        function () { button.textContent = "Copied"; },
        function () { button.textContent = "Select and copy"; });
    });
  });
  document.querySelectorAll("img[data-reload]").forEach(function (img) {
    var base = img.getAttribute("src");
    window.setInterval(function () {
      img.src = base + "?at=" + Date.now();
      document.body.dataset.reloads = String(Number(document.body.dataset.reloads || 0) + 1);
    }, Number(img.dataset.reload) * 1000);
  });
  if (!document.body.dataset.live || !window.EventSource) { return; }
  var updates = 0;
  var source = new EventSource("/events");
  source.addEventListener("update", function (event) {
    var data = JSON.parse(event.data);
    updates += 1;
    document.body.dataset.updates = String(updates);
    document.querySelectorAll("[data-t]").forEach(function (el) {
      var row = (data.t || {})[el.dataset.t];
      var key = el.dataset.k;
      if (!row || !(key in row)) { return; }
      if (el.tagName === "PROGRESS") { el.value = row[key]; } else { el.textContent = row[key]; }
    });
    document.querySelectorAll("[data-o]").forEach(function (el) {
      var value = (data.o || {})[el.dataset.o];
      if (typeof value === "string") { el.textContent = value; }
    });
  });
}());
