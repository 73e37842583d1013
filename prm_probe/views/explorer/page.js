// prm-probe explore: the page's script. Plain JavaScript, no library; the data is the JSON element above.
"use strict";
(function () {
  const DATA = JSON.parse(document.getElementById("explorer-data").textContent);
  const $ = (sel, root) => (root || document).querySelector(sel);
  const el = (tag, attrs, ...children) => {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (v !== null && v !== undefined && v !== false) node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children) if (c !== null && c !== undefined) node.append(c);
    return node;
  };
  const SVG = "http://www.w3.org/2000/svg";
  const svg = (tag, attrs) => {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    return node;
  };
  const fmt = (v, d = 3) => (v === null || v === undefined || Number.isNaN(v) ? "n/a"
    : Number.isInteger(v) ? String(v) : Number(v).toFixed(d));
  const fixed = (v, d = 3) => (v === null || v === undefined ? "n/a" : Number(v).toFixed(d));
  const signed = (v, d = 3) => (v === null || v === undefined ? "n/a" : (v >= 0 ? "+" : "−") + Math.abs(v).toFixed(d));
  const PALETTE = ["#2f5fb3", "#d1495b", "#2a9d8f", "#e9a03b", "#7b5ea7", "#5c6b73"];
  const tooltip = $("#tooltip");
  const showTip = (evt, text) => { tooltip.hidden = false; tooltip.textContent = text;
    tooltip.style.left = (evt.clientX + 12) + "px"; tooltip.style.top = (evt.clientY + 12) + "px"; };
  const hideTip = () => { tooltip.hidden = true; };

  // ------------------------------------------------------------------ tabs
  function show(view) {
    document.querySelectorAll("#tabs button").forEach(b => b.classList.toggle("active", b.dataset.view === view));
    document.querySelectorAll(".view").forEach(s => s.classList.toggle("active", s.id === view));
  }
  document.querySelectorAll("#tabs button").forEach(b => b.addEventListener("click", () => show(b.dataset.view)));
  $("#log-name").textContent = "· " + DATA.meta.log;
  $("#footer").textContent = `${DATA.meta.groups_total} groups; tries embedded: ${DATA.meta.selection}. `
    + DATA.meta.tokenizer + ".";

  // ------------------------------------------------------------------ a line chart with a hover read-out
  function lineChart(title, series, opts) {
    // series: [{label, color, points: [[x, y]], band: [[x, lo, hi]]}]
    const W = 330, H = 190, L = 44, R = 10, T = 8, B = 26;
    const xs = series.flatMap(s => s.points.map(p => p[0]));
    const ys = series.flatMap(s => s.points.map(p => p[1]).concat((s.band || []).flatMap(b => [b[1], b[2]])))
      .filter(v => v !== null);
    let x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
    if (opts && opts.unit) { y0 = Math.min(0, y0); y1 = Math.max(1, y1); }
    if (x1 === x0) { x0 -= 1; x1 += 1; }
    if (y1 === y0) { y0 -= 0.5; y1 += 0.5; }
    const sx = x => L + (x - x0) / (x1 - x0) * (W - L - R);
    const sy = y => H - B - (y - y0) / (y1 - y0) * (H - T - B);
    const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, style: "width:100%;height:auto", role: "img", "aria-label": title });
    root.append(svg("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, class: "axis" }));
    root.append(svg("line", { x1: L, y1: T, x2: L, y2: H - B, class: "axis" }));
    for (const [v, y] of [[y0, H - B], [y1, T + 8]]) {
      const t = svg("text", { x: L - 4, y, "text-anchor": "end" }); t.textContent = fmt(v, 2); root.append(t);
    }
    for (const [v, x, a] of [[x0, L, "start"], [x1, W - R, "end"]]) {
      const t = svg("text", { x, y: H - 8, "text-anchor": a }); t.textContent = "step " + fmt(v, 0); root.append(t);
    }
    series.forEach(s => {
      if (s.band && s.band.length) {
        const up = s.band.map(b => `${sx(b[0])},${sy(b[2])}`), down = s.band.slice().reverse().map(b => `${sx(b[0])},${sy(b[1])}`);
        root.append(svg("polygon", { points: up.concat(down).join(" "), fill: s.color, class: "band" }));
      }
      const pts = s.points.filter(p => p[1] !== null);
      root.append(svg("polyline", { points: pts.map(p => `${sx(p[0])},${sy(p[1])}`).join(" "), stroke: s.color, class: "curve" }));
    });
    const guide = svg("line", { y1: T, y2: H - B, class: "hover-line", visibility: "hidden" });
    root.append(guide);
    const steps = [...new Set(xs)].sort((a, b) => a - b);
    root.addEventListener("mousemove", evt => {
      const box = root.getBoundingClientRect();
      const x = x0 + ((evt.clientX - box.left) / box.width * W - L) / (W - L - R) * (x1 - x0);
      const step = steps.reduce((best, s) => Math.abs(s - x) < Math.abs(best - x) ? s : best, steps[0]);
      guide.setAttribute("x1", sx(step)); guide.setAttribute("x2", sx(step)); guide.setAttribute("visibility", "visible");
      const lines = series.map(s => { const p = s.points.find(q => q[0] === step);
        return `${s.label}: ${p ? fmt(p[1]) : "n/a"}`; });
      showTip(evt, `step ${step}\n` + lines.join("\n"));
    });
    root.addEventListener("mouseleave", () => { guide.setAttribute("visibility", "hidden"); hideTip(); });
    const legend = series.length > 1 ? el("div", { class: "note" }, ...series.map(s =>
      el("span", { style: `color:${s.color};margin-right:10px` }, "● " + s.label))) : null;
    return el("div", { class: "card" }, el("h3", { text: title }), root, legend);
  }

  // ------------------------------------------------------------------ overview
  function renderOverview() {
    const host = $("#overview");
    const runs = DATA.meta.runs, steps = DATA.steps, curves = DATA.meta.curves;
    host.append(el("p", { class: "note", text: `${steps.length} step(s) of ${runs.length} run(s), `
      + `${DATA.meta.groups_total} groups. Each statistic is a per-step value over the step's groups.` }));
    const stepsPerRun = Math.max(...runs.map(r => steps.filter(s => s.run_id === r).length));
    if (stepsPerRun < 2) {  // one step: a table, not empty axes
      host.append(el("p", { class: "note", text: "This log has one step per run, so the statistics are a table." }));
      const table = el("table", { id: "overview-table" });
      table.append(el("thead", {}, el("tr", {}, el("th", { class: "txt", text: "statistic" }),
        ...runs.map(r => el("th", { text: r })))));
      const body = el("tbody");
      for (const [key, label] of Object.entries(curves)) {
        body.append(el("tr", {}, el("td", { class: "txt", text: label }),
          ...runs.map(r => { const s = steps.find(q => q.run_id === r); return el("td", { text: fmt(s ? s[key] : null) }); })));
      }
      table.append(body); host.append(table);
      return;
    }
    const grid = el("div", { class: "grid", id: "overview-charts" });
    for (const [key, label] of Object.entries(curves)) {
      const series = runs.map((r, i) => ({ label: r, color: PALETTE[i % PALETTE.length],
        points: steps.filter(s => s.run_id === r).map(s => [s.step, s[key] ?? null]) }));
      if (series.every(s => s.points.every(p => p[1] === null))) continue;
      grid.append(lineChart(label, series, { unit: key.endsWith("fraction") }));
    }
    host.append(grid);
  }

  // ------------------------------------------------------------------ groups table
  const groupKey = g => `${g.run_id}|${g.step}|${g.group}`;
  const COLS = [["step", "step"], ["group", "group"], ["group_size", "G"], ["reward_mean", "mean reward"],
    ["reward_std", "reward spread (sd)"], ["node_count", "nodes"], ["informative_branching", "informative branching"],
    ["proper_branching", "proper branching"], ["path_depth_mean", "path depth"], ["rank", "informative rank"]];
  let sortKey = "rank", sortDir = 1;
  function renderGroups() {
    const host = $("#groups");
    host.append(el("p", { class: "note", text: "One row per group; click a column to sort, a row to open its trie. "
      + `Tries are embedded for ${DATA.meta.selection}.` }));
    const spread = el("input", { type: "number", id: "min-spread", min: "0", step: "0.05", value: "0" });
    const onlyInf = el("input", { type: "checkbox", id: "only-informative" });
    const search = el("input", { type: "search", id: "group-search", placeholder: "step or group", size: 12 });
    host.append(el("div", { class: "toolbar" },
      el("label", {}, "reward spread ≥ ", spread), el("label", {}, onlyInf, " informative branching only"),
      el("label", {}, "find ", search), el("span", { id: "group-count", class: "note" })));
    const table = el("table", { id: "groups-table" });
    const head = el("tr", {}, el("th", { class: "txt", "data-key": "run_id", text: "run" }),
      ...COLS.map(([k, label]) => el("th", { "data-key": k, text: label })));
    table.append(el("thead", {}, head), el("tbody"));
    host.append(table);
    head.querySelectorAll("th").forEach(th => th.addEventListener("click", () => {
      const k = th.dataset.key; sortDir = sortKey === k ? -sortDir : (k === "rank" ? 1 : -1); sortKey = k; fill();
    }));
    [spread, onlyInf, search].forEach(i => i.addEventListener("input", fill));
    function fill() {
      const min = parseFloat(spread.value) || 0, text = search.value.trim();
      const rows = DATA.groups.filter(g => (g.reward_std ?? 0) >= min - 1e-12 && (!onlyInf.checked || g.informative_branching)
        && (!text || String(g.step) === text || String(g.group) === text || `${g.step}/${g.group}` === text));
      rows.sort((a, b) => { const x = a[sortKey], y = b[sortKey];
        return (x === y ? (a.rank - b.rank) : (x === null ? 1 : y === null ? -1 : x < y ? -1 : 1) * sortDir); });
      head.querySelectorAll("th").forEach(th => { th.classList.toggle("sorted-asc", th.dataset.key === sortKey && sortDir > 0);
        th.classList.toggle("sorted-desc", th.dataset.key === sortKey && sortDir < 0); });
      const body = el("tbody");
      const LIMIT = 500;  // a long table would make every sort slow; filters and sorting reach the rest
      for (const g of rows.slice(0, LIMIT)) {
        const key = groupKey(g), has = key in DATA.tries;
        const tr = el("tr", { "data-key": key, class: has ? "" : "no-trie", title: has ? "open its trie" : "no trie embedded (--max-groups)" },
          el("td", { class: "txt", text: g.run_id }),
          ...COLS.map(([k]) => el("td", { text: typeof g[k] === "boolean" ? (g[k] ? "yes" : "no") : fmt(g[k]) })));
        if (has) tr.addEventListener("click", () => openGroup(key));
        body.append(tr);
      }
      table.replaceChild(body, table.tBodies[0]);
      $("#group-count").textContent = `${rows.length} of ${DATA.groups.length} groups`
        + (rows.length > LIMIT ? ` (the first ${LIMIT} shown: sort or filter to reach the others)` : "");
    }
    fill();
  }

  // ------------------------------------------------------------------ one group's trie
  const quality = {};
  (DATA.prm_quality || []).forEach(q => { if (q.node !== null) quality[`${q.key}#${q.node}`] = q; });
  function colour(v, bound) {  // diverging red (negative) – white – blue (positive), light enough for dark text
    if (v === null || v === undefined) return "#e8ebf0";
    const t = 0.55 * Math.max(-1, Math.min(1, v / (bound || 1)));
    const mix = (a, b, f) => Math.round(a + (b - a) * f);
    const [r, g, b] = t < 0 ? [mix(247, 178, -t), mix(247, 24, -t), mix(247, 43, -t)] : [mix(247, 33, t), mix(247, 102, t), mix(247, 172, t)];
    return `rgb(${r},${g},${b})`;
  }
  let current = null, colourBy = "a";
  function renderGroupShell() {
    const host = $("#group");
    const keys = Object.keys(DATA.tries);
    const select = el("select", { id: "group-select" }, ...keys.map(k => {
      const [run, step, group] = k.split("|"); return el("option", { value: k, text: `step ${step}, group ${group}` + (DATA.meta.runs.length > 1 ? ` (${run})` : "") });
    }));
    select.addEventListener("change", () => openGroup(select.value));
    const by = el("select", { id: "colour-by" }, el("option", { value: "a", text: "A(λ), the PRM-aware advantage" }),
      el("option", { value: "r", text: "R̂(λ), the implied step reward" }));
    by.addEventListener("change", () => { colourBy = by.value; if (current) openGroup(current, true); });
    host.append(el("div", { class: "toolbar" }, el("label", {}, "group ", select), el("label", {}, "colour by ", by),
      el("span", { class: "note" }, "−", el("span", { class: "legend" }), "+")),
      el("div", { id: "group-head", class: "note" }), el("div", { id: "completions", class: "completions" }),
      el("div", { id: "tree", class: "tree" }));
    if (!keys.length) host.append(el("p", { class: "note", text: "No trie is embedded." }));
  }
  function openGroup(key, keepTab) {
    current = key;
    const trie = DATA.tries[key];
    $("#group-select").value = key;
    const [run, step, group] = key.split("|");
    const rewards = trie.completions.map(c => c.reward);
    const mean = rewards.reduce((a, b) => a + b, 0) / rewards.length;
    $("#group-head").textContent = `run ${run}, step ${step}, group ${group}: G = ${trie.G}, ${trie.nodes.length} nodes, `
      + `mean reward r̄ = ${fmt(mean)}. Each node is a process set λ: |λ| members share its prefix; `
      + "R̂(λ) is their mean reward and A(λ) = (R̂ − r̄)/(σ + 1e-4). Click a completion to highlight its path.";
    const chips = $("#completions"); chips.replaceChildren();
    trie.completions.forEach(c => {
      const chip = el("button", { class: "completion", "data-sample": c.sample, title: `outcome advantage a = ${signed(c.a)}` },
        `sample ${c.sample}: reward ${fmt(c.reward, 2)}`);
      chip.addEventListener("click", () => highlight(c.sample));
      chips.append(chip);
    });
    const bound = colourBy === "a" ? Math.max(1e-9, ...trie.nodes.map(n => Math.abs(n.a ?? 0)))
      : Math.max(1e-9, ...trie.nodes.map(n => Math.abs((n.r ?? mean) - mean)));
    const children = {};
    trie.nodes.forEach(n => { (children[n.parent] = children[n.parent] || []).push(n); });
    const build = parent => {
      const ul = el("ul");
      for (const n of children[parent] || []) {
        const q = quality[`${key}#${n.id}`];
        const span = el("span", { class: "span" });
        if (n.toks) n.toks.forEach((t, i) => span.append(el("span", { class: "tok", title: `token id ${n.ids[i]}`, text: t })));
        else span.append(el("span", { title: "token ids (no tokenizer)", text: "[" + n.ids.join(" ") + "]" }));
        if (!n.ids.length) span.textContent = "∅";
        const members = n.members.map(m => `${m} (r=${fmt(rewards[m], 2)})`).join(", ");
        const holds = n.sum_a === undefined ? null : Math.abs(n.sum_a - n.size_a) <= 1e-9 * Math.max(1, Math.abs(n.sum_a));
        const box = el("span", { class: "node", id: `node-${n.id}`, "data-node": n.id, "data-size": n.size,
            "data-r": n.r ?? "", "data-a": n.a ?? "", style: `background:${colour(colourBy === "a" ? n.a : (n.r ?? mean) - mean, bound)}`,
            title: `members: ${members}` }, span,
          el("span", { class: "stat", text: `|λ|=${n.size}  R̂=${fixed(n.r)}  A=${signed(n.a)}` }),
          q ? el("span", { class: "stat", title: q.exact ? "exact value" : "Monte-Carlo value ± standard error",
            text: `V=${fmt(q.v)}${q.exact ? "" : " ± " + fmt(q.se)}` }) : null,
          holds === null ? null : el("span", { class: "identity", title: "Theorem 1: Σ over members of the outcome advantages = |λ|·A(λ)",
            text: `Σa=${signed(n.sum_a)} = |λ|A=${signed(n.size_a)} ${holds ? "✓" : "✗"}` }));
        const kids = children[n.id];
        const toggle = el("span", { class: "toggle", text: kids ? "▾" : "" });
        const li = el("li", { "data-node": n.id }, toggle, box);
        if (kids) {
          toggle.addEventListener("click", () => { li.classList.toggle("collapsed"); toggle.textContent = li.classList.contains("collapsed") ? "▸" : "▾"; });
          li.append(build(n.id));
        }
        ul.append(li);
      }
      return ul;
    };
    $("#tree").replaceChildren(build(-1));
    if (!keepTab) show("group");
  }
  function highlight(sample) {
    const trie = DATA.tries[current];
    const chip = document.querySelector(`.completion[data-sample="${sample}"]`);
    const on = !chip.classList.contains("active");
    document.querySelectorAll(".completion").forEach(c => c.classList.remove("active"));
    document.querySelectorAll(".node.hl").forEach(n => n.classList.remove("hl"));
    if (!on) return;
    chip.classList.add("active");
    trie.completions[sample].path.forEach(id => {
      $(`#node-${id}`).classList.add("hl");
      let li = $(`#node-${id}`).closest("li");  // open the branches above it
      while (li) { li.classList.remove("collapsed"); li = li.parentElement.closest("li"); }
    });
  }

  // ------------------------------------------------------------------ prm quality
  function renderQuality() {
    const rows = DATA.prm_quality;
    if (!rows) return;
    document.querySelector('#tabs button[data-view="quality"]').hidden = false;
    const host = $("#quality");
    host.append(el("p", { class: "note", text: `${rows.length} measured nodes: R̂(λ), GRPO's implied step reward, against `
      + "V(prefix), the value of the node's prefix under the checkpoint (exact where the task enumerates, else a "
      + "Monte-Carlo estimate with its standard error). Points on the diagonal are nodes where the implied PRM is right." }));
    const W = 360, H = 320, P = 40;
    const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, id: "quality-scatter" });
    const sx = v => P + v * (W - 2 * P), sy = v => H - P - v * (H - 2 * P);
    root.append(svg("line", { x1: sx(0), y1: sy(0), x2: sx(1), y2: sy(1), class: "hover-line" }));
    root.append(svg("line", { x1: P, y1: H - P, x2: W - P, y2: H - P, class: "axis" }), svg("line", { x1: P, y1: P, x2: P, y2: H - P, class: "axis" }));
    const lab = (x, y, text, a) => { const t = svg("text", { x, y, "text-anchor": a || "middle" }); t.textContent = text; root.append(t); };
    lab(W / 2, H - 8, "V(prefix)"); lab(12, P - 10, "R̂(λ)", "start"); lab(P, H - P + 12, "0"); lab(W - P, H - P + 12, "1");
    rows.forEach(q => {
      if (q.v === null || q.r === null) return;
      if (!q.exact && q.se) root.append(svg("line", { x1: sx(q.v - q.se), x2: sx(q.v + q.se), y1: sy(q.r), y2: sy(q.r), stroke: "#9aa4b5" }));
      const dot = svg("circle", { cx: sx(q.v), cy: sy(q.r), r: 2.5 + Math.sqrt(q.size), fill: "#2f5fb3", "fill-opacity": 0.55 });
      dot.addEventListener("mousemove", e => showTip(e, `${q.key} node ${q.node ?? "?"}\n|λ|=${q.size}  R̂=${fmt(q.r)}  V=${fmt(q.v)}`));
      dot.addEventListener("mouseleave", hideTip);
      if (q.node !== null) dot.addEventListener("click", () => openGroup(q.key));
      root.append(dot);
    });
    host.append(el("div", { class: "card", style: "display:inline-block" }, el("h3", { text: "R̂(λ) against V(prefix)" }), root));
  }

  // ------------------------------------------------------------------ runs
  function renderRuns() {
    const runs = DATA.runs;
    if (!runs) return;
    document.querySelector('#tabs button[data-view="runs"]').hidden = false;
    const host = $("#runs");
    host.append(el("p", { class: "note", text: `${runs.runs.length} runs; each curve is the mean over an algorithm's `
      + "seeds with a bootstrap 95 % band, as `prm-probe compare` computes it." }));
    const grid = el("div", { class: "grid", id: "runs-charts" });
    for (const [metric, rows] of Object.entries(runs.curves)) {
      const series = runs.algorithms.map((a, i) => ({ label: a, color: a === "GRPO" ? "#5c6b73" : PALETTE[i % PALETTE.length],
        points: rows.filter(r => r.algorithm === a).map(r => [r.step, r.mean]),
        band: rows.filter(r => r.algorithm === a).map(r => [r.step, r.lower, r.upper]) }));
      grid.append(lineChart(metric, series, {}));
    }
    host.append(grid);
  }

  renderOverview();
  renderGroups();
  renderGroupShell();
  renderQuality();
  renderRuns();
  const first = Object.keys(DATA.tries)[0];
  if (first) openGroup(first, true);
  document.body.dataset.ready = "1";
})();
