// The page's "Teach the model", "needs checking first" order and "Similar in the training
// data" (artclf/serve/teach_routes.py, neighbour_images.py). Loaded after app.js, whose
// state, helpers and hooks it uses; text goes in only through textContent and attributes.
"use strict";

const teach = {enabled: false, order: "added", polling: null, lastRun: null};

// ---- similar training photos ----

function showNeighbours(row) {
  if (row.similar) row.similar.remove();
  const found = row.result.neighbours || [];
  if (!found.length) return;
  const list = el("div", {class: "similar-list"});
  for (const neighbour of found) {
    const labels = state.tasks.map((task) => neighbour.labels[task]).filter(Boolean).join(" · ");
    const where = neighbour.taught ? `taught: ${neighbour.image}`
                                   : [neighbour.museum, neighbour.object_id].filter(Boolean).join(" ");
    const image = el("img", {src: neighbour.thumbnail, alt: `${labels || "unlabelled"}, ${where}`,
                             title: [neighbour.title, where, neighbour.credit].filter(Boolean).join("\n")});
    list.append(el("figure", {class: "similar-item"}, image,
                   el("figcaption", {text: labels || "unlabelled"}),
                   el("figcaption", {class: "where", text: where})));
  }
  row.similar = el("details", {class: "similar"},
                   el("summary", {text: `Similar in the training data (${found.length})`}), list);
  row.nameCell.parentElement.append(row.similar);
}

// ---- needs checking first ----

// Unfamiliar photos first, then the least confident: where a label helps most.
function checkingScore(row) {
  if (!row.result) return row.error ? 3 : 2;
  const lowest = Math.min(...state.tasks.map((task) => row.result[task].probability));
  return (row.result.unfamiliar ? -1 : 0) + lowest;
}

function orderRows() {
  const rows = [...state.rows];
  rows.sort(teach.order === "check" ? (a, b) => checkingScore(a) - checkingScore(b) || a.id - b.id
                                    : (a, b) => a.id - b.id);
  for (const row of rows) {
    $("result-rows").append(row.tr);
    if (row.explainRow) $("result-rows").append(row.explainRow);
  }
}

// ---- corrections, saved as they are made ----

function correctionLabels(row) {
  return Object.fromEntries(state.tasks.map(
      (task) => [task, row.labels[task] !== row.result[task].label ? row.labels[task] : ""]));
}

function saveCorrection(row) {
  if (!teach.enabled || !row.file) return;
  const labels = correctionLabels(row);
  row.saving = (row.saving || Promise.resolve()).then(async () => {  // in order, per photo
    const form = new FormData();
    form.append("file", row.file, row.name);
    form.append("labels", JSON.stringify(labels));
    try {
      const response = await fetch("/api/corrections", {method: "POST", body: form});
      if (!response.ok) return showMessage(`Correction not saved: ${await errorText(response)}`, "error");
      row.tr.setAttribute("data-saved", Object.values(labels).some(Boolean) ? "yes" : "no");
      await refreshCorrections();
    } catch (_) {
      showMessage("Correction not saved: the server cannot be reached", "error");
    }
  });
}

function describeLabels(labels) {
  return state.tasks.filter((task) => labels[task]).map((task) => `${task}: ${labels[task]}`).join(", ");
}

async function refreshCorrections() {
  const response = await fetch("/api/corrections");
  if (!response.ok) return;
  const {corrections} = await response.json();
  const pending = corrections.filter((item) => item.pending);
  $("teach-summary").textContent = corrections.length
      ? `${corrections.length} corrected photos saved; ${pending.length} not yet in the run served.`
      : "No correction saved yet.";
  $("correction-list").replaceChildren(...corrections.map((item) => el("li",
      {class: item.pending ? "pending" : "taught", "data-id": item.id},
      el("img", {src: `/api/corrections/${item.id}/photo`, alt: ""}),
      el("span", {text: `${item.image}: ${describeLabels(item.labels)}`}))));
  $("teach-button").disabled = !pending.length || teach.polling !== null;
}

// ---- teaching ----

async function startTeaching() {
  $("teach-button").disabled = true;
  $("teach-result").hidden = true;
  const response = await fetch("/api/teach", {method: "POST"});
  if (!response.ok) {
    $("teach-button").disabled = false;
    return showMessage(`Teaching did not start: ${await errorText(response)}`, "error");
  }
  pollTeaching();
}

