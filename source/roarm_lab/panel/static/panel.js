// The lab panel in a browser: a thin view over the panel server's JSON API (GET reads, POST /api/action/<name>).
// No framework and no build step: one module, SVG charts drawn here. Every request has a timeout, so a dead
// simulator or server shows as a message, never as a frozen page. The token travels in the HttpOnly cookie the
// server set when the printed address was opened: this script never sees it.

const $ = (id) => document.getElementById(id);

const ui = { focusJob: null, run: null, checkpoint: null, state: null, workspace: null, task: null,
             runs: [], curveKey: "", framesOn: false, lastFrameStep: null };

// ---------------------------------------------------------------------------------------------- requests
async function api(path, { body, timeout = 10000, raw = false } = {}) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), timeout);
  const headers = {};
  const init = { headers, signal: ctl.signal, cache: "no-store" };
  if (body !== undefined) {
    init.method = "POST";
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (err) {
    throw new Error(err.name === "AbortError" ? `no answer from the panel server in ${timeout / 1000} s`
                                              : "the panel server cannot be reached (is roarm-panel running?)");
  } finally {
    clearTimeout(timer);
  }
  if (raw && resp.ok) return resp.blob();
  let data;
  try { data = await resp.json(); } catch { throw new Error(`the panel server answered ${resp.status}`); }
  if (!resp.ok || data.ok === false) throw new Error(data.error || `the panel server answered ${resp.status}`);
  return data;
}

function say(el, text, kind = "ok") {
  el.textContent = text;
  el.dataset.kind = kind;
  $("activity").textContent = `${new Date().toLocaleTimeString()}  ${text}`;
}

async function act(name, fields, msgId, button, timeout = 120000) {
  const msg = $(msgId);
  if (button) button.disabled = true;
  say(msg, `${button ? button.textContent : name}…`, "wait");
  try {
    const result = await api(`/api/action/${name}`, { body: fields, timeout });
    say(msg, result.message || "done", result.already_running ? "info" : "ok");
    refresh();
    return result;
  } catch (err) {
    say(msg, err.message, "error");
    return null;
  } finally {
    if (button) button.disabled = false;
  }
}

// ---------------------------------------------------------------------------------------------- formatting
const pct = (v) => (v == null ? "–" : `${(100 * v).toFixed(1)} %`);
const cm = (v) => (v == null ? "–" : `${(100 * v).toFixed(1)} cm`);
const ms = (us) => (us == null ? "–" : `${(us / 1000).toFixed(2)} ms`);
function eta(s) {
  if (s == null) return "–";
  const m = Math.floor(s / 60), r = Math.round(s % 60);
  return m ? `${m} min ${r} s` : `${r} s`;
}
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}
function kv(container, rows) {
  container.replaceChildren(...rows.map(([k, v, cls]) => el("div", { class: `kvrow ${cls || ""}` },
    el("span", { class: "k" }, k), el("span", { class: "v" }, v))));
}

