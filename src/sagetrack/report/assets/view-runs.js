/* sagetrack report: the runs page. One table of every run: sortable, filterable, paged,
 * with columns to choose and runs to select for comparison; the state lives in the URL. */
"use strict";
(function () {
  const st = window.sagetrack;
  const PAGE = 100;
  const GROUPS = { run: "Run", params: "Hyperparameters", final: "Final metrics", best: "Best metrics" };

  function compare(a, b) {  // nulls last, numbers before text
    const na = a === null || a === undefined, nb = b === null || b === undefined;
    if (na || nb) return na - nb;
    const ta = typeof a === "number", tb = typeof b === "number";
    if (ta !== tb) return ta ? -1 : 1;
    if (ta && Number.isNaN(a) !== Number.isNaN(b)) return Number.isNaN(a) ? 1 : -1;
    return a < b ? -1 : a > b ? 1 : 0;
  }

  function test(value, op, text) {
    if (value === null || value === undefined) return op === "!=";
    const shown = st.fmt(value).toLowerCase(), want = text.toLowerCase();
    const number = Number(text);
    const numeric = typeof value === "number" && text.trim() !== "" && !Number.isNaN(number);
    switch (op) {
      case "~": return shown.includes(want);
      case "=": return numeric ? value === number : shown === want;
      case "!=": return numeric ? value !== number : shown !== want;
      case ">": return numeric ? value > number : shown > want;
      case "<": return numeric ? value < number : shown < want;
      case ">=": return numeric ? value >= number : shown >= want;
      case "<=": return numeric ? value <= number : shown <= want;
    }
    return false;
  }

  /* "val_accuracy>0.9 status=running resnet": column tests, and words anywhere in the row. */
  function compileFilter(query, data) {
    const tests = [];
    let texts = null;
    const find = function (name) {
      const lower = name.toLowerCase();
      const order = ["run", "params", "final", "best"];
      for (const group of order) {
        const i = data.columns.findIndex(function (c) {
          return c.group === group && (c.key.toLowerCase() === lower || c.label.toLowerCase() === lower);
        });
        if (i >= 0) return i;
      }
      return data.columns.findIndex(function (c) { return c.key.toLowerCase() === lower; });
    };
    for (const token of query.trim().split(/\s+/).filter(Boolean)) {
      const m = token.match(/^([^=<>!~]+)(>=|<=|!=|=|>|<|~)(.*)$/);
      const col = m ? find(m[1]) : -1;
      if (col >= 0) {
        tests.push(function (row) { return test(row[col], m[2], m[3]); });
        continue;
      }
      const needle = token.toLowerCase();
      tests.push(function (row, i) {
        if (!texts) texts = data.rows.map(function (r) { return r.map(st.fmt).join(" ").toLowerCase(); });
        return texts[i].includes(needle);
      });
    }
    return function (row, i) { return tests.every(function (t) { return t(row, i); }); };
  }

  function cell(col, value, row, data) {
    const at = function (key) { return row[data.index[key]]; };
    switch (col.kind) {
      case "id": {
        const key = at("experiment") + "/" + value;
        return st.el("a", { href: st.link("run", key) }, value);
      }
      case "status": return st.status(value, at("problems"));
      case "time": return st.time(value);
      case "seconds":
        if ((value === null || value === undefined) && st.ACTIVE.includes(at("status")))
          return st.el("span", { class: "live" }, st.duration(st.since(at("start"))));
        return st.duration(value);
      case "hash": return st.el("span", { title: value || "" }, value ? String(value).slice(0, 8) : "-");
      default: {
        const text = st.fmt(value);
        return text.length > 40 ? st.el("span", { title: text }, text.slice(0, 39) + "…") : text;
      }
    }
  }

  function header(col) {
    return col.group === "best" ? col.label + " (best)" : col.label;
  }

  st.views.runs = function (main, route) {
    return st.load("data/runs.js", "runs").then(function (data) { view(main, route.params, data); });
  };

  function view(main, params, data) {
    data.index = {};
    data.columns.forEach(function (c, i) { data.index[c.key] = i; });
    const state = {
      sort: params.get("sort") || "",
      q: params.get("q") || "",
      page: Math.max(parseInt(params.get("page") || "1", 10) || 1, 1),
      cols: params.getAll("col").filter(function (k) { return k in data.index; }),
      sel: new Set((params.get("sel") || "").split(",").map(st.runKey).filter(Boolean)),
      x: params.get("x") || "", y: params.get("y") || "",
    };
    if (!state.cols.length) state.cols = data.visible.filter(function (k) { return k in data.index; });
    const keyOf = function (row) { return row[data.index.experiment] + "/" + row[data.index.id]; };

    const save = function () {
      const p = new URLSearchParams();
      if (state.sort) p.set("sort", state.sort);
      if (state.q) p.set("q", state.q);
      if (state.page > 1) p.set("page", String(state.page));
      const defaults = data.visible.join("\n") === state.cols.join("\n");
      if (!defaults) state.cols.forEach(function (k) { p.append("col", k); });
      if (state.sel.size) p.set("sel", Array.from(state.sel).join(","));
      if (state.x) p.set("x", state.x);
      if (state.y) p.set("y", state.y);
      st.setParams(p);
    };

    if (!data.rows.length) {
      st.add(main, st.el("section", { class: "card" }, st.el("h1", null, "Runs"),
        st.el("p", null, "No runs in this store yet: runs appear once a sagetrack.TensorFlow estimator has called fit().")));
      return;
    }

    const filter = st.el("input", { type: "search", class: "filter", value: state.q,
      placeholder: "filter: words, or column=value, val_accuracy>0.9, status=running, lr~0.1",
      "aria-label": "filter runs" });
    const count = st.el("span", { class: "muted count" });
    const compareButton = st.el("button", { type: "button", class: "primary" });
    const clear = st.el("button", { type: "button" }, "Clear selection");
    const table = st.el("table", { class: "runs" });
    const pager = st.el("div", { class: "pager" });
    const chooser = st.el("details", { class: "columns" }, st.el("summary", null, "Columns"));
    const plot = st.el("details", { class: "card scatter", open: Boolean(state.x || state.y) },
      st.el("summary", null, "Hyperparameter vs metric (the filtered runs)"));

    /* -- columns chooser ----------------------------------------------------------------- */
    for (const group of Object.keys(GROUPS)) {
      const cols = data.columns.filter(function (c) { return c.group === group; });
      if (!cols.length) continue;
      const box = st.el("fieldset", null, st.el("legend", null, GROUPS[group]));
      for (const col of cols) {
        const input = st.el("input", { type: "checkbox", checked: state.cols.includes(col.key),
          onchange: function () {
            state.cols = data.columns.map(function (c) { return c.key; }).filter(function (k) {
              return k === col.key ? input.checked : state.cols.includes(k);
            });
            save(); draw();
          } });
        st.add(box, st.el("label", null, input, " " + col.label));
      }
      st.add(chooser, box);
    }

    /* -- the table ----------------------------------------------------------------------- */
    let shown = [];
    function rowsInView() {
      const test = compileFilter(state.q, data);
      const idx = [];
      data.rows.forEach(function (row, i) { if (test(row, i)) idx.push(i); });
      if (state.sort) {
        const desc = state.sort.startsWith("-");
        const col = data.index[state.sort.replace(/^-/, "")];
        if (col !== undefined) idx.sort(function (a, b) {
          const ra = data.rows[a][col], rb = data.rows[b][col];
          const nulls = (ra === null || ra === undefined) - (rb === null || rb === undefined);
          return nulls || (desc ? -compare(ra, rb) : compare(ra, rb)) || a - b;
        });
      }
      return idx;
    }

    function draw() {
      shown = rowsInView();
      const pages = Math.max(Math.ceil(shown.length / PAGE), 1);
      state.page = Math.min(state.page, pages);
      const cols = state.cols.map(function (k) { return data.columns[data.index[k]]; });
      const head = st.el("tr", null, st.el("th", { class: "pick" }));
      for (const col of cols) {
        const key = col.key, sorted = state.sort.replace(/^-/, "") === key;
        const arrow = sorted ? (state.sort.startsWith("-") ? " ▼" : " ▲") : "";
        st.add(head, st.el("th", { class: "sortable group-" + col.group, title: col.key + " (click to sort)",
          dataset: { key: key },
          onclick: function () {
            state.sort = state.sort === key ? "-" + key : (state.sort === "-" + key ? "" : key);
            state.page = 1; save(); draw();
          } }, header(col) + arrow));
      }
      const body = st.el("tbody");
      for (const i of shown.slice((state.page - 1) * PAGE, state.page * PAGE)) {
        const row = data.rows[i], key = keyOf(row);
        const pick = st.el("input", { type: "checkbox", checked: state.sel.has(key),
          "aria-label": "select " + key,
          onchange: function () {
            if (pick.checked) state.sel.add(key); else state.sel.delete(key);
            tr.classList.toggle("selected", pick.checked);
            save(); tools();
          } });
        const tr = st.el("tr", { class: state.sel.has(key) ? "selected" : "", dataset: { run: key } },
          st.el("td", { class: "pick" }, pick),
          cols.map(function (col) {
            return st.el("td", { class: "kind-" + col.kind }, cell(col, row[data.index[col.key]], row, data));
          }));
        st.add(body, tr);
      }
      table.textContent = "";
      st.add(table, st.el("thead", null, head), body);
      pager.textContent = "";
      const go = function (n) { return function () { state.page = n; save(); draw(); }; };
      st.add(pager,
        st.el("button", { type: "button", disabled: state.page <= 1, onclick: go(state.page - 1) }, "‹ Previous"),
        st.el("span", null, " page " + state.page + " of " + pages + " "),
        st.el("button", { type: "button", disabled: state.page >= pages, onclick: go(state.page + 1) }, "Next ›"));
      tools();
      if (plot.open) scatter();
    }

    function tools() {
      const first = shown.length ? (state.page - 1) * PAGE + 1 : 0;
      count.textContent = "showing " + first + "–" + Math.min(state.page * PAGE, shown.length) + " of " +
        shown.length + (shown.length === data.rows.length ? " runs" : " matching (" + data.rows.length + " runs)");
      compareButton.textContent = "Compare " + state.sel.size + " selected";
      compareButton.disabled = state.sel.size < 1;
      clear.disabled = state.sel.size < 1;
    }

    /* -- scatter: a hyperparameter (or any number) against a metric ----------------------- */
    const numeric = data.columns.filter(function (c, i) {
      return c.group !== "run" || ["duration", "epochs"].includes(c.key) ?
        data.rows.some(function (r) { return typeof r[i] === "number"; }) : false;
    });
    const xSelect = st.el("select", { "aria-label": "x axis" });
    const ySelect = st.el("select", { "aria-label": "y axis" });
    for (const c of numeric) {
      st.add(xSelect, st.el("option", { value: c.key }, GROUPS[c.group] + ": " + header(c)));
      if (c.group === "final" || c.group === "best")
        st.add(ySelect, st.el("option", { value: c.key }, GROUPS[c.group] + ": " + header(c)));
    }
    const defaultX = state.cols.find(function (k) { return k.startsWith("params.") && numeric.some(function (c) { return c.key === k; }); });
    const defaultY = state.cols.find(function (k) { return k.startsWith("final.") && numeric.some(function (c) { return c.key === k; }); });
    xSelect.value = state.x || defaultX || (numeric[0] ? numeric[0].key : "");
    ySelect.value = state.y || defaultY || (ySelect.options[0] ? ySelect.options[0].value : "");
    const plotArea = st.el("div", { class: "chart" });
    function scatter() {
      st.destroyCharts();
      plotArea.textContent = "";
      const xc = data.index[xSelect.value], yc = data.index[ySelect.value];
      if (xc === undefined || yc === undefined) {
        st.add(plotArea, st.el("p", { class: "muted" }, "No numeric hyperparameters or metrics to plot."));
        return;
      }
      const points = [];
      for (const i of shown) {
        const r = data.rows[i];
        if (typeof r[xc] === "number" && typeof r[yc] === "number" && Number.isFinite(r[xc]) && Number.isFinite(r[yc]))
          points.push({ x: r[xc], y: r[yc], label: r[data.index.id], key: keyOf(r) });
      }
      st.add(plotArea, st.el("p", { class: "muted" }, points.length + " runs with both values; click a point to open its run."));
      const x = data.columns[xc], y = data.columns[yc];
      st.scatter(plotArea, header(y) + " vs " + header(x), header(x), header(y), points, function (p) {
        location.hash = st.link("run", p.key);
      });
    }
    const replot = function () { state.x = xSelect.value; state.y = ySelect.value; save(); scatter(); };
    xSelect.addEventListener("change", replot);
    ySelect.addEventListener("change", replot);
    plot.addEventListener("toggle", function () { if (plot.open) scatter(); });
    st.add(plot, st.el("div", { class: "toolbar" }, "x ", xSelect, "  y ", ySelect), plotArea);

    /* -- events -------------------------------------------------------------------------- */
    let typing = null;
    filter.addEventListener("input", function () {
      clearTimeout(typing);
      typing = setTimeout(function () { state.q = filter.value; state.page = 1; save(); draw(); }, 150);
    });
    compareButton.addEventListener("click", function () {
      const p = new URLSearchParams();
      p.set("runs", Array.from(state.sel).join(","));
      location.hash = st.link("compare", "", p);
    });
    clear.addEventListener("click", function () { state.sel.clear(); save(); draw(); });

    st.add(main, st.el("section", { class: "card" },
      st.el("h1", null, "Runs"),
      st.el("div", { class: "toolbar" }, filter, chooser, compareButton, clear, count),
      st.el("div", { class: "scroll" }, table), pager), plot);
    draw();
  }
})();
