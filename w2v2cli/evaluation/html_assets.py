"""The style sheet and the script inlined into the report pages of ``html_report``.

Kept as Python strings, not package data files, so that every install (wheel, sdist,
editable) has them. The script uses no library and no network: it reads the page's
embedded data, builds the utterance table, sorts and filters it, and plays an utterance's
audio when its row is clicked, highlighting the hypothesis words as they are spoken.
"""

STYLE = """
:root { --ok: #2e7d32; --sub: #b26a00; --del: #c62828; --ins: #1565c0; --line: #ddd;
  --bg-s: #fff3d6; --bg-d: #fde2e2; --bg-i: #dfeafd; --muted: #666; }
* { box-sizing: border-box; }
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0;
  padding: 16px 24px 80px; color: #222; background: #fff; }
h1 { font-size: 22px; margin: 0 0 8px; } h2 { font-size: 17px; margin: 22px 0 8px; }
h3 { font-size: 15px; margin: 0 0 6px; }
.note { color: var(--muted); font-size: 12px; margin: 4px 0; }
dl.about { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; margin: 0;
  font-size: 13px; } dl.about dt { color: var(--muted); } dl.about dd { margin: 0; }
table { border-collapse: collapse; }
table.summary th, table.summary td { padding: 4px 10px; border-bottom: 1px solid var(--line); }
table.summary th { text-align: right; background: #f6f6f6; }
table.summary th:first-child, td.name { text-align: left; font-weight: 600; }
tr.chosen td { background: #e5f4e5; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.panels { display: grid; grid-template-columns: repeat(auto-fit, minmax(440px, 1fr)); gap: 16px; }
.panel { border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px; }
.charts { display: flex; flex-wrap: wrap; gap: 4px 16px; }
svg.chart { display: block; max-width: 100%; height: auto; margin: 4px 0 8px; }
svg text { font: 10px system-ui, sans-serif; fill: #444; text-anchor: middle; }
svg text.end { text-anchor: end; } svg text.label { font-size: 11px; fill: #222; }
svg text.note { text-anchor: start; fill: var(--muted); }
svg .axis { stroke: #888; } svg .grid { stroke: #eee; } svg .frame { fill: none; stroke: #ccc; }
svg .bar { fill: #5b8def; } svg .bar.ok { fill: #66bb6a; }
svg .pt { fill: #5b8def; fill-opacity: .65; cursor: pointer; } svg .pt.ok { fill: #66bb6a; }
svg .pt.clipped { fill: var(--del); } svg .pt:hover { stroke: #000; }
svg .cell text { font-size: 11px; fill: #111; } svg .cell.best text { font-weight: 700; }
svg .chosen { fill: none; stroke: #000; stroke-width: 3; }
.tops { display: flex; gap: 12px; flex-wrap: wrap; align-items: flex-start; }
table.top { font-size: 12px; min-width: 120px; }
table.top caption { text-align: left; font-weight: 600; padding-bottom: 2px; }
table.top td { padding: 1px 6px; border-bottom: 1px solid #f0f0f0; }
table.top td.none { color: var(--muted); }
table.substitutions caption { color: var(--sub); } table.deletions caption { color: var(--del); }
table.insertions caption { color: var(--ins); }
.legend .swatch { display: inline-block; width: 14px; height: 14px; vertical-align: -2px;
  border: 1px solid #aaa; }
.controls { display: flex; gap: 10px; align-items: center; margin: 6px 0; flex-wrap: wrap; }
#filter { width: 320px; padding: 4px 6px; } #shown { color: var(--muted); }
#utterances { width: 100%; font-size: 13px; }
#utterances th { position: sticky; top: 0; background: #f6f6f6; text-align: left;
  padding: 4px 6px; border-bottom: 1px solid #ccc; vertical-align: bottom; font-weight: 600; }
#utterances th[data-sort] { cursor: pointer; user-select: none; white-space: nowrap; }
#utterances th[aria-sort=ascending]::after { content: " \\25B2"; font-size: 9px; }
#utterances th[aria-sort=descending]::after { content: " \\25BC"; font-size: 9px; }
#utterances td { padding: 4px 6px; border-bottom: 1px solid #eee; vertical-align: top; }
#utterances tbody tr { cursor: pointer; }
#utterances tbody tr:hover { background: #fafafa; }
#utterances tr.playing { background: #eef6ff; outline: 2px solid #90caf9; }
#utterances tr.flash { animation: flash 1.2s; }
@keyframes flash { from { background: #fff59d; } to { background: transparent; } }
#utterances tr.unreachable td.id::after { content: " \\26A0"; color: var(--del); }
td.id { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12px;
  word-break: break-all; max-width: 220px; }
td.na { color: var(--muted); }
.plain { color: #555; line-height: 1.45; }
.al { line-height: 1.2; margin-bottom: 3px; }
.al .dec { display: inline-block; min-width: 56px; color: var(--muted); font-size: 11px;
  vertical-align: top; }
.w { display: inline-flex; flex-direction: column; margin: 0 1px 2px 0; padding: 0 2px;
  border-radius: 3px; vertical-align: top; }
.w b, .w i { font-weight: normal; font-style: normal; white-space: pre; }
.w b { color: #555; } .w i { color: #111; }
.w b:empty::before, .w i:empty::before { content: "\\2014"; color: #999; }
.w.S { background: var(--bg-s); } .w.S b, .w.S i { color: var(--sub); }
.w.D { background: var(--bg-d); } .w.D b { color: var(--del); text-decoration: line-through; }
.w.I { background: var(--bg-i); } .w.I i { color: var(--ins); }
th .w { display: inline; padding: 0 3px; }
.w i.now { background: #ffd54f; color: #000; border-radius: 2px; }
#player-bar { position: fixed; left: 0; right: 0; bottom: 0; background: #fafafa;
  border-top: 1px solid #ccc; padding: 6px 16px; display: flex; gap: 12px;
  align-items: center; }
#player { height: 32px; width: 360px; } #player-status.bad { color: var(--del); font-weight: 600; }
ul#failed { margin: 4px 0; padding-left: 20px; font-size: 13px; }
"""

