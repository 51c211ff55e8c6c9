// Clocks that tick in the browser, so a waiting time needs no update from the server:
// [data-since] shows the minutes:seconds since an epoch time, [data-until] counts down.
(function () {
  function mmss(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    var s = seconds % 60;
    return Math.floor(seconds / 60) + ":" + (s < 10 ? "0" : "") + s;
  }
  function tick() {
    var now = Date.now() / 1000;
    document.querySelectorAll("[data-since]").forEach(function (el) {
      el.textContent = mmss(now - parseFloat(el.dataset.since));
    });
    document.querySelectorAll("[data-until]").forEach(function (el) {
      el.textContent = mmss(parseFloat(el.dataset.until) - now);
    });
  }
  setInterval(tick, 1000);
  document.addEventListener("htmx:afterSwap", tick);
  document.addEventListener("DOMContentLoaded", tick);
})();
