// The artclf page: photos in, three labels out, corrections, CSV export.
// Plain JS, no build step. Text from files, URLs or the server only ever goes into the
// page through textContent, setAttribute or element values, never as markup.
"use strict";

const MAX_IN_FLIGHT = 2;  // The server runs one model call at a time; two keep it busy.

const state = {
  tasks: [],  // the run's tasks and classes come from /api/health
  classes: {},
  limits: null,
  rows: [],
  queue: [],
  inFlight: 0,
  total: 0,
  finished: 0,
  nextId: 1,
  ready: null,
};

const $ = (id) => document.getElementById(id);

// Where teach.js (loaded after this file) joins in: called with (health), (row) and (row, task).
const hooks = {health: [], result: [], correct: []};

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
}

function percent(p) {
  return `${(p * 100).toFixed(0)}%`;
}

function formatBytes(bytes) {
  return bytes >= 1 << 20 ? `${(bytes / (1 << 20)).toFixed(0)} MB` : `${(bytes / 1024).toFixed(0)} KB`;
}

async function errorText(response) {
  try {
    const body = await response.json();
    if (body.files && body.files.length === 1) return body.files[0].error;
    return body.error || `the server answered ${response.status}`;
  } catch (_) {
    return `the server answered ${response.status}`;
  }
}

function showMessage(text, kind = "info") {
  $("messages").replaceChildren(el("p", {class: `message ${kind}`, text}));
}

// ---- the model and its limits ----

// One column per task of the served run, between the photo and the actions.
function showTaskHeaders(tasks) {
  const head = $("result-head");
  const actions = head.lastElementChild;
  for (const task of tasks) {
    head.insertBefore(el("th", {text: task.charAt(0).toUpperCase() + task.slice(1)}), actions);
  }
}

async function loadHealth() {
  try {
    const response = await fetch("/api/health");
    const health = await response.json();
    state.tasks = health.tasks;
    state.classes = health.classes;
    state.limits = health.limits;
    showTaskHeaders(health.tasks);
    showModelInfo(health);
    $("limits-hint").textContent =
        `Up to ${formatBytes(health.limits.max_file_bytes)} and ` +
        `${(health.limits.max_pixels / 1e6).toFixed(0)} megapixels per photo.`;
    for (const hook of hooks.health) hook(health);
  } catch (_) {
    $("model-info").textContent = "The server cannot be reached.";
  }
}

// The header: the run served, what it was adapted from, its trunk and config.
function showModelInfo(health) {
  const hash = health.config_hash ? health.config_hash.slice(0, 12) : "none";
  const lineage = (health.lineage || []).map(
      (step) => ` (taught from ${step.base} with ${step.rows} corrected photos)`).join("");
  $("model-info").textContent =
      `Serving run ${health.run}${lineage}: ${health.trunk} trunk (config ${hash}). ` +
      `Flagged for checking below ${percent(health.limits.low_confidence_threshold)}.`;
}

// ---- adding photos ----

function addFiles(files, sourceUrl = "") {
  for (const file of files) {
    const row = createRow(file.name || "pasted image", sourceUrl);
    row.file = file;
    setThumbnail(row, file);
    startedRow();
    if (state.limits && file.size > state.limits.max_file_bytes) {
      finishRow(row, `too large: ${formatBytes(file.size)}, over the limit of ` +
                     `${formatBytes(state.limits.max_file_bytes)} per photo`);
    } else {
      state.queue.push(row);
    }
  }
  pump();
}

async function addUrl(url) {
  const row = createRow(url, url);
  startedRow();
  try {
    const response = await fetch("/api/fetch", {
      method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({url}),
    });
    if (!response.ok) return finishRow(row, await errorText(response));
    const blob = await response.blob();
    row.name = decodeURIComponent(response.headers.get("X-Image-Name") || "image");
    row.sourceUrl = decodeURIComponent(response.headers.get("X-Source-Url") || url);
    row.file = new File([blob], row.name, {type: blob.type});
    row.nameCell.textContent = row.name;
    row.tr.setAttribute("data-image", row.name);
    setThumbnail(row, row.file);
    state.queue.push(row);
    pump();
  } catch (_) {
    finishRow(row, "the server cannot be reached");
  }
}

function pump() {
  while (state.inFlight < MAX_IN_FLIGHT && state.queue.length) {
    const row = state.queue.shift();
    state.inFlight += 1;
    classify(row).finally(() => {
      state.inFlight -= 1;
      pump();
    });
  }
}

async function classify(row) {
  await state.ready;  // the classes and limits come from /api/health
  const form = new FormData();
  form.append("files", row.file, row.name);
  try {
    const response = await fetch("/api/predict", {method: "POST", body: form});
    if (!response.ok) return finishRow(row, await errorText(response));
    const body = await response.json();
    showResult(row, body.results[0]);
    finishRow(row);
  } catch (_) {
    finishRow(row, "the server cannot be reached");
  }
}

