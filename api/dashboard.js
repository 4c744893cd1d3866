/* The batchcall dashboard: reads GET /progress/batches once a second with
 * the tenant's key in an Authorization header and draws the batches, their
 * progress, the selected batch's outcomes (inline SVG) and the tenant's live
 * calls against its limit. The key is kept in sessionStorage (this tab only)
 * and never put in a URL. Every value from the API goes into the page as
 * text (textContent), never as markup. */
"use strict";
(function () {
  var KEY = "batchcall.key", POLL_MS = 1000, SVG = "http://www.w3.org/2000/svg";
  var COLORS = { agent_hangup: "#2e9d5b", client_hangup: "#4caf7d", max_duration: "#7cb342",
                 dial_busy: "#f59e0b", dial_no_answer: "#fbbf24", dial_failed: "#d64545",
                 error: "#9b1c1c", api_cancelled: "#9aa0a6" };
  var selected = null, timer = null;

  function $(id) { return document.getElementById(id); }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = String(text);
    return e;
  }

  function duration(s) {
    if (s === null || s === undefined || s < 0) return "-";
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m" + String(s % 60).padStart(2, "0") + "s";
    return Math.floor(s / 3600) + "h" + String(Math.floor(s % 3600 / 60)).padStart(2, "0") + "m";
  }

  function showLogin(msg) {
    if (timer) { clearTimeout(timer); timer = null; }
    $("main").hidden = true;
    $("tenant").hidden = true;
    $("forget").hidden = true;
    $("updated").textContent = "";
    $("login").hidden = false;
    $("login-error").textContent = msg || "";
    $("key").value = "";
    $("key").focus();
  }

  function finished(b) { return b.counts.completed + b.counts.failed + b.counts.cancelled; }

  function bar(b) {
    var d = el("div", "bar"), total = b.total || 1;
    ["completed", "failed", "cancelled", "live"].forEach(function (k) {
      var s = el("span", k);
      s.style.width = (100 * b.counts[k] / total) + "%";
      s.title = k + " " + b.counts[k];
      d.appendChild(s);
    });
    return d;
  }

  function row(b) {
    var tr = el("tr", "batch" + (b.id === selected ? " selected" : ""));
    var name = el("td", "name"), st = el("td"), pr = el("td"), f = finished(b);
    tr.dataset.batchId = b.id;
    name.appendChild(el("div", null, b.name));
    name.appendChild(el("div", "id", b.id));
    st.appendChild(el("span", "pill status " + b.status, b.status.replace("_", " ")));
    pr.appendChild(bar(b));
    pr.appendChild(el("div", "progress-text finished",
                      f + " / " + b.total + " finished (" + Math.floor(100 * f / (b.total || 1)) + "%)"));
    [name, st, pr,
     el("td", "num completed", b.counts.completed), el("td", "num failed", b.counts.failed),
     el("td", "num cancelled", b.counts.cancelled),
     el("td", "num live", b.counts.live + " / " + b.target_concurrency_limit),
     el("td", "num rate", b.done ? "-" : b.rate_per_min.toFixed(1)),
     el("td", "num eta", b.done ? "done" : duration(b.eta_seconds))].forEach(function (td) {
      tr.appendChild(td);
    });
    tr.addEventListener("click", function () { selected = b.id; poll(); });
    return tr;
  }

  /* A horizontal bar per end reason, longest first, scaled to the largest. */
  function outcomes(b) {
    var svg = $("outcomes"), items = Object.keys(b.outcomes).map(function (k) {
      return [k, b.outcomes[k]];
    }).sort(function (x, y) { return y[1] - x[1] || (x[0] < y[0] ? -1 : 1); });
    var max = items.length ? items[0][1] : 1, h = 26, label = 130, width = 320;
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    svg.setAttribute("height", Math.max(40, items.length * h + 8));
    if (!items.length) {
      var t = document.createElementNS(SVG, "text");
      t.setAttribute("x", 0); t.setAttribute("y", 24); t.setAttribute("fill", "#656d76");
      t.textContent = "no call has ended yet";
      svg.appendChild(t);
      return;
    }
    items.forEach(function (it, i) {
      var g = document.createElementNS(SVG, "g"), y = i * h + 4;
      var name = document.createElementNS(SVG, "text"), r = document.createElementNS(SVG, "rect");
      var n = document.createElementNS(SVG, "text"), w = Math.max(2, width * it[1] / max);
      g.setAttribute("class", "outcome");
      g.setAttribute("data-reason", it[0]);
      name.setAttribute("x", 0); name.setAttribute("y", y + 15);
      name.setAttribute("font-size", "13");
      name.textContent = it[0];
      r.setAttribute("x", label); r.setAttribute("y", y + 2);
      r.setAttribute("width", w); r.setAttribute("height", h - 8); r.setAttribute("rx", 3);
      r.setAttribute("fill", COLORS[it[0]] || "#8b949e");
      n.setAttribute("x", label + w + 6); n.setAttribute("y", y + 15);
      n.setAttribute("font-size", "13"); n.setAttribute("class", "count");
      n.textContent = it[1];
      g.appendChild(name); g.appendChild(r); g.appendChild(n);
      svg.appendChild(g);
    });
  }

  function legend(b) {
    var d = $("legend");
    while (d.firstChild) d.removeChild(d.firstChild);
    [["queued", "#e6e8eb"], ["live", "#3b82f6"], ["completed", "#2e9d5b"],
     ["failed", "#d64545"], ["cancelled", "#9aa0a6"]].forEach(function (k) {
      var s = el("span", "count-" + k[0]), i = el("i");
      i.style.background = k[1];
      s.appendChild(i);
      s.appendChild(document.createTextNode(k[0] + " " + b.counts[k[0]]));
      d.appendChild(s);
    });
  }

  function render(doc) {
    var tbody = document.querySelector("#batches tbody"), t = doc.tenant, b = null;
    $("login").hidden = true;
    $("main").hidden = false;
    $("tenant").hidden = false;
    $("forget").hidden = false;
    $("tenant-live").textContent = t.live_calls + " / " + t.concurrency_limit;
    $("tenant-gauge").style.width = Math.min(100, 100 * t.live_calls / (t.concurrency_limit || 1)) + "%";
    $("updated").textContent = "updated " + new Date().toLocaleTimeString();
    if (!doc.data.some(function (x) { return x.id === selected; })) {
      /* Follow the newest batch that still runs, else the newest. */
      var running = doc.data.filter(function (x) { return !x.done; });
      selected = (running[0] || doc.data[0] || {}).id || null;
    }
    while (tbody.firstChild) tbody.removeChild(tbody.firstChild);
    doc.data.forEach(function (x) {
      tbody.appendChild(row(x));
      if (x.id === selected) b = x;
    });
    if (!doc.data.length) {
      var tr = el("tr"), td = el("td", "empty", "No batches yet.");
      td.colSpan = 9;
      tr.appendChild(td);
      tbody.appendChild(tr);
    }
    $("detail").hidden = !b;
    if (b) {
      $("detail-name").textContent = b.name;
      outcomes(b);
      legend(b);
      $("batch-live").textContent = b.counts.live + " / " + b.target_concurrency_limit;
      $("batch-gauge").style.width =
        Math.min(100, 100 * b.counts.live / (b.target_concurrency_limit || 1)) + "%";
    }
  }

  function schedule(ms) {
    if (timer) clearTimeout(timer);
    timer = setTimeout(poll, ms);
  }

  function poll() {
    var key = sessionStorage.getItem(KEY);
    if (timer) { clearTimeout(timer); timer = null; }
    if (!key) return showLogin();
    fetch("/progress/batches?limit=20", {
      headers: { "Authorization": "Bearer " + key }, cache: "no-store", credentials: "omit"
    }).then(function (res) {
      if (res.status === 401 || res.status === 403) {
        sessionStorage.removeItem(KEY);
        return showLogin(res.status === 401 ? "That key was refused." :
                         "That key cannot read batches (use a secret key).");
      }
      if (res.status === 429) {
        $("updated").textContent = "rate limited; waiting";
        return schedule(1000 * (parseInt(res.headers.get("Retry-After"), 10) || 5));
      }
      if (!res.ok) {
        $("updated").textContent = "the API answered " + res.status + "; retrying";
        return schedule(POLL_MS);
      }
      return res.json().then(function (doc) { render(doc); schedule(POLL_MS); });
    }).catch(function () {
      $("updated").textContent = "cannot reach the API; retrying";
      schedule(POLL_MS);
    });
  }

  $("login-form").addEventListener("submit", function (e) {
    e.preventDefault();
    sessionStorage.setItem(KEY, $("key").value.trim());
    $("key").value = "";
    poll();
  });
  $("forget").addEventListener("click", function () {
    sessionStorage.removeItem(KEY);
    showLogin("Key forgotten.");
  });
  poll();
})();
