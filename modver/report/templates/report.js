// modver report: the runs table, metrics, curves, params and versions, drawn as SVG.
// Hand-written for modver (no library): the data is the JSON in <script id="data">.
"use strict";
(function () {
  const D = JSON.parse(document.getElementById("data").textContent);
  const COLOURS = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];
  const NS = "http://www.w3.org/2000/svg";
  const $ = (id) => document.getElementById(id);
  const col = {};
  D.columns.forEach((c, i) => { col[c.name] = i; });
  const metrics = D.columns.filter((c) => c.name.startsWith("metric.")).map((c) => c.name);
  const stages = D.columns.filter((c) => c.name.startsWith("version.")).map((c) => c.name);
  const params = D.columns.filter((c) => c.name.startsWith("param.")).map((c) => c.name);
  const isNum = (v) => typeof v === "number" && isFinite(v);
  const lowerIsBetter = (name) => /loss|err|time|duration|mse|mae|rmse/i.test(name);
  let visible = D.rows.map((_, i) => i);  // positions in D.rows, in start order
  let sortBy = null, sortDir = 1;

  function fmt(v) {
    if (v === null || v === undefined) return "–";
    if (typeof v === "number") return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(4)));
    return String(v);
  }
  function esc(s) { return String(s).replace(/[&<>"]/g, (ch) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[ch]); }
  function el(tag, attrs, parent) {
    const node = document.createElementNS(NS, tag);
    for (const k in attrs) node.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(node);
    return node;
  }

  // -- colour by a stage's version ------------------------------------------------------------
  const colourBy = $("colour-by");
  stages.forEach((s) => colourBy.add(new Option(s.slice(8), s)));
  const distinct = (c) => new Set(D.rows.map((r) => r[col[c]])).size;
  if (stages.length) colourBy.value = stages.reduce((a, b) => (distinct(b) > distinct(a) ? b : a));
  function versionColour() {
    const c = colourBy.value;
    const labels = c ? [...new Set(D.rows.map((r) => r[col[c]]))].sort((a, b) => String(a).localeCompare(String(b), undefined, { numeric: true })) : [];
    const of = {};
    labels.forEach((l, i) => { of[l] = COLOURS[i % COLOURS.length]; });
    return { labels, of, pick: (row) => (c ? of[D.rows[row][col[c]]] : COLOURS[0]) };
  }

  // -- the runs table -------------------------------------------------------------------------
  function best(name) {
    const values = visible.map((i) => D.rows[i][col[name]]).filter(isNum);
    if (!values.length) return null;
    return lowerIsBetter(name) ? Math.min(...values) : Math.max(...values);
  }
  function drawTable() {
    const head = D.columns.map((c, i) => {
      const cls = sortBy === i ? (sortDir > 0 ? "sorted-asc" : "sorted-desc") : "";
      return `<th data-col="${i}" class="${cls}" title="${esc(c.name)}">${esc(c.header)}</th>`;
    }).join("");
    document.querySelector("#runs-table thead").innerHTML = `<tr>${head}</tr>`;
    const bests = D.columns.map((c) => (c.name.startsWith("metric.") ? best(c.name) : null));
    const body = [];
    for (const i of visible) {
      const row = D.rows[i];
      const cells = row.map((v, j) => {
        const cls = [isNum(v) ? "num" : "", bests[j] !== null && v === bests[j] ? "best" : "", j === col.status ? "status-" + v : ""].join(" ").trim();
        const title = j === col.run ? ` title="${esc(D.runs[i])}"` : "";
        return `<td class="${cls}"${title}>${esc(fmt(v))}</td>`;
      });
      body.push(`<tr data-run="${esc(D.runs[i])}">${cells.join("")}</tr>`);
    }
    document.querySelector("#runs-table tbody").innerHTML = body.join("");
    $("count").textContent = `${visible.length} of ${D.rows.length} runs`;
  }
  function compare(a, b) {
    const x = D.rows[a][sortBy], y = D.rows[b][sortBy];
    const mx = x === null || x === undefined, my = y === null || y === undefined;
    if (mx || my) return mx === my ? a - b : mx ? 1 : -1;  // missing values last, either way
    if (isNum(x) && isNum(y)) return (x - y) * sortDir || a - b;
    return String(x).localeCompare(String(y), undefined, { numeric: true }) * sortDir || a - b;
  }
  document.querySelector("#runs-table thead").addEventListener("click", (e) => {
    const th = e.target.closest("th");
    if (!th) return;
    const i = Number(th.dataset.col);
    sortDir = sortBy === i ? -sortDir : (D.columns[i].name.startsWith("metric.") && !lowerIsBetter(D.columns[i].name) ? -1 : 1);
    sortBy = i;
    visible.sort(compare);
    drawTable();
  });

  // filter: words match any cell; column<op>value compares one column (its header, its full
  // name, or the one column whose name ends with it: "scale" for param.prep.scale, as --where)
  function columnOf(name) {
    const exact = D.columns.findIndex((c) => c.header === name || c.name === name);
    if (exact >= 0) return exact;
    const ends = D.columns.map((c, i) => [c, i]).filter(([c]) => c.name.endsWith("." + name));
    return ends.length === 1 ? ends[0][1] : -1;
  }
  function matcher(text) {
    const tests = text.trim().split(/\s+/).filter(Boolean).map((term) => {
      const m = term.match(/^([^<>=!]+)(>=|<=|!=|=|<|>)(.*)$/);
      const j = m ? columnOf(m[1]) : -1;
      if (!m || j < 0) {
        const needle = term.toLowerCase();
        return (row, i) => D.runs[i].toLowerCase().includes(needle) || row.some((v) => fmt(v).toLowerCase().includes(needle));
      }
      const want = m[3], num = Number(want);
      return (row) => {
        const v = row[j];
        if (v === null || v === undefined) return m[2] === "!=";
        const a = isNum(v) && want !== "" && !isNaN(num) ? v : String(v), b = isNum(v) && !isNaN(num) ? num : want;
        return { ">=": a >= b, "<=": a <= b, "!=": a != b, "=": a == b, "<": a < b, ">": a > b }[m[2]];
      };
    });
    return (i) => tests.every((t) => t(D.rows[i], i));
  }
  $("filter").addEventListener("input", () => {
    const keep = matcher($("filter").value);
    visible = D.rows.map((_, i) => i).filter(keep);
    if (sortBy !== null) visible.sort(compare);
    drawAll();
  });

  // -- charts ---------------------------------------------------------------------------------
  function scale(lo, hi, a, b) {
    if (!(hi > lo)) { lo -= 0.5; hi += 0.5; }
    return (v) => a + ((v - lo) / (hi - lo)) * (b - a);
  }
  function extent(values) {
    let lo = Infinity, hi = -Infinity;
    for (const v of values) if (isNum(v)) { if (v < lo) lo = v; if (v > hi) hi = v; }
    return lo <= hi ? [lo, hi] : [0, 1];
  }
  function frame(parent, w, h, title, ylo, yhi, xlabels) {
    const box = document.createElement("div");
    box.className = "chart";
    if (title) box.innerHTML = `<h3>${esc(title)}</h3>`;
    parent.appendChild(box);
    const svg = el("svg", { width: w, height: h, viewBox: `0 0 ${w} ${h}` }, box);
    el("line", { x1: 44, y1: h - 20, x2: w - 6, y2: h - 20, class: "axis" }, svg);
    el("line", { x1: 44, y1: 6, x2: 44, y2: h - 20, class: "axis" }, svg);
    for (const [v, y] of [[yhi, 10], [ylo, h - 22]]) el("text", { x: 40, y: y + 4, "text-anchor": "end" }, svg).textContent = fmt(v);
    if (xlabels) {
      el("text", { x: 48, y: h - 6 }, svg).textContent = xlabels[0];
      el("text", { x: w - 6, y: h - 6, "text-anchor": "end" }, svg).textContent = xlabels[1];
    }
    return svg;
  }
  function legend(colours) {
    $("legend").innerHTML = colours.labels.map((l) => `<span><i style="background:${colours.of[l]}"></i>${esc(colourBy.value.slice(8))}@${esc(fmt(l))}</span>`).join("");
  }
  function drawMetrics(colours) {
    const box = $("metric-charts");
    box.innerHTML = "";
    const order = visible.slice().sort((a, b) => a - b);  // start order, whatever the table's sort
    for (const m of metrics) {
      const values = order.map((i) => D.rows[i][col[m]]);
      const [lo, hi] = extent(values);
      const w = 300, h = 150;
      const svg = frame(box, w, h, D.columns[col[m]].header, lo, hi, order.length ? [fmt(D.rows[order[0]][col.run]).slice(0, 15), fmt(D.rows[order[order.length - 1]][col.run]).slice(0, 15)] : null);
      const x = scale(0, Math.max(order.length - 1, 1), 50, w - 10), y = scale(lo, hi, h - 24, 10);
      const paths = {};
      order.forEach((i, k) => {
        const v = D.rows[i][col[m]];
        if (!isNum(v)) return;
        const c = colours.pick(i);
        paths[c] = (paths[c] || "") + `M${x(k).toFixed(1)} ${y(v).toFixed(1)}h0`;
      });
      for (const c in paths) el("path", { d: paths[c], stroke: c, "stroke-width": 6, "stroke-linecap": "round", fill: "none" }, svg);
    }
  }
  function drawCurves(colours) {
    const box = $("curve-chart");
    box.innerHTML = "";
    const name = $("curve-metric").value;
    const curves = (D.series[name] || []).filter((s) => shown.has(s[0]));
    $("curve-note").textContent = curves.length ? `${curves.length} run${curves.length === 1 ? "" : "s"}` + (D.thinned ? ` · curves thinned to at most ${D.thinned} points each` : "") : "no run logged this metric with steps";
    if (!name) return;
    const [x0, x1] = extent(curves.flatMap((s) => s[1])), [y0, y1] = extent(curves.flatMap((s) => s[2]));
    const w = 760, h = 320;
    const svg = frame(box, w, h, name, y0, y1, [fmt(x0), fmt(x1)]);
    const x = scale(x0, x1, 50, w - 10), y = scale(y0, y1, h - 24, 10);
    for (const [i, xs, ys] of curves) {
      let d = "";
      xs.forEach((s, k) => { if (isNum(ys[k])) d += (d ? "L" : "M") + x(s).toFixed(1) + " " + y(ys[k]).toFixed(1); });
      const path = el("path", { d, stroke: colours.pick(i), "stroke-width": 1.5, fill: "none", "stroke-opacity": 0.8 }, svg);
      el("title", {}, path).textContent = `${D.runs[i]} ${fmt(ys[ys.length - 1])}`;
    }
  }
  let shown = new Set(visible);

  // -- params and sweeps: a line over one param, a heat map over two --------------------------
  const sweepSelect = $("sweep");
  sweepSelect.add(new Option("all runs", ""));
  Object.keys(D.sweeps).forEach((s) => sweepSelect.add(new Option(`sweep ${s}`, s)));
  if (D.sweep && D.sweeps[D.sweep]) sweepSelect.value = D.sweep;
  else if (Object.keys(D.sweeps).length) sweepSelect.value = Object.keys(D.sweeps).pop();
  function varying(rows) {
    return params.filter((p) => new Set(rows.map((i) => JSON.stringify(D.rows[i][col[p]]))).size > 1);
  }
  function chooseAxes() {
    const rows = sweepRows();
    const vary = varying(rows);
    for (const [id, options, blank] of [["param-x", vary, false], ["param-y", vary, true]]) {
      const s = $(id), old = s.value;
      s.innerHTML = "";
      if (blank) s.add(new Option("—", ""));
      options.forEach((p) => s.add(new Option(D.columns[col[p]].header, p)));
      if (options.includes(old)) s.value = old;
    }
    if (!$("param-x").value && vary.length) $("param-x").value = vary[0];
    if (!$("param-y").value && vary.length > 1 && $("param-y").dataset.touched !== "1") $("param-y").value = vary[1];
    if ($("param-y").value === $("param-x").value) $("param-y").value = "";
  }
  function sweepRows() {
    const s = sweepSelect.value;
    return (s ? D.sweeps[s] : D.rows.map((_, i) => i)).filter((i) => shown.has(i));
  }
  function ordered(values) {
    return [...new Set(values.map((v) => JSON.stringify(v)))].map((v) => JSON.parse(v)).sort((a, b) => (isNum(a) && isNum(b) ? a - b : String(a).localeCompare(String(b), undefined, { numeric: true })));
  }
  function drawParams() {
    const box = $("param-chart");
    box.innerHTML = "";
    const px = $("param-x").value, py = $("param-y").value, m = $("param-metric").value;
    const rows = sweepRows().filter((i) => isNum(D.rows[i][col[m]]));
    if (!px || !m || !rows.length) {
      box.innerHTML = `<p class="dim">No param varies across these runs${m ? "" : ", or they have no metric"}.</p>`;
      return;
    }
    const xs = ordered(rows.map((i) => D.rows[i][col[px]]));
    const mean = (cells) => cells.reduce((a, i) => a + D.rows[i][col[m]], 0) / cells.length;
    const key = (v) => JSON.stringify(v);
    if (!py) {
      const w = 640, h = 300;
      const [lo, hi] = extent(rows.map((i) => D.rows[i][col[m]]));
      const svg = frame(box, w, h, `${D.columns[col[m]].header} over ${D.columns[col[px]].header} (mean of runs; dots: each run)`, lo, hi, null);
      const x = scale(0, Math.max(xs.length - 1, 1), 60, w - 20), y = scale(lo, hi, h - 24, 10);
      let d = "";
      xs.forEach((v, k) => {
        const cell = rows.filter((i) => key(D.rows[i][col[px]]) === key(v));
        d += (d ? "L" : "M") + x(k).toFixed(1) + " " + y(mean(cell)).toFixed(1);
        for (const i of cell) el("circle", { cx: x(k), cy: y(D.rows[i][col[m]]), r: 3, fill: "#4e79a7", "fill-opacity": 0.35 }, svg);
        el("text", { x: x(k), y: h - 6, "text-anchor": "middle" }, svg).textContent = fmt(v);
      });
      el("path", { d, stroke: "#4e79a7", "stroke-width": 2, fill: "none" }, svg);
      return;
    }
    const ys = ordered(rows.map((i) => D.rows[i][col[py]]));
    const cellW = Math.max(36, Math.min(90, 640 / xs.length)), cellH = Math.max(22, Math.min(40, 400 / ys.length));
    const w = 90 + cellW * xs.length, h = 40 + cellH * ys.length;
    const box2 = document.createElement("div");
    box2.className = "chart";
    box2.innerHTML = `<h3>${esc(D.columns[col[m]].header)}: mean over runs, by ${esc(D.columns[col[px]].header)} (x) and ${esc(D.columns[col[py]].header)} (y)</h3>`;
    box.appendChild(box2);
    const svg = el("svg", { width: w, height: h, viewBox: `0 0 ${w} ${h}` }, box2);
    const means = {};
    for (const i of rows) (means[key(D.rows[i][col[px]]) + "|" + key(D.rows[i][col[py]])] ||= []).push(i);
    const all = Object.values(means).map(mean);
    const [lo, hi] = extent(all);
    const t = scale(lo, hi, 0, 1);
    const better = lowerIsBetter(m);
    xs.forEach((vx, a) => {
      el("text", { x: 90 + cellW * (a + 0.5), y: h - 8, "text-anchor": "middle" }, svg).textContent = fmt(vx);
      ys.forEach((vy, b) => {
        const cell = means[key(vx) + "|" + key(vy)];
        const top = 6 + cellH * (ys.length - 1 - b);
        if (!cell) return;
        const v = mean(cell), u = better ? 1 - t(v) : t(v);
        const rect = el("rect", { x: 90 + cellW * a, y: top, width: cellW - 2, height: cellH - 2, fill: `hsl(${210 - 170 * u}, 70%, ${88 - 40 * u}%)` }, svg);
        el("title", {}, rect).textContent = `${cell.length} run${cell.length === 1 ? "" : "s"}: ${fmt(v)}`;
        el("text", { x: 90 + cellW * (a + 0.5), y: top + cellH / 2 + 3, "text-anchor": "middle", style: "fill:#1d2330" }, svg).textContent = fmt(v);
      });
    });
    ys.forEach((vy, b) => { el("text", { x: 84, y: 6 + cellH * (ys.length - 1 - b) + cellH / 2 + 3, "text-anchor": "end" }, svg).textContent = fmt(vy); });
  }

  // -- a search's optimization history: the metric by trial, and the best so far ----------------
  function drawHistory() {
    const box = $("history-chart");
    box.innerHTML = "";
    const m = $("param-metric").value, s = sweepSelect.value;
    const rows = sweepRows().filter((i) => D.trials[i] !== undefined && isNum(D.rows[i][col[m]]));
    if (!m || !s || !rows.length) return;
    rows.sort((a, b) => D.trials[a] - D.trials[b]);
    const first = D.trials[rows[0]], last = D.trials[rows[rows.length - 1]];
    const lowest = s in D.searches ? D.searches[s] : lowerIsBetter(m);
    const w = 640, h = 260;
    const [lo, hi] = extent(rows.map((i) => D.rows[i][col[m]]));
    const svg = frame(box, w, h, `optimization history: ${D.columns[col[m]].header} by trial (dots), best so far (line)`, lo, hi, [`trial ${first}`, `trial ${last}`]);
    const x = scale(first, Math.max(last, first + 1), 60, w - 20), y = scale(lo, hi, h - 24, 10);
    let best = null, d = "";
    for (const i of rows) {
      const v = D.rows[i][col[m]], t = D.trials[i];
      el("circle", { cx: x(t), cy: y(v), r: 3, fill: "#4e79a7", "fill-opacity": 0.6 }, svg);
      best = best === null ? v : (lowest ? Math.min(best, v) : Math.max(best, v));
      d += (d ? "L" : "M") + x(t).toFixed(1) + " " + y(best).toFixed(1);
    }
    el("path", { d, stroke: "#e15759", "stroke-width": 2, fill: "none", class: "best-so-far" }, svg);
  }

  // -- versions on a timeline, each linked to its diff -------------------------------------------
  function drawTimeline() {
    const box = $("timeline");
    const byStage = {};
    for (const v of D.versions) (byStage[v.stage] ||= []).push(v);
    const names = Object.keys(byStage);
    if (!names.length) { box.innerHTML = '<p class="dim">No versions registered.</p>'; return; }
    // x: the version's rank in time among all versions (versions made together stay apart)
    const order = D.versions.map((v, k) => [v.created, k]).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] - b[1]));
    const rank = {};
    order.forEach(([, k], r) => { rank[k] = r; });
    const w = Math.max(600, Math.min(1400, 160 + 34 * D.versions.length)), lane = 34, h = 24 + lane * names.length;
    const svg = el("svg", { width: w, height: h, viewBox: `0 0 ${w} ${h}` }, box);
    const x = scale(0, Math.max(D.versions.length - 1, 1), 150, w - 30);
    names.forEach((stage, k) => {
      const y = 18 + lane * k;
      el("text", { x: 130, y: y + 4, "text-anchor": "end", style: "fill:#1d2330;font-weight:600" }, svg).textContent = stage;
      el("line", { x1: 140, y1: y, x2: w - 30, y2: y, class: "axis" }, svg);
      let lastX = -100;
      byStage[stage].forEach((v) => {
        const cx = x(rank[D.versions.indexOf(v)]);
        const link = el("a", { href: "#" + v.id }, svg);
        const dot = el("circle", { cx, cy: y, r: 6 + Math.min(6, Math.sqrt(v.runs)), fill: v.status === "formatting only" ? "#bab0ac" : "#4e79a7" }, link);
        el("title", {}, dot).textContent = `${v.stage}@${v.version} · ${v.created.slice(0, 19).replace("T", " ")} · ${v.runs} run${v.runs === 1 ? "" : "s"}${v.message ? " · " + v.message : ""}`;
        if (cx - lastX > 26) { el("text", { x: cx, y: y - 10, "text-anchor": "middle" }, link).textContent = v.version; lastX = cx; }
      });
    });
    const when = (k) => D.versions[order[k][1]].created.slice(0, 16).replace("T", " ");
    el("text", { x: 150, y: h - 2 }, svg).textContent = when(0);
    el("text", { x: w - 30, y: h - 2, "text-anchor": "end" }, svg).textContent = when(order.length - 1);
  }
  function openTarget() {
    const target = location.hash && document.getElementById(location.hash.slice(1));
    if (target && target.tagName === "DETAILS") target.open = true;
  }
  window.addEventListener("hashchange", openTarget);

  // -- two runs side by side: versions, params, metrics, each changed stage's diff, B's reasons --
  const C = D.compare || { runs: {}, summaries: {} };
  const compareRuns = Object.keys(C.runs);
  for (const id of ["compare-a", "compare-b"]) {
    compareRuns.forEach((r) => $(id).add(new Option(`${r} · ${C.runs[r].started} · ${C.runs[r].status}`, r)));
  }
  if (compareRuns.length) {
    $("compare-b").value = compareRuns[compareRuns.length - 1];
    $("compare-a").value = compareRuns[Math.max(0, compareRuns.length - 2)];
  }
  const anchor = (stage, version) => "diff-" + `${stage}-${version}`.replace(/[^A-Za-z0-9_-]/g, "_");
  function drawCompare() {
    const a = C.runs[$("compare-a").value], b = C.runs[$("compare-b").value];
    if (!a || !b) {
      $("compare-table").innerHTML = '<tbody><tr><td class="dim">No runs to compare.</td></tr></tbody>';
      $("compare-changes").innerHTML = $("compare-reasons").innerHTML = "";
      return;
    }
    const keys = (x, y) => [...new Set([...Object.keys(x), ...Object.keys(y)])];
    const rows = [];
    for (const [kind, field] of [["version", "versions"], ["param", "params"], ["metric", "metrics"]]) {
      for (const k of keys(a[field], b[field])) rows.push([kind, k, a[field][k], b[field][k]]);
    }
    const body = rows.map(([kind, name, va, vb]) => {
      const changed = JSON.stringify(va) !== JSON.stringify(vb);
      return `<tr class="${changed ? "changed" : ""}" data-name="${esc(kind + " " + name)}"><td class="kind">${kind}</td><td>${esc(name)}</td>` +
        `<td class="num">${esc(fmt(va))}</td><td class="num">${esc(fmt(vb))}</td></tr>`;
    }).join("");
    $("compare-table").innerHTML = `<thead><tr><th></th><th>name</th><th>run A</th><th>run B</th></tr></thead><tbody>${body}</tbody>`;
    const changes = keys(a.versions, b.versions).filter((s) => a.versions[s] && b.versions[s] && a.versions[s] !== b.versions[s]).map((s) => {
      const va = a.versions[s], vb = b.versions[s];
      const line = C.summaries[`${s} ${va} ${vb}`] || "(not summarized in this report: run the command)";
      const link = document.getElementById(anchor(s, vb)) ? ` <a href="#${anchor(s, vb)}">${esc(s)}@${esc(vb)}'s diff from the version before</a>` : "";
      return `<li data-stage="${esc(s)}"><b>${esc(s)} ${esc(va)} → ${esc(vb)}</b>: <span class="summary">${esc(line)}</span> — ` +
        `<code>modver diff ${esc(s)}@${esc(va)} ${esc(s)}@${esc(vb)}</code>${link}</li>`;
    });
    $("compare-changes").innerHTML = changes.join("") || '<li class="dim">none: both runs used the same versions</li>';
    const reasons = Object.entries(b.reasons).map(([s, why]) => `<li data-stage="${esc(s)}"><b>${esc(s)}</b>: ${esc(why)}</li>`);
    $("compare-reasons").innerHTML = reasons.join("") || '<li class="dim">the record says no reasons</li>';
  }
  for (const id of ["compare-a", "compare-b"]) $(id).addEventListener("change", drawCompare);

  // -- wiring ---------------------------------------------------------------------------------
  const curveNames = Object.keys(D.series);
  curveNames.forEach((n) => $("curve-metric").add(new Option(n, n)));
  metrics.forEach((m) => $("param-metric").add(new Option(D.columns[col[m]].header, m)));
  // -- the best run per metric, and each version of the colour-by stage summarized ------------
  function drawBest() {
    const differ = [...stages, ...params].filter((c) => new Set(visible.map((i) => JSON.stringify(D.rows[i][col[c]]))).size > 1);
    const head = ["metric", "best", "run", ...differ.map((c) => D.columns[col[c]].header)];
    const body = metrics.map((m) => {
      const b = best(m);
      const i = visible.find((k) => D.rows[k][col[m]] === b);
      if (i === undefined) return "";
      const cells = [D.columns[col[m]].header, fmt(b), D.rows[i][col.run], ...differ.map((c) => fmt(D.rows[i][col[c]]))];
      return "<tr>" + cells.map((v, j) => `<td class="${j === 1 ? "num best" : ""}"${j === 2 ? ` title="${esc(D.runs[i])}"` : ""}>${esc(v)}</td>`).join("") + "</tr>";
    });
    $("best-table").innerHTML = `<thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join("")}</tr></thead><tbody>${body.join("")}</tbody>`;
  }
  function drawVersions(colours) {
    const c = colourBy.value;
    if (!c) { $("version-table").innerHTML = ""; return; }
    const head = [c.slice(8), "runs", ...metrics.flatMap((m) => [`${D.columns[col[m]].header} mean`, "best"])];
    const body = colours.labels.map((label) => {
      const rows = visible.filter((i) => D.rows[i][col[c]] === label);
      if (!rows.length) return "";
      const cells = metrics.flatMap((m) => {
        const values = rows.map((i) => D.rows[i][col[m]]).filter(isNum);
        if (!values.length) return ["–", "–"];
        const top = lowerIsBetter(m) ? Math.min(...values) : Math.max(...values);
        return [fmt(values.reduce((a, v) => a + v, 0) / values.length), fmt(top)];
      });
      return `<tr><td><i class="swatch" style="background:${colours.of[label]}"></i>${esc(fmt(label))}</td><td class="num">${rows.length}</td>` +
        cells.map((v) => `<td class="num">${esc(v)}</td>`).join("") + "</tr>";
    });
    $("version-table").innerHTML = `<thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join("")}</tr></thead><tbody>${body.join("")}</tbody>`;
  }

  function drawAll() {
    shown = new Set(visible);
    const colours = versionColour();
    drawTable();
    drawBest();
    legend(colours);
    drawMetrics(colours);
    drawVersions(colours);
    drawCurves(colours);
    chooseAxes();
    drawParams();
    drawHistory();
  }
  colourBy.addEventListener("change", drawAll);
  $("curve-metric").addEventListener("change", () => drawCurves(versionColour()));
  sweepSelect.addEventListener("change", () => { chooseAxes(); drawParams(); drawHistory(); });
  $("param-y").addEventListener("change", () => { $("param-y").dataset.touched = "1"; drawParams(); });
  for (const id of ["param-x", "param-metric"]) $(id).addEventListener("change", drawParams);
  $("param-metric").addEventListener("change", drawHistory);
  const scope = [D.where ? `where ${D.where}` : "", D.sweep ? `sweep ${D.sweep}` : ""].filter(Boolean).join(", ");
  $("summary").textContent = `${D.rows.length} runs${scope ? " (" + scope + ")" : ""} · ${D.versions.length} versions of ${new Set(D.versions.map((v) => v.stage)).size} stages · made ${D.generated.replace("T", " ")}`;
  drawAll();
  drawTimeline();
  drawCompare();
  openTarget();
})();