function pollTeaching() {
  $("teach-progress").hidden = false;
  teach.polling = setInterval(async () => {
    let job;
    try {
      job = await (await fetch("/api/teach")).json();
    } catch (_) {
      return;  // try again at the next tick
    }
    $("teach-progress").value = job.fraction || 0;
    $("teach-status").textContent = job.state === "running" ? `Teaching: ${job.message}` : "";
    if (job.state === "running") return;
    clearInterval(teach.polling);
    teach.polling = null;
    $("teach-progress").hidden = true;
    if (job.state === "failed") showMessage(`Teaching failed: ${job.error}`, "error");
    if (job.state === "done") showTaught(job.result);
    refreshCorrections();
    refreshRuns();
  }, 1000);
}

function figure(value) {
  return value === null || value === undefined || Number.isNaN(value) ? "–" : percent(value);
}

function figuresTable(before, after) {
  const keys = ["mean_balanced_accuracy", ...state.tasks.map((task) => `${task}_balanced_accuracy`)];
  const head = el("tr", {}, el("th", {text: "on held-out corrections"}),
                  el("th", {text: "before"}), el("th", {text: "after"}));
  const rows = keys.map((key) => el("tr", {}, el("td", {text: key.replaceAll("_", " ")}),
                                    el("td", {text: figure(before[key])}),
                                    el("td", {text: figure(after[key])})));
  return el("table", {class: "figures"}, el("thead", {}, head), el("tbody", {}, ...rows));
}

function showTaught(result) {
  teach.lastRun = result.run;
  const summary = result.summary || {};
  const box = $("teach-result");
  const text = `New run ${result.run}, taught from ${result.base} with ${summary.rows_train ?? "?"} ` +
               `corrected photos in ${Math.round(summary.seconds || 0)} s.`;
  const serve = el("button", {type: "button", id: "serve-new-button", text: "Serve the new run"});
  serve.addEventListener("click", () => serveRun(result.run));
  box.replaceChildren(el("p", {text}));
  if (summary.before && summary.after) box.append(figuresTable(summary.before, summary.after));
  else box.append(el("p", {class: "hint", text: "No correction was held out, so there are no before/after figures."}));
  box.append(serve);
  box.hidden = false;
}

// ---- runs ----

async function refreshRuns() {
  const response = await fetch("/api/runs");
  if (!response.ok) return;
  const {runs} = await response.json();
  $("run-select").replaceChildren(...runs.map((run) => {
    const from = run.lineage.length ? ` (from ${run.lineage[0].base})` : "";
    const option = el("option", {value: run.run, text: `${run.run}${from}${run.serving ? ", served" : ""}`});
    option.selected = run.serving;
    return option;
  }));
}

async function serveRun(name) {
  showMessage(`Loading run ${name}…`);
  const response = await fetch("/api/runs/serve", {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({run: name}),
  });
  if (!response.ok) return showMessage(`Run not served: ${await errorText(response)}`, "error");
  const health = await response.json();
  showModelInfo({...health, limits: state.limits});
  if (health.run === teach.lastRun) $("serve-new-button")?.remove();
  const again = el("button", {type: "button", class: "secondary", id: "classify-again-button",
                              text: "Classify the batch again"});
  again.addEventListener("click", classifyAgain);
  $("messages").replaceChildren(el("p", {class: "message info"},
      `Now serving run ${health.run}; the others stay in the list. `, again));
  refreshRuns();
  refreshCorrections();
}

function classifyAgain() {
  for (const row of state.rows.filter((item) => item.result && item.file)) {
    row.result = null;
    row.actions.replaceChildren();
    if (row.similar) row.similar.remove();
    if (row.explainRow) row.explainRow.remove();
    row.explainRow = null;
    for (const task of state.tasks) {
      row.taskCells[task].className = "task";
      row.taskCells[task].replaceChildren();
    }
    row.tr.className = "pending";
    row.status.textContent = "waiting…";
    startedRow();
    state.queue.push(row);
  }
  pump();
}

// ---- wiring ----

hooks.health.push((health) => {
  teach.enabled = Boolean(health.limits.teach);
  $("teach").hidden = !teach.enabled;
  if (!teach.enabled) return;
  refreshCorrections();
  refreshRuns();
  fetch("/api/teach").then((response) => response.json()).then((job) => {
    if (job.state === "running") pollTeaching();  // a reload while teaching
  }).catch(() => {});
});
hooks.result.push((row) => {
  showNeighbours(row);
  if (teach.order === "check") orderRows();
});
hooks.correct.push((row) => saveCorrection(row));

$("order-select").addEventListener("change", (event) => {
  teach.order = event.target.value;
  orderRows();
});
$("teach-button").addEventListener("click", startTeaching);
$("serve-run-button").addEventListener("click", () => serveRun($("run-select").value));
