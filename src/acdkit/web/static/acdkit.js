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

// A live fragment (server-sent) replaces a panel while its user may be choosing a pause
// reason or typing an answer. What the user changed and has not sent yet is carried into the
// new fragment: a control is known by its form's action, the form's hidden fields (the task
// or agent it acts on; not the csrf token) and its name, so a choice never moves to another
// task's form.
(function () {
  var kept = null;
  function key(el) {
    var form = el.form;
    if (!form || !el.name || el.type === "hidden") return null;
    var parts = [form.getAttribute("action"), el.name];
    form.querySelectorAll("input[type=hidden]").forEach(function (h) {
      if (h.name !== "csrf") parts.push(h.name + "=" + h.value);
    });
    return parts.join("|");
  }
  function changed(el) {
    if (el.tagName === "SELECT") {
      return Array.prototype.some.call(el.options, function (o) {
        return o.selected !== o.defaultSelected;
      });
    }
    return el.value !== el.defaultValue;
  }
  function controls(root) {
    return root.querySelectorAll("select, input, textarea");
  }
  document.addEventListener("htmx:sseBeforeMessage", function (e) {
    kept = {};
    controls(e.target).forEach(function (el) {
      var k = key(el);
      if (k && changed(el)) kept[k] = el.value;
    });
  });
  document.addEventListener("htmx:sseMessage", function (e) {
    var was = kept;
    kept = null;
    if (!was) return;
    controls(e.target).forEach(function (el) {
      var k = key(el);
      if (k === null || !(k in was)) return;
      if (el.tagName === "SELECT" && !Array.prototype.some.call(el.options, function (o) {
        return o.value === was[k];
      })) return;  // the choice is gone from the new list
      el.value = was[k];
    });
  });
})();
