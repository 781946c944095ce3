/* sagetrack report: the compare page. Overlaid learning curves of the selected runs, the
 * `sagetrack diff` of two runs, and a table of what each run recorded, differences first. */
"use strict";
(function () {
  const st = window.sagetrack;

  st.views.compare = function (main, route) {
    const keys = (route.params.get("runs") || "").split(",").map(st.runKey).filter(Boolean);
    if (!keys.length) throw new Error("No runs to compare: select runs on the runs page.");
    return Promise.allSettled(keys.map(st.loadRun)).then(function (results) {
      const runs = [], missing = [];
      results.forEach(function (r, i) {
        if (r.status === "fulfilled") runs.push(r.value); else missing.push(keys[i]);
      });
      view(main, route.params, runs, missing);
    });
  };

  function same(values) {
    const first = JSON.stringify(values[0]);
    return values.every(function (v) { return JSON.stringify(v) === first; });
  }

  function view(main, params, runs, missing) {
    const ids = runs.map(function (r) { return r.id; });
    const label = function (r) {
      return ids.filter(function (i) { return i === r.id; }).length > 1 ? r.experiment + "/" + r.id : r.id;
    };
    const head = st.section("Comparing " + runs.length + " runs", "runs");
    head.querySelector("h2").replaceWith(st.el("h1", null, "Comparing " + runs.length + " runs"));
    st.add(head, st.el("p", { class: "links" }, st.el("a", { href: "#runs" }, "← all runs")),
      st.el("ul", { class: "chips" }, runs.map(function (r, i) {
        return st.el("li", null, st.el("span", { class: "swatch", style: "background:" + st.color(i) }),
          st.el("a", { href: st.link("run", r.experiment + "/" + r.id) }, label(r)), " ", st.status(r.status));
      })));
    if (missing.length) st.add(head, st.el("p", { class: "error" }, "Not in this report: " + missing.join(", ")));
    st.add(main, head);
    if (!runs.length) return;

    /* -- curves ------------------------------------------------------------------------- */
    const curves = st.section("Learning curves", "curves");
    st.add(main, curves);
    const kinds = ["epoch", "step"].filter(function (k) { return runs.some(function (r) { return (r.curves || {})[k]; }); });
    if (!kinds.length) st.add(curves, st.el("p", { class: "muted" }, "None of these runs recorded metrics."));
    for (const kind of kinds) {
      const withCurve = runs.filter(function (r) { return (r.curves || {})[kind]; });
      const names = [];
      for (const r of withCurve) for (const n of Object.keys(r.curves[kind].series)) if (!names.includes(n)) names.push(n);
      st.add(curves, st.el("h3", null, kind === "epoch" ? "Per epoch" : "Per step"));
      const box = st.el("div", { class: "charts" });
      st.add(curves, box);
      for (const name of st.metricOrder(names)) {
        const series = [];
        runs.forEach(function (r, i) {
          const c = (r.curves || {})[kind];
          if (c && name in c.series) series.push({ label: label(r), color: st.color(i), x: c.x, values: c.series[name] });
        });
        const holder = st.el("div", { class: "chart" });
        st.add(box, holder);
        st.overlay(holder, name, withCurve[0].curves[kind].label, series);
      }
    }

    /* -- sagetrack diff of two runs -------------------------------------------------------- */
    if (runs.length === 2) {
      const [a, b] = runs;
      const box = st.section("sagetrack diff", "diff");
      const pair = b.previous && b.previous.id === a.id && b.previous.experiment === a.experiment ? [a, b] :
        a.previous && a.previous.id === b.id && a.previous.experiment === b.experiment ? [b, a] : null;
      if (pair) {
        st.add(box, st.el("p", { class: "muted" }, "A: " + pair[0].id + "  →  B: " + pair[1].id));
        st.add(box, st.diffText(pair[1].previous.text));
      } else {
        const uri = (st.meta && st.meta.store) ? " --uri " + st.meta.store : "";
        st.add(box, st.el("p", null, "The report holds the full text of sagetrack diff for each run and the run " +
          "before it in its experiment. For these two, the table below compares every value; the text comes from:"),
        st.code("sagetrack diff " + a.id + " " + b.id + uri));
      }
      st.add(main, box);
    }

    /* -- values side by side -------------------------------------------------------------- */
    const onlyDiff = params.get("all") !== "1";
    const tableBox = st.section("Recorded values", "values");
    const toggle = st.el("input", { type: "checkbox", checked: onlyDiff, onchange: function () {
      const p = new URLSearchParams(params);
      if (toggle.checked) p.delete("all"); else p.set("all", "1");
      st.setParams(p);
      fill(toggle.checked);
    } });
    const holder = st.el("div", { class: "scroll" });
    st.add(tableBox, st.el("label", { class: "toolbar" }, toggle, " only values that differ"), holder);
    st.add(main, tableBox);

    function fill(differences) {
      holder.textContent = "";
      const sections = [];
      for (const r of runs) for (const s of Object.keys(r.facets || {})) if (!sections.includes(s)) sections.push(s);
      const table = st.el("table", { class: "plain compare" });
      st.add(table, st.el("thead", null, st.el("tr", null, st.el("th"), runs.map(function (r, i) {
        return st.el("th", null, st.el("span", { class: "swatch", style: "background:" + st.color(i) }), label(r));
      }))));
      const body = st.el("tbody");
      let shownRows = 0;
      for (const section of sections) {
        const names = [];
        for (const r of runs) for (const n of Object.keys((r.facets || {})[section] || {})) if (!names.includes(n)) names.push(n);
        const rows = [];
        for (const name of names) {
          const values = runs.map(function (r) { return ((r.facets || {})[section] || {})[name]; });
          const differ = !same(values);
          if (differences && !differ && runs.length > 1) continue;
          rows.push(st.el("tr", { class: differ ? "differs" : "" }, st.el("th", null, name),
            values.map(function (v) { return st.el("td", null, st.value(v === undefined ? null : v)); })));
        }
        if (!rows.length) continue;
        shownRows += rows.length;
        st.add(body, st.el("tr", { class: "section" }, st.el("th", { colSpan: runs.length + 1 }, section)), rows);
      }
      st.add(table, body);
      st.add(holder, shownRows ? table : st.el("p", { class: "muted" }, "These runs recorded the same values."));
    }
    fill(onlyDiff);
  }
})();
