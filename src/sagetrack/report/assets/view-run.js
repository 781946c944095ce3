/* sagetrack report: the page of one run, everything it recorded. */
"use strict";
(function () {
  const st = window.sagetrack;
  const KINDS = { epoch: "Per epoch", step: "Per step (log_metrics, metric_definitions)",
    batch: "Per batch" };

  /* A unified diff with each line coloured by what it is. */
  st.diffView = function (text) {
    const pre = st.el("pre", { class: "diff" });
    for (const line of String(text).split("\n")) {
      let cls = "";
      if (/^(diff --git|index |--- |\+\+\+ )/.test(line)) cls = "meta";
      else if (line.startsWith("@@")) cls = "hunk";
      else if (line.startsWith("+")) cls = "add";
      else if (line.startsWith("-")) cls = "del";
      st.add(pre, st.el("span", { class: cls }, line + "\n"));
    }
    return pre;
  };

  /* The text of `sagetrack diff`, its ~ / + / - lines highlighted. */
  st.diffText = function (text) {
    const pre = st.el("pre", { class: "diff" });
    for (const line of String(text).split("\n")) {
      const t = line.trimStart();
      const cls = /^[A-Z]/.test(line) ? "title" : t.startsWith("~") ? "hunk" :
        t.startsWith("+") ? "add" : t.startsWith("-") ? "del" : "";
      st.add(pre, st.el("span", { class: cls }, line + "\n"));
    }
    return pre;
  };

  /* One chart per metric (its val_ variant on the same chart, dashed). */
  st.curveCharts = function (box, curve) {
    const names = st.metricOrder(Object.keys(curve.series));
    const bases = [];
    for (const n of names) {
      const base = n.replace(/^val_/, "");
      if (!bases.includes(base)) bases.push(base);
    }
    for (const base of bases) {
      const series = [];
      [base, "val_" + base].forEach(function (name, i) {
        if (name in curve.series)
          series.push({ label: name, values: curve.series[name], color: st.color(i), dash: i ? [6, 4] : undefined });
      });
      const holder = st.el("div", { class: "chart" });
      st.add(box, holder);
      st.lineChart(holder, base, curve.label, curve.x, series);
    }
  };

  st.views.run = function (main, route) {
    const key = st.runKey(route.arg);
    if (!key) throw new Error("Not a run: " + route.arg);
    return st.loadRun(key).then(function (run) { view(main, run); });
  };

  function view(main, run) {
    const code = run.code || {}, tarball = code.tarball || {}, record = run.record || {};
    const status = run.status_record || {}, job = run.job || {}, env = run.environment || {};
    const active = st.ACTIVE.includes(run.status);
    const duration = active && run.started ? st.duration(st.since(run.started)) + " so far" : st.duration(run.duration_s);
    const cards = [];

    const links = st.el("p", { class: "links" }, st.el("a", { href: "#runs" }, "← all runs"));
    if (run.previous) {
      const p = new URLSearchParams();
      p.set("runs", run.previous.experiment + "/" + run.previous.id + "," + run.experiment + "/" + run.id);
      st.add(links, " · ", st.el("a", { href: st.link("compare", "", p) }, "compare with the previous run (" + run.previous.id + ")"));
    }
    cards.push(st.el("section", { class: "card" },
      st.el("h1", null, run.id, " ", st.status(run.status, (run.problems || []).length)),
      st.el("p", { class: "muted" }, "experiment " + run.experiment + (active ? " · still going: the page shows what was recorded so far" : "")),
      links,
      st.kv([
        ["status", run.status + (run.incomplete ? " (records incomplete)" : "")],
        ["created", st.time(record.created)], ["started", st.time(run.started)],
        ["ended", st.time(run.ended)], ["duration", duration],
        ["attempt", status.attempt], ["last epoch", status.last_epoch],
        ["restarts", status.restarts && status.restarts.length ? status.restarts : undefined],
        ["model parameters", status.model_params],
        ["launched by", (record.user || "-") + " on " + (record.client_host || "-")],
        ["versions", "sagetrack " + (record.sagetrack_version || "-") + ", SageMaker SDK " + (record.sagemaker_sdk_version || "-")],
        ["job status", job.status], ["secondary status", job.secondary_status],
        ["billable seconds", job.billable_seconds], ["failure reason", job.failure_reason || undefined],
      ])));

    if (run.failure) {
      const box = st.section("Failure", "failure");
      st.add(box, st.el("p", { class: "error" }, (run.failure.type || "error") + ": " + (run.failure.message || "")));
      if (run.failure.traceback) st.add(box, st.el("pre", { class: "traceback" }, run.failure.traceback));
      cards.push(box);
    }

    const curves = run.curves || {};
    const curveBox = st.section("Learning curves", "curves");
    const kinds = Object.keys(KINDS).filter(function (k) { return curves[k]; });
    if (!kinds.length) st.add(curveBox, st.el("p", { class: "muted" }, "No metrics recorded" + (active ? " yet." : ".")));
    cards.push(curveBox);

    const metricNames = st.metricOrder(Object.keys(Object.assign({}, run.final || {}, run.best || {})));
    if (metricNames.length) {
      const box = st.section("Metrics", "metrics");
      st.add(box, st.table(["metric", "final", "best"], metricNames.map(function (n) {
        return [n, (run.final || {})[n], (run.best || {})[n]];
      })));
      cards.push(box);
    }

    const params = run.params || {};
    const paramBox = st.section("Hyperparameters", "params");
    st.add(paramBox, Object.keys(params).length ? st.kv(Object.keys(params).sort().map(function (k) { return [k, params[k]]; }))
      : st.el("p", { class: "muted" }, "None recorded."));
    cards.push(paramBox);

    const codeBox = st.section("Code", "code");
    st.add(codeBox, st.kv([
      ["entry point", code.entry_point], ["source dir", code.source_dir], ["commit", code.commit],
      ["branch", code.branch], ["remote", code.remote], ["dirty", code.dirty],
      ["git error", code.error], ["tarball", tarball.uri], ["tarball sha256", tarball.sha256],
      ["content hash", tarball.content_sha256], ["files", tarball.file_count],
      ["diff truncated", code.diff_truncated || undefined],
    ]));
    const changed = (run.diffstat || []).map(function (s) { return [s[0], "+" + s[1], "-" + s[2]]; });
    if (changed.length) st.add(codeBox, st.el("h3", null, "Changed files"), st.table(["file", "added", "removed"], changed));
    else if (code.changed_files && code.changed_files.length)
      st.add(codeBox, st.el("h3", null, "Changed files"), st.value(code.changed_files));
    if (run.diff) st.add(codeBox, st.el("details", { open: run.diff.length < 20000 },
      st.el("summary", null, "Uncommitted diff"), st.diffView(run.diff)));
    if (tarball.files && tarball.files.length) st.add(codeBox, st.el("details", null,
      st.el("summary", null, "Files in the code tarball (" + tarball.files.length + ")"), st.el("pre", null, tarball.files.join("\n"))));
    const commands = run.commands || {};
    st.add(codeBox, st.el("h3", null, "The code that ran"), st.code(commands.checkout || ""));
    cards.push(codeBox);

    const inputs = run.inputs || {};
    const dataBox = st.section("Data", "data");
    st.add(dataBox, Object.keys(inputs).length ? st.table(["channel", "uri", "objects", "bytes", "sha256", "notes"],
      Object.keys(inputs).sort().map(function (name) {
        const c = inputs[name] || {};
        return [name, c.uri, c.objects, st.bytes(c.bytes), c.sha256,
          [c.data_type, c.versioned ? "versioned" : null, c.manifest ? "manifest" : null, c.method, c.note, c.error]
            .filter(Boolean).join("; ") || "-"];
      })) : st.el("p", { class: "muted" }, "No input channels recorded."));
    cards.push(dataBox);

    const jobBox = st.section("Job configuration", "job");
    const config = run.job_config || {};
    st.add(jobBox, st.kv(Object.keys(config).sort().map(function (k) { return [k, config[k]]; })));
    if (run.artifacts && Object.keys(run.artifacts).length) st.add(jobBox, st.el("h3", null, "Artifacts"), st.kv(Object.entries(run.artifacts)));
    if (record.sagemaker_params) st.add(jobBox, st.el("h3", null, "SageMaker parameters"), st.kv(Object.entries(record.sagemaker_params)));
    cards.push(jobBox);

    const envBox = st.section("Environment", "environment");
    if (Object.keys(env).length) {
      st.add(envBox, st.kv([
        ["python", env.python], ["tensorflow", env.tensorflow], ["keras", env.keras ? env.keras + " (" + env.keras_flavour + ")" : undefined],
        ["host", env.host], ["hosts", env.host_count], ["cpus", env.cpu_count], ["gpus", env.gpu_count],
        ["platform", env.platform], ["executable", env.executable], ["argv", env.argv],
      ]));
      if (env.packages && env.packages.length) st.add(envBox, st.el("details", null,
        st.el("summary", null, "Packages (" + env.packages.length + ")"), st.el("pre", null, env.packages.join("\n"))));
      const vars = env.environment_variables || {};
      if (Object.keys(vars).length) st.add(envBox, st.el("details", null,
        st.el("summary", null, "Environment variables (" + Object.keys(vars).length + ")"),
        st.kv(Object.keys(vars).sort().map(function (k) { return [k, vars[k]]; }))));
    } else st.add(envBox, st.el("p", { class: "muted" }, "No environment recorded" + (active ? " yet." : ".")));
    const hosts = run.hosts || {};
    if (Object.keys(hosts).length) st.add(envBox, st.el("h3", null, "Hosts"),
      st.table(["host", "rank", "chief", "python", "tensorflow", "cpus", "gpus", "platform"],
        Object.keys(hosts).sort().map(function (h) {
          const e = hosts[h] || {};
          return [h, e.rank, e.chief, e.python, e.tensorflow, e.cpu_count, e.gpu_count, e.platform];
        })));
    cards.push(envBox);

    const model = run.model || {};
    const modelBox = st.section("Model", "model");
    st.add(modelBox, st.kv([["archive", model.uri], ["model dir", model.model_dir], ["total", model.total_bytes === undefined ? undefined : st.bytes(model.total_bytes)]]));
    if (model.files && model.files.length) st.add(modelBox, st.table(["file", "bytes", "sha256"],
      model.files.map(function (f) { return [f.path, st.bytes(f.bytes), f.sha256]; })));
    cards.push(modelBox);

    const again = st.section("Reproduce", "reproduce");
    st.add(again, st.el("p", null, "Launch the same job again (same image, code tarball, hyperparameters; refused if the data changed):"),
      st.code(commands.reproduce || ""), st.el("p", null, "Everything recorded, as text:"), st.code(commands.show || ""));
    const origin = run.reproduces || {};
    if (origin.run_id) st.add(again, st.el("h3", null, "This run reproduces"), st.kv([
      ["run", st.runKey(origin.experiment + "/" + origin.run_id) ?
        st.el("a", { href: st.link("run", origin.experiment + "/" + origin.run_id) }, origin.run_id) : origin.run_id],
      ["overrides", origin.overrides], ["data changed", origin.data_changed]]));
    cards.push(again);

    if (run.previous) {
      const box = st.section("Changes since the previous run", "previous");
      st.add(box, st.el("p", { class: "muted" }, "sagetrack diff " + run.previous.id + " " + run.id), st.diffText(run.previous.text));
      cards.push(box);
    }
    if (run.problems && run.problems.length) {
      const box = st.section("Problems (records unreadable or partial)", "problems");
      st.add(box, st.el("ul", null, run.problems.map(function (p) { return st.el("li", null, p); })));
      cards.push(box);
    }
    st.add(main, cards);
    for (const kind of kinds) {  // charts need their container in the page to size it
      st.add(curveBox, st.el("h3", null, KINDS[kind]));
      const box = st.el("div", { class: "charts" });
      st.add(curveBox, box);
      st.curveCharts(box, curves[kind]);
    }
  }
})();