// ---------------------------------------------------------------------------------------------- charts (SVG)
const NS = "http://www.w3.org/2000/svg";
function svg(tag, attrs) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}
function chart(root, series, { xLabel = "", yMax = null, note = "" } = {}) {
  const [W, H] = root.getAttribute("viewBox").split(" ").slice(2).map(Number);
  const L = 44, R = series.length > 1 ? 50 : 14, T = 10, B = 24;
  root.replaceChildren();
  root.append(svg("rect", { x: L, y: T, width: W - L - R, height: H - T - B, class: "plot" }));
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  if (!xs.length) {
    const t = svg("text", { x: W / 2, y: H / 2, class: "empty", "text-anchor": "middle" });
    t.textContent = note || "no data yet";
    root.append(t);
    return;
  }
  const x0 = Math.min(...xs), x1 = Math.max(...xs, x0 + 1e-9);
  const sx = (x) => L + ((x - x0) / (x1 - x0 || 1)) * (W - L - R);
  series.forEach((s, i) => {
    const ys = s.points.map((p) => p[1]).filter((v) => v != null && isFinite(v));
    const top = s.max ?? (Math.max(...ys, 1e-9) * 1.1);
    const sy = (y) => T + (1 - Math.min(y, top) / top) * (H - T - B);
    if (s.guide != null) root.append(svg("line", { x1: L, x2: W - R, y1: sy(s.guide), y2: sy(s.guide), class: `guide ${s.cls}` }));
    const d = s.points.filter((p) => p[1] != null && isFinite(p[1]))
      .map((p, j) => `${j ? "L" : "M"}${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join("");
    root.append(svg("path", { d, class: `line ${s.cls}` }));
    const axis = svg("text", { x: i ? W - R + 4 : L - 4, y: T + 10, class: `axis ${s.cls}`, "text-anchor": i ? "start" : "end" });
    axis.textContent = s.fmt(top);
    root.append(axis);
    const zero = svg("text", { x: i ? W - R + 4 : L - 4, y: H - B, class: `axis ${s.cls}`, "text-anchor": i ? "start" : "end" });
    zero.textContent = "0";
    root.append(zero);
  });
  for (const [x, anchor] of [[x0, "start"], [x1, "end"]]) {
    const t = svg("text", { x: sx(x), y: H - 8, class: "axis", "text-anchor": anchor });
    t.textContent = Number.isInteger(x) ? x : x.toFixed(1);
    root.append(t);
  }
  const lab = svg("text", { x: (L + W - R) / 2, y: H - 8, class: "axis", "text-anchor": "middle" });
  lab.textContent = xLabel;
  root.append(lab);
}

// ---------------------------------------------------------------------------------------------- target pad
const PAD = { x0: -0.05, x1: 0.45, y0: -0.25, y1: 0.25 };  // metres, base frame; refitted to the workspace
const padXY = (x, y) => [((PAD.y1 - y) / (PAD.y1 - PAD.y0)) * 200, ((PAD.x1 - x) / (PAD.x1 - PAD.x0)) * 200];
function drawPad() {
  const pad = $("pad");
  pad.replaceChildren(svg("rect", { x: 0, y: 0, width: 200, height: 200, class: "plot" }));
  const z = Number($("tz").value);
  for (const [x, y, pz] of ui.workspace?.points || []) {
    const near = Math.abs(pz - z) < 0.02;
    const [u, v] = padXY(x, y);
    pad.append(svg("circle", { cx: u, cy: v, r: near ? 1.6 : 1.0, class: near ? "reach" : "far" }));
  }
  const [bu, bv] = padXY(0, 0);
  pad.append(svg("rect", { x: bu - 5, y: bv - 5, width: 10, height: 10, class: "base" }));
  const hand = ui.state?.sim?.state?.hand_b;
  if (hand) { const [u, v] = padXY(hand[0], hand[1]); pad.append(svg("circle", { cx: u, cy: v, r: 4, class: "hand" })); }
  const [tu, tv] = padXY(Number($("tx").value), Number($("ty").value));
  pad.append(svg("circle", { cx: tu, cy: tv, r: 5, class: "target" }));
  const cap = svg("text", { x: 4, y: 196, class: "axis" });
  cap.textContent = `top view · z ${z.toFixed(2)} m · dots: reachable`;
  pad.append(cap);
}
function padClick(evt) {
  const box = $("pad").getBoundingClientRect();
  const u = ((evt.clientX - box.left) / box.width) * 200, v = ((evt.clientY - box.top) / box.height) * 200;
  const y = PAD.y1 - (u / 200) * (PAD.y1 - PAD.y0), x = PAD.x1 - (v / 200) * (PAD.x1 - PAD.x0);
  $("tx").value = x.toFixed(3); $("ty").value = y.toFixed(3);
  drawPad();
  if (ui.state?.sim?.running) act("set_target", { target: target() }, "play-msg", null);
}
const target = () => ["tx", "ty", "tz"].map((id) => Number($(id).value));

/** What the task calls its error (hand error, goal error): from the tasks' profiles in the overview. */
function errorLabel(task) { return overview?.error_labels?.[task] || "error"; }

async function loadWorkspace(task) {
  try {
    ui.workspace = await api(`/api/workspace?task=${encodeURIComponent(task)}`, { timeout: 30000 });
    const pts = ui.workspace.points;
    const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
    const span = Math.max(Math.max(...xs) - Math.min(...xs, 0), Math.max(...ys) - Math.min(...ys)) / 2 + 0.03;
    const cx = (Math.max(...xs) + Math.min(...xs, 0)) / 2, cy = (Math.max(...ys) + Math.min(...ys)) / 2;
    Object.assign(PAD, { x0: cx - span, x1: cx + span, y0: cy - span, y1: cy + span });
  } catch (err) { say($("play-msg"), err.message, "error"); }
  drawPad();
}

// ---------------------------------------------------------------------------------------------- jobs
const ACTIVE = ["starting", "running"];
function focusJob(jobs) {
  const chosen = jobs.find((j) => j.job_id === ui.focusJob);
  return chosen || jobs.find((j) => ACTIVE.includes(j.state)) || jobs[0] || null;
}
function renderJobs(jobs) {
  const focus = focusJob(jobs);
  const box = $("focus");
  if (!focus) {
    box.replaceChildren(el("div", { class: "empty" }, "No jobs yet: start a training run above."));
    box.dataset.state = "none";
  } else {
    const active = ACTIVE.includes(focus.state);
    const it = focus.iteration ?? 0, total = focus.total_iterations ?? focus.params?.max_iterations ?? null;
    const frac = focus.kind === "train" ? (total ? it / total : 0) : (focus.state === "succeeded" ? 1 : 0);
    const fill = el("div", { class: `fill ${focus.state}` });
    fill.style.width = `${(100 * Math.min(1, frac)).toFixed(1)}%`;  // CSSOM: the page's CSP allows no inline styles
    const bar = el("div", { class: "bar", id: "progress", "data-iteration": String(it), "data-total": String(total ?? "") }, fill);
    if (active && focus.kind !== "train") bar.classList.add("indeterminate");
    const buttons = el("div", { class: "row" });
    if (active && focus.kind !== "real") {
      buttons.append(el("button", { id: "job-stop", onclick: (e) => act("stop_job", { job_id: focus.job_id }, "train-msg", e.target) }, "Stop"));
    }
    if (["failed", "stopped", "lost"].includes(focus.state) && focus.kind !== "real") {
      buttons.append(el("button", { id: "job-restart", class: "primary",
        onclick: (e) => act("restart_job", { job_id: focus.job_id }, "train-msg", e.target) }, "Restart job"));
    }
    const metrics = focus.metrics || {};
    box.replaceChildren(
      el("div", { class: "focus-head" }, el("b", {}, `${focus.kind} · ${focus.run_id || focus.job_id}`),
        el("span", { class: `badge ${focus.state}`, id: "job-state" }, focus.state)),
      bar,
      el("div", { class: "stats" }, ...(focus.kind === "export" ? [  // an export's own figures (export.json)
        stat("checkpoint", metrics.checkpoint ?? "–"),
        stat("obs / action", metrics.obs_size != null ? `${metrics.obs_size} / ${metrics.action_size}` : "–"),
        stat("files", metrics.files ? String(metrics.files.length) : "–"),
        stat("max diff", metrics.max_abs_diff != null ? `±${metrics.max_abs_diff.toExponential(0)}` : "–")] : [
        stat("iteration", focus.kind === "train" ? `${it} / ${total ?? "?"}` : "–"),
        stat("ETA", active ? eta(focus.eta_s) : "–"),
        stat("success", pct(focus.success_rate ?? metrics.success_rate)),
        stat(errorLabel(focus.task || $("task").value), cm(focus.position_error_m ?? metrics.mean_final_error_m))])),
      ...(focus.error ? [el("div", { class: "msg", "data-kind": "error", id: "job-error" }, focus.error)] : []),
      buttons);
    box.dataset.state = focus.state;
    box.dataset.job = focus.job_id;
  }
  $("jobs").replaceChildren(...jobs.map((j) => el("li", {
      class: j.job_id === focus?.job_id ? "sel" : "", onclick: () => { ui.focusJob = j.job_id; renderJobs(ui.state.jobs); } },
    el("span", { class: `badge ${j.state}` }, j.state), el("span", { class: "kind" }, j.kind),
    el("span", { class: "id" }, j.run_id || j.job_id),
    el("span", { class: "small" }, j.kind === "train" && j.iteration ? `${j.iteration}/${j.total_iterations}` : ""))));
  return focus;
}
function renderSweeps(sweeps) {
  const box = $("sweeps");
  if (!sweeps?.length) { box.replaceChildren(el("div", { class: "empty" }, "No sweeps yet.")); return; }
  box.replaceChildren(...sweeps.map((s) => {
    const ended = s.trials_ended ?? 0;
    const shown = s.sweep_state || s.state;
    const keys = s.trials.length ? Object.keys(s.trials[0].values) : [];
    const short = (k) => k.split(".").pop().replaceAll("_", " ");  // headers wrap; the full key is the title
    const head = el("tr", {}, ...["trial", "state", ...keys, "success", "samples to target"].map((h) =>
      el("th", { title: h }, keys.includes(h) ? short(h) : h)));
    const rows = s.trials.map((t) => el("tr", { class: t.run_id ? "link" : "", "data-trial": t.trial,
        onclick: () => { if (t.run_id) renderCurve(t.run_id, true); } },
      el("td", { title: t.baseline ? "the task's own values" : "" }, t.baseline ? `${t.trial} (defaults)` : t.trial), el("td", {}, el("span", { class: `badge ${t.state.split(" ")[0]}` }, t.state)),
      ...keys.map((k) => el("td", {}, typeof t.values[k] === "number" ? Number(t.values[k].toPrecision(3)).toString() : String(t.values[k] ?? ""))),
      el("td", {}, pct(t.success_rate)), el("td", {}, t.samples_to_target != null ? t.samples_to_target.toLocaleString() : "–")));
    return el("div", { class: "sweep", "data-sweep": s.sweep },
      el("div", { class: "focus-head" }, el("b", {}, `${s.sweep} · ${s.task ?? ""}`),
        el("span", { class: `badge ${shown.replaceAll(" ", "-")}` }, shown),
        el("span", { class: "small" }, `${ended}/${s.num_samples ?? "?"} trials ended`)),
      ...(s.error ? [el("div", { class: "msg", "data-kind": "error" }, s.error)] : []),
      el("div", { class: "trials-wrap" }, el("table", { class: "trials" }, head, ...rows)),
      ...(s.best_overrides ? [el("div", { class: "small" }, `best: ${s.best_overrides} (train.py --preset)`)] : []));
  }));
}
const stat = (k, v) => el("div", { class: "stat" }, el("span", { class: "k" }, k), el("span", { class: "v" }, v));

async function renderCurve(runId, live) {
  const key = `${runId}`;
  if (!runId) { chart($("curve"), [], { note: "pick a run to see its learning curve" }); return; }
  if (!live && key === ui.curveKey) return;
  ui.curveKey = key;
  $("curve-run").textContent = runId;
  try {
    const c = await api(`/api/curve?run=${encodeURIComponent(runId)}`);
    const pts = (k) => c.records.map((r) => [r.iteration, r[k]]);
    chart($("curve"), [
      { points: pts("success_rate"), max: 1, cls: "success", fmt: () => "100 %", guide: 0.97 },
      { points: pts("position_error_m").map(([x, y]) => [x, y == null ? null : 100 * y]), cls: "error",
        fmt: (v) => `${v.toFixed(1)} cm` }], { xLabel: "iteration", note: c.note });
  } catch (err) { chart($("curve"), [], { note: err.message }); }
}

// ---------------------------------------------------------------------------------------------- runs & policy
async function loadRuns() {
  try {
    const { runs } = await api("/api/runs");
    ui.runs = runs.slice().reverse();
    const sel = $("run");
    const keep = ui.run;
    sel.replaceChildren(...ui.runs.map((r) => el("option", { value: r.run_id },
      `${r.run_id}${r.exported ? "  ✓ exported" : ""}${r.success_rate != null ? `  · evaluated ${pct(r.success_rate)}` : ""}`)));
    if (!ui.runs.length) sel.append(el("option", { value: "" }, "no runs yet"));
    if (keep && ui.runs.some((r) => r.run_id === keep)) sel.value = keep;
    selectRun(sel.value);  // also when it is the same run: its checkpoints and export may have changed
  } catch (err) { say($("policy-msg"), err.message, "error"); }
}
async function selectRun(runId) {
  ui.run = runId || null;
  const sel = $("checkpoint");
  if (!runId) { sel.replaceChildren(); $("export-state").textContent = ""; return; }
  try {
    const run = await api(`/api/run?id=${encodeURIComponent(runId)}`);
    const keep = sel.value;
    sel.replaceChildren(...run.checkpoints.map((c) => el("option", { value: c }, c.split("/").pop())));
    if (run.checkpoints.includes(keep)) sel.value = keep;
    $("export-state").textContent = run.exported  // the export's own figures; a success rate only from an evaluation
      ? `exported${run.export?.checkpoint ? ` (${run.export.checkpoint})` : ""}`
        + (run.metrics?.success_rate != null ? ` · evaluated: success ${pct(run.metrics.success_rate)}` : "")
      : "not exported yet";
    $("export-state").dataset.exported = String(run.exported);
  } catch (err) { say($("policy-msg"), err.message, "error"); }
  renderCurve(runId, false);
}

// ---------------------------------------------------------------------------------------------- simulator
function renderSim(sim) {
  const line = $("sim-line");
  $("sim-start").disabled = sim.running || sim.starting;
  $("sim-stop").disabled = !sim.running;
  if (sim.starting) line.textContent = "starting…";
  else if (sim.running) {
    const s = sim.state || {};
    line.textContent = `${sim.task} · ${sim.realtime ? "real time" : "stepped"} · step ${s.step ?? "?"} · ${errorLabel(sim.task)} ${cm(s.error_m)}`;
  } else line.textContent = "stopped";
  $("frame-note").hidden = sim.running;
  $("frame").classList.toggle("off", !sim.running);
  const run = sim.policy && sim.policy.kind === "policy" && sim.policy.steps ? sim.policy : null;
  if (run) {
    const dt = 1 / 30;
    chart($("errplot"), [{ points: run.error_trace_m.map((e, i) => [i * run.trace_every_steps * dt, 100 * e]),
      cls: "error", fmt: (v) => `${v.toFixed(1)} cm`, guide: 100 * (run.threshold_m || 0.02) }],
      { xLabel: `seconds · ${run.done ? (run.stopped || "done") : "running"} · final ${cm(run.final_error_m)}` });
  } else chart($("errplot"), [], { note: `${errorLabel(sim.task)} over time appears when a policy plays` });
}
async function frameLoop() {
  for (;;) {
    const sim = ui.state?.sim;
    if (sim?.running && !document.hidden) {
      try {
        const blob = await api(`/api/frame.png?camera=${$("camera").value}&w=480&h=360`, { raw: true, timeout: 15000 });
        const img = $("frame");
        const old = img.src;
        img.src = URL.createObjectURL(blob);
        img.dataset.step = String(sim.state?.step ?? "");
        if (old.startsWith("blob:")) URL.revokeObjectURL(old);
      } catch (err) { /* the state poll reports what is wrong */ }
    }
    await new Promise((r) => setTimeout(r, sim?.running ? 250 : 400));
  }
}

// ---------------------------------------------------------------------------------------------- gateway, real arm
function renderGateway(g) {
  $("gw-stop").disabled = !g.running;
  if (!g.running) {
    kv($("gateway"), [["status", g.died ? `stopped unexpectedly (${g.died.why}; log ${g.died.log})` : "not running", g.died ? "bad" : ""]]);
    return;
  }
  const lat = g.latency_us || {};
  kv($("gateway"), [["status", "serving", "good"], ["endpoint", g.endpoint], ["policy", g.policy || "–"],
    ["latency p50 / p95 / p99", `${ms(lat.p50)} / ${ms(lat.p95)} / ${ms(lat.p99)}`],
    ["inferences", String(g.infers ?? 0)],
    ["deadline misses", `${g.deadline_misses ?? 0} (${pct(g.deadline_miss_rate)})`, g.deadline_misses ? "bad" : ""],
    ["clients", (g.clients || []).map((c) => `${c.name || c.label} (${c.requests})`).join(", ") || "none"],
    ...(g.error ? [["error", g.error, "bad"]] : [])]);
}
function renderReal(r, allowed) {
  if (!r) return;
  kv($("real"), [["motion", r.motion_allowed ? "allowed (each run confirmed)" : "off: dry runs only", r.motion_allowed ? "" : "muted"],
    ["robot", `${r.robot}${r.port ? ` · ${r.port}` : ""}${r.port_present === false ? " (not connected)" : ""}`],
    ["stop latch", r.stop_latched ? "LATCHED: a person must check the arm and delete " + r.stop_file : "clear",
      r.stop_latched ? "bad" : "good"],
    ["active run", r.active_job ? `${r.active_job.job_id} (${r.active_job.state})` : "none"],
    ["last run", r.last_summary ? `${r.last_summary.reached ?? "?"} reached` : "–"]]);
  const dry = $("dryrun").checked;
  $("real-go").textContent = dry ? "Check plan" : "Move the real arm";
  $("real-go").disabled = !dry && !allowed;
  $("real-go").classList.toggle("danger", !dry);
}

// ---------------------------------------------------------------------------------------------- the poll
let overview = null;
async function refresh() {
  try {
    const state = await api("/api/state", { timeout: 8000 });
    ui.state = state;
    $("link").textContent = "connected";
    $("link").dataset.ok = "yes";
    const focus = renderJobs(state.jobs);
    renderSweeps(state.sweeps);
    renderSim(state.sim);
    renderGateway(state.gateway);
    renderReal(state.real, overview?.real_arm_motion_allowed);
    banner(state);
    drawPad();
    const runOfFocus = focus?.run_id;
    if (runOfFocus && focus.kind === "train" && ACTIVE.includes(focus.state)) renderCurve(runOfFocus, true);
    const sig = state.jobs.map((j) => `${j.job_id}:${j.state}:${j.run_id}`).join();
    if (sig !== ui.jobSig) { ui.jobSig = sig; loadRuns(); }
  } catch (err) {
    $("link").textContent = "panel server not answering";
    $("link").dataset.ok = "no";
    showBanner(`${err.message}. Retrying every few seconds; actions will work again when it answers.`, null);
  }
}
function banner(state) {
  const sim = state.sim;
  if (sim.died && !sim.running) {
    return showBanner(`The simulator stopped unexpectedly (${sim.died.why}). Its log: ${sim.died.log}.`,
      ["Restart simulator", (e) => act("restart_sim", {}, "sim-msg", e.target)]);
  }
  if (state.real?.stop_latched) {
    return showBanner("Emergency stop latched: real-arm runs are refused until a person checks the arm and deletes "
      + state.real.stop_file + ".", null, "estop");
  }
  showBanner(null);
}
function showBanner(text, action, kind = "warn") {
  const b = $("banner");
  b.hidden = !text;
  if (!text) return;
  b.dataset.kind = kind;
  b.replaceChildren(el("span", {}, text), ...(action ? [el("button", { id: "banner-action", onclick: action[1] }, action[0])] : []));
}

// ---------------------------------------------------------------------------------------------- wiring
function lines(text) { return text.split("\n").map((s) => s.trim()).filter(Boolean); }
function intOrNull(id) { const v = $(id).value.trim(); return v === "" ? null : Number.parseInt(v, 10); }

async function main() {
  try { overview = await api("/api/overview"); } catch (err) { say($("train-msg"), err.message, "error"); }
  const tasks = overview?.tasks || [];
  $("task").replaceChildren(...tasks.map((t) => el("option", {}, t)));
  $("task").value = overview?.default_task || tasks[0];
  $("train").onclick = (e) => act("start_training", { task: $("task").value, max_iterations: intOrNull("iterations"),
    num_envs: intOrNull("envs"), run_name: $("runname").value, overrides: lines($("overrides").value) }, "train-msg", e.target, 60000)
    .then((r) => { if (r) ui.focusJob = r.job_id; });
  $("sweep").onclick = (e) => act("start_sweep", { task: $("task").value, num_samples: intOrNull("trials"),
    max_iterations: intOrNull("iterations"), overrides: lines($("overrides").value) }, "sweep-msg", e.target, 60000).then((r) => { if (r) ui.focusJob = r.job_id; });
  $("run").onchange = (e) => selectRun(e.target.value);
  $("evaluate").onclick = (e) => act("evaluate", { run_id: ui.run, checkpoint: $("checkpoint").value || null,
    episodes: intOrNull("episodes") }, "policy-msg", e.target).then((r) => { if (r) ui.focusJob = r.job_id; });
  $("export").onclick = (e) => act("export", { run_id: ui.run, checkpoint: $("checkpoint").value || null },
    "policy-msg", e.target).then((r) => { if (r?.job_id) ui.focusJob = r.job_id; });
  $("sim-start").onclick = (e) => act("start_sim", { task: $("task").value, realtime: $("realtime").checked }, "sim-msg", e.target);
  $("sim-stop").onclick = (e) => act("stop_sim", {}, "sim-msg", e.target);
  $("play").onclick = (e) => act("play", { policy: ui.run, target: target() }, "play-msg", e.target);
  $("stop-policy").onclick = (e) => act("stop_policy", {}, "play-msg", e.target);
  $("set-target").onclick = (e) => act("set_target", { target: target() }, "play-msg", e.target);
  $("gw-start").onclick = (e) => act("start_gateway", { policy: ui.run }, "gw-msg", e.target);
  $("gw-stop").onclick = (e) => act("stop_gateway", {}, "gw-msg", e.target);
  $("dryrun").onchange = () => renderReal(ui.state?.real, overview?.real_arm_motion_allowed);
  $("real-go").onclick = (e) => {
    if ($("dryrun").checked) return act("real_dry_run", { policy: ui.run, targets: [target()] }, "real-msg", e.target)
      .then((r) => { if (r) say($("real-msg"), r.message + ` Plan: ${JSON.stringify(r.plan.targets_m)} m, ${r.plan.duration_s} s.`); });
    if (!confirm(`Move the REAL RoArm-M3 with ${ui.run} to ${JSON.stringify(target())} m? Keep clear of the arm.`)) return;
    return act("real_run", { policy: ui.run, targets: [target()], confirm: true }, "real-msg", e.target);
  };
  $("estop").onclick = async () => {
    const r = await act("emergency_stop", {}, "play-msg", null, 15000);
    if (r) showBanner(r.message, null, "estop");
  };
  for (const id of ["tx", "ty", "tz"]) $(id).addEventListener("input", drawPad);
  $("pad").addEventListener("click", padClick);
  $("task").onchange = () => loadWorkspace($("task").value);
  chart($("curve"), [], { note: "pick a run to see its learning curve" });
  chart($("errplot"), [], { note: "the task's error over time appears when a policy plays" });
  loadWorkspace($("task").value);
  frameLoop();
  for (;;) {  // one poll at a time: a slow answer delays the next, it never piles requests up
    await refresh();
    await new Promise((r) => setTimeout(r, 1000));
  }
}
main();