// ---- progress ----

function startedRow() {
  if (state.finished === state.total) {  // a new batch of work: count from zero
    state.total = 0;
    state.finished = 0;
  }
  state.total += 1;
  updateProgress();
}

function finishRow(row, error) {
  if (error !== undefined) showError(row, error);
  state.finished += 1;
  updateProgress();
  updateSummary();
}

function updateProgress() {
  const busy = state.finished < state.total;
  $("progress-section").hidden = !busy;
  $("progress").max = Math.max(1, state.total);
  $("progress").value = state.finished;
  $("progress-text").textContent = `Classifying: ${state.finished} of ${state.total} done`;
}

function updateSummary() {
  const done = state.rows.filter((row) => row.result);
  const refused = state.rows.filter((row) => row.error).length;
  const flagged = done.filter((row) => row.result.low_confidence.length).length;
  const corrected = done.filter((row) => correctedTasks(row).length).length;
  const parts = [`${done.length} classified`];
  if (flagged) parts.push(`${flagged} to check`);
  if (corrected) parts.push(`${corrected} corrected`);
  if (refused) parts.push(`${refused} refused`);
  $("batch-summary").textContent = parts.join(" · ");
  $("export-button").disabled = done.length === 0;
  $("batch").hidden = state.rows.length === 0;
}

// ---- the table ----

function createRow(name, sourceUrl) {
  const row = {id: state.nextId++, name, sourceUrl, file: null, result: null, error: null,
               labels: {}, selects: {}, taskCells: {}};
  row.thumb = el("img", {class: "thumb", alt: ""});
  row.thumb.hidden = true;
  row.nameCell = el("div", {class: "name", text: name});
  row.status = el("div", {class: "status", text: "waiting…"});
  const photo = el("td", {class: "photo"}, row.thumb, row.nameCell, row.status);
  row.tr = el("tr", {"data-image": name, "data-row": String(row.id), class: "pending"}, photo);
  for (const task of state.tasks) {
    row.taskCells[task] = el("td", {class: "task", "data-task": task});
    row.tr.append(row.taskCells[task]);
  }
  row.actions = el("td", {class: "actions"});
  row.tr.append(row.actions);
  $("result-rows").append(row.tr);
  state.rows.push(row);
  updateSummary();
  return row;
}

function setThumbnail(row, file) {
  if (row.thumbUrl) URL.revokeObjectURL(row.thumbUrl);
  row.thumbUrl = URL.createObjectURL(file);
  row.thumb.addEventListener("load", () => { row.thumb.hidden = false; }, {once: true});
  row.thumb.addEventListener("error", () => { row.thumb.hidden = true; }, {once: true});
  row.thumb.src = row.thumbUrl;
}

function showError(row, message) {
  row.error = message;
  row.tr.className = "error";
  row.status.textContent = "";
  const cell = el("td", {class: "error-text", colspan: String(state.tasks.length + 1),
                         text: `Not classified: ${message}`});
  for (const task of state.tasks) row.taskCells[task].remove();
  row.actions.remove();
  row.tr.append(cell);
}

function runnerUp(distribution) {
  const ranked = Object.entries(distribution).sort((a, b) => b[1] - a[1]);
  return ranked[1];
}

function showResult(row, result) {
  row.result = result;
  row.tr.className = "done";
  row.status.textContent = row.sourceUrl ? `from ${new URL(row.sourceUrl).host}` : "";
  if (result.unfamiliar) {
    row.status.append(el("span", {class: "badge unfamiliar", text: "unfamiliar photo",
                                  title: "unlike the photos the model was trained on"}));
  }
  for (const task of state.tasks) fillTaskCell(row, task, result[task]);
  const button = el("button", {type: "button", class: "secondary explain-button",
                               text: "Where it looked"});
  button.addEventListener("click", () => toggleExplanation(row, button));
  row.actions.append(button);
  for (const hook of hooks.result) hook(row);
}

function fillTaskCell(row, task, prediction) {
  const cell = row.taskCells[task];
  const select = el("select", {"aria-label": `${task} of ${row.name}`});
  select.append(el("option", {value: "", text: "unknown"}));
  for (const name of state.classes[task]) select.append(el("option", {value: name, text: name}));
  select.value = prediction.label;
  row.labels[task] = prediction.label;
  row.selects[task] = select;
  select.addEventListener("change", () => correct(row, task, select.value));
  const [second, secondP] = runnerUp(prediction.distribution);
  const model = el("div", {class: "model-says"},
                   el("span", {class: "predicted", text: `${prediction.label} ${percent(prediction.probability)}`}));
  const runner = el("div", {class: "runner-up", text: `runner-up: ${second} ${percent(secondP)}`});
  cell.setAttribute("data-label", prediction.label);
  cell.setAttribute("data-probability", String(prediction.probability));
  cell.replaceChildren(select, model, runner);
  if (row.result.low_confidence.includes(task)) {
    cell.classList.add("low");
    model.append(el("span", {class: "badge low", text: "check",
                             title: "the model is not sure about this one"}));
  }
}