EVAL_SCRIPT = """
(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("w2v2-data").textContent);
  D.rows = D.rows.map(function (values) {  // stored as columns + lists of values
    var row = {};
    D.columns.forEach(function (c, i) { row[c] = values[i]; });
    return row;
  });
  var names = D.decoders.map(function (d) { return d.decoder; });
  var table = document.getElementById("utterances");
  var tbody = table.tBodies[0];
  var player = document.getElementById("player");
  var status = document.getElementById("player-status");
  var filter = document.getElementById("filter");
  var show = document.getElementById("show");
  var shown = document.getElementById("shown");

  function esc(s) {
    return String(s).replace(/[&<>"]/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c];
    });
  }
  function words(s) { return s ? s.split(" ") : []; }
  function errors(row) { return row.substitutions + row.deletions + row.insertions; }

  // One row's word alignment: a column per word, reference above, hypothesis below.
  function alignment(r) {
    var row = D.rows[r], ops = D.ops[r], ref = words(row.ref), hyp = words(row.hyp);
    var i = 0, j = 0, out = [];
    for (var n = 0; n < ops.length; n++) {
      var op = ops[n];
      var a = op === "I" ? "" : esc(ref[i++]);
      var b = op === "D" ? "<i></i>" : '<i data-k="' + j + '">' + esc(hyp[j++]) + "</i>";
      out.push('<span class="w ' + op + '"><b>' + a + "</b>" + b + "</span>");
    }
    return out.join(" ");
  }

  // The table: one row per utterance, every decoder's numbers and alignment side by side.
  // Alignments are drawn when their row comes near the screen (fill): a thousand rows of
  // word columns would take seconds to lay out at once, and again on every sort.
  var keys = [], texts = [], html = [];
  D.utterances.forEach(function (u, n) {
    var cells = '<td class="num">' + (n + 1) + '</td><td class="id">' + esc(u.id) +
      '</td><td class="num">' + (u.duration == null ? "" : u.duration.toFixed(1)) + "</td>";
    var key = [n, u.id, u.duration == null ? -1 : u.duration], text = [u.id], plain = [];
    u.rows.forEach(function (r) {
      if (r === null) {
        cells += '<td class="num na">\\u2013</td><td class="num na">\\u2013</td>';
        key.push(Infinity, Infinity);
        return;
      }
      var row = D.rows[r];
      cells += '<td class="num wer">' + (100 * row.wer).toFixed(1) + '</td><td class="num">' +
        errors(row) + "</td>";
      key.push(row.wer, errors(row));
      text.push(row.ref, row.hyp, row.reference, row.hypothesis);
      plain.push(esc(row.ref) + "<br>" + esc(row.hyp));
    });
    keys.push(key);
    texts.push(text.join("\\n").toLowerCase());
    html.push('<tr data-u="' + n + '" tabindex="0">' + cells + '<td class="text">' +
      '<div class="plain">' + plain.join("<br>") + "</div></td></tr>");
  });
  tbody.innerHTML = html.join("");
  var trs = Array.prototype.slice.call(tbody.rows);

  function fill(tr) {
    if (tr.dataset.filled) return;
    tr.dataset.filled = "1";
    var al = "";
    D.utterances[+tr.dataset.u].rows.forEach(function (r, d) {
      var label = names.length > 1 ? '<span class="dec">' + esc(names[d]) + "</span>" : "";
      al += r === null ?
        '<div class="al">' + label + "<em>not scored (see Failed)</em></div>" :
        '<div class="al" data-r="' + r + '">' + label + alignment(r) + "</div>";
    });
    tr.cells[tr.cells.length - 1].innerHTML = al;
  }
  if (window.IntersectionObserver) {
    var near = new IntersectionObserver(function (entries) {
      entries.forEach(function (e) {
        if (e.isIntersecting) { fill(e.target); near.unobserve(e.target); }
      });
    }, { rootMargin: "1000px 0px" });
    trs.forEach(function (tr) { near.observe(tr); });
  } else {
    trs.forEach(fill);
  }

  // Sorting: click a header; again for the other direction.
  Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
    if (!th.dataset.sort) return;
    th.addEventListener("click", function () {
      var down = th.getAttribute("aria-sort") === "ascending";
      Array.prototype.forEach.call(table.tHead.rows[0].cells, function (h) {
        h.removeAttribute("aria-sort");
      });
      th.setAttribute("aria-sort", down ? "descending" : "ascending");
      var sign = down ? -1 : 1;
      var order = trs.slice().sort(function (x, y) {
        var a = keys[x.dataset.u][col], b = keys[y.dataset.u][col];
        var c = th.dataset.sort === "str" ? String(a).localeCompare(String(b)) :
          (a < b ? -1 : a > b ? 1 : 0);
        return sign * c || x.dataset.u - y.dataset.u;
      });
      var fragment = document.createDocumentFragment();
      order.forEach(function (tr) { fragment.appendChild(tr); });
      tbody.appendChild(fragment);
    });
  });

  // Filtering: words of any text or the id, and which utterances to show.
  function matches(n, what) {
    var rows = D.utterances[n].rows.filter(function (r) { return r !== null; });
    var wrong = rows.some(function (r) { return errors(D.rows[r]) > 0; });
    if (what === "errors") return wrong;
    if (what === "correct") return !wrong;
    if (what === "differ") {
      return rows.some(function (r) { return D.rows[r].hyp !== D.rows[rows[0]].hyp; });
    }
    return true;
  }
  function apply() {
    var needle = filter.value.trim().toLowerCase(), count = 0;
    trs.forEach(function (tr) {
      var n = +tr.dataset.u;
      var on = (!needle || texts[n].indexOf(needle) >= 0) && matches(n, show.value);
      tr.hidden = !on;
      if (on) count++;
    });
    shown.textContent = "showing " + count + " of " + trs.length;
  }
  filter.addEventListener("input", apply);
  show.addEventListener("change", apply);
  apply();

  // Playing: a click on a row plays its audio; words light up as they are spoken.
  var current = null, frame = 0;
  function timed(tr) {
    var out = [];
    Array.prototype.forEach.call(tr.querySelectorAll(".al[data-r]"), function (div) {
      var times = D.rows[div.dataset.r].hyp_times;
      if (!times) return;
      Array.prototype.forEach.call(div.querySelectorAll("i[data-k]"), function (el) {
        var t = times[el.dataset.k];
        if (t) out.push([el, t[0], t[1]]);
      });
    });
    return out;
  }
  function highlight() {
    if (!current) return;
    var t = player.currentTime;
    current.words.forEach(function (w) { w[0].classList.toggle("now", w[1] <= t && t < w[2]); });
  }
  function tick() { highlight(); if (!player.paused) frame = requestAnimationFrame(tick); }
  function say(text, bad) { status.textContent = text; status.className = bad ? "bad" : ""; }
  function play(tr) {
    var u = D.utterances[+tr.dataset.u];
    if (current) {
      current.tr.classList.remove("playing");
      current.words.forEach(function (w) { w[0].classList.remove("now"); });
    }
    fill(tr);
    current = { tr: tr, u: u, words: timed(tr) };
    tr.classList.add("playing");
    say("Loading " + u.id + " \\u2026");
    player.src = u.link;
    var started = player.play();
    if (started && started.catch) started.catch(function () {});  // "error" says why
  }
  player.addEventListener("playing", function () {
    if (!current) return;
    say("Playing " + current.u.id + (current.words.length ? "" : " (no word times)"));
    cancelAnimationFrame(frame);
    frame = requestAnimationFrame(tick);
  });
  player.addEventListener("pause", highlight);
  player.addEventListener("seeked", highlight);
  player.addEventListener("error", function () {
    if (!current) return;
    current.tr.classList.add("unreachable");
    say("Cannot load " + decodeURIComponent(current.u.link) + " from where this page is " +
      "opened: audio links are relative to the folder the report was written to; open " +
      "the report there, or keep the audio beside it.", true);
  });
  tbody.addEventListener("click", function (ev) {
    var tr = ev.target.closest("tr");
    if (tr) play(tr);
  });
  tbody.addEventListener("keydown", function (ev) {
    if (ev.key === "Enter" && ev.target.tagName === "TR") play(ev.target);
  });

  // A point of a scatter plot shows its utterance in the table.
  document.addEventListener("click", function (ev) {
    var n = ev.target.getAttribute && ev.target.getAttribute("data-u");
    if (n === null || n === undefined || ev.target.tagName === "TR") return;
    var tr = trs[+n];
    if (!tr || tbody.contains(ev.target)) return;
    if (tr.hidden) { filter.value = ""; show.value = "all"; apply(); }
    tr.scrollIntoView({ block: "center" });
    tr.classList.remove("flash");
    void tr.offsetWidth;
    tr.classList.add("flash");
  });
})();
"""
