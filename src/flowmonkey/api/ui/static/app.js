// flowmonkey dashboard: progressive enhancement only (every page reads without it).
// No inline scripts anywhere: the Content-Security-Policy allows scripts from 'self' only.
(function () {
  "use strict";

  // Confirm every action form before it is sent.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });

  function drawGraphs() {
    if (!window.mermaid || !document.querySelector("pre.mermaid")) return;
    var dark = window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches;
    window.mermaid.initialize({ startOnLoad: false, securityLevel: "strict", theme: dark ? "dark" : "default" });
    window.mermaid.run({ querySelector: "pre.mermaid" });
  }

  var TERMINAL = ["execution.completed", "execution.failed", "execution.cancelled"];

  // The live event log of an execution page (SSE, signed in by the session cookie).
  function followEvents() {
    var list = document.getElementById("events");
    var url = list && list.getAttribute("data-stream");
    if (!url || !window.EventSource) return;
    var source = new EventSource(url);
    var reloadSoon = null;
    function onEvent(message) {
      var data = JSON.parse(message.data);
      var item = document.createElement("li");
      var seq = document.createElement("code");
      seq.textContent = String(data.sequence);
      var type = document.createElement("strong");
      type.textContent = data.type;
      item.append(seq, " ", type, " ", data.timestamp || "");
      list.appendChild(item);
      list.scrollTop = list.scrollHeight;
      if (TERMINAL.indexOf(data.type) >= 0) {
        source.close();
      }
      // Re-read the page (status, graph, timeline) once the burst of events settles.
      if (reloadSoon) window.clearTimeout(reloadSoon);
      reloadSoon = window.setTimeout(function () { window.location.reload(); }, 400);
    }
    source.onmessage = onEvent;
    // The stream names each event (event: <type>): one listener per type the engine emits.
    var types = list.getAttribute("data-types");
    (types ? types.split(" ") : []).forEach(function (t) { source.addEventListener(t, onEvent); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    drawGraphs();
    followEvents();
  });
})();