function correct(row, task, value) {
  row.labels[task] = value;
  row.taskCells[task].classList.toggle("corrected", value !== row.result[task].label);
  updateSummary();
  for (const hook of hooks.correct) hook(row, task);
}

function correctedTasks(row) {
  return state.tasks.filter((task) => row.labels[task] !== row.result[task].label);
}

// ---- Grad-CAM ----

async function toggleExplanation(row, button) {
  if (row.explainRow) {
    row.explainRow.hidden = !row.explainRow.hidden;
    return;
  }
  button.disabled = true;
  button.textContent = "Looking…";
  const list = el("div", {class: "overlay-list"});
  const cell = el("td", {colspan: String(state.tasks.length + 2), class: "overlays"}, list);
  row.explainRow = el("tr", {class: "explain-row"}, cell);
  row.tr.after(row.explainRow);
  const form = new FormData();
  form.append("file", row.file, row.name);
  try {
    const response = await fetch("/api/explain", {method: "POST", body: form});
    if (!response.ok) {
      cell.append(el("p", {class: "message error", text: await errorText(response)}));
    } else {
      const body = await response.json();
      for (const task of state.tasks) {
        const image = el("img", {alt: `where the ${task} head looked`, src: body.overlays[task]});
        const caption = el("figcaption", {text: `${task}: ${row.result[task].label}`});
        list.append(el("figure", {"data-task": task}, image, caption));
      }
    }
  } catch (_) {
    cell.append(el("p", {class: "message error", text: "the server cannot be reached"}));
  }
  button.disabled = false;
  button.textContent = "Where it looked";
}

// ---- export ----

async function exportCsv() {
  const done = state.rows.filter((row) => row.result);
  const names = done.map((row) => row.name);
  const duplicates = names.filter((name, i) => names.indexOf(name) !== i);
  const rows = done.map((row) => ({
    image: row.name,
    labels: row.labels,
    predicted: Object.fromEntries(state.tasks.map((task) => [task, {
      label: row.result[task].label, probability: row.result[task].probability}])),
    familiarity: row.result.familiarity ?? null,
    unfamiliar: row.result.unfamiliar ?? null,
    source_url: row.sourceUrl || "",
  }));
  const response = await fetch("/api/export", {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({rows}),
  });
  if (!response.ok) return showMessage(`Export failed: ${await errorText(response)}`, "error");
  const url = URL.createObjectURL(await response.blob());
  const link = el("a", {href: url, download: "artclf_batch.csv"});
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
  showMessage(duplicates.length
      ? `Exported ${rows.length} rows. Several photos share a name (${duplicates[0]}): ` +
        "labels.csv needs each image once, so rename them before training."
      : `Exported ${rows.length} rows. Fill in the split column before training on them.`,
      duplicates.length ? "warning" : "info");
}

function clearBatch() {
  for (const row of state.rows) if (row.thumbUrl) URL.revokeObjectURL(row.thumbUrl);
  state.rows = [];
  state.total -= state.queue.length;  // the waiting ones will never finish
  state.queue = [];
  $("result-rows").replaceChildren();
  $("messages").replaceChildren();
  updateProgress();
  updateSummary();
}

// ---- wiring ----

function imageFilesOf(dataTransfer) {
  return Array.from(dataTransfer.files || []);
}

function wire() {
  const zone = $("drop-zone");
  $("file-input").addEventListener("change", (event) => {
    addFiles(Array.from(event.target.files));
    event.target.value = "";
  });
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    const files = imageFilesOf(event.dataTransfer);
    const url = (event.dataTransfer.getData("text/uri-list") || "").split("\n")[0].trim();
    if (files.length) addFiles(files);
    else if (url) addUrl(url);  // a photo dragged from another web page
  });
  document.addEventListener("paste", (event) => {
    if (event.target === $("url-input")) return;  // pasting a URL into the field
    const files = imageFilesOf(event.clipboardData);
    if (files.length) addFiles(files);
  });
  $("url-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const url = $("url-input").value.trim();
    if (url) addUrl(url);
    $("url-input").value = "";
  });
  $("export-button").addEventListener("click", exportCsv);
  $("clear-button").addEventListener("click", clearBatch);
}

wire();
state.ready = loadHealth();
