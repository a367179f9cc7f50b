// dblogpack console: local-time window pickers shown with UTC, and live package progress.
"use strict";

function pad(n) { return String(n).padStart(2, "0"); }

function localValue(date) {
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

function utcText(date) {
  return date.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}

// Each picker is local time; its hidden twin carries unix seconds, which the server reads.
function wirePicker(picker) {
  const hidden = document.getElementById(picker.dataset.unixField);
  const output = document.getElementById(picker.dataset.utcOutput);
  if (!picker.value && hidden.value) {
    picker.value = localValue(new Date(Number(hidden.value) * 1000));
  } else if (!picker.value && picker.required) {
    picker.value = localValue(new Date(Number(picker.dataset.default) * 1000));
  }
  const update = () => {
    const date = picker.value ? new Date(picker.value) : null;
    const valid = date && !Number.isNaN(date.getTime());
    hidden.value = valid ? String(Math.floor(date.getTime() / 1000)) : "";
    output.textContent = valid ? `= ${utcText(date)}` : "";
  };
  picker.addEventListener("input", update);
  update();
}

// While a package is running, poll the console's JSON and update its row; reload once it ends
// so the row gets its download, summary and delete actions.
function watchPackages(section) {
  const running = () => section.querySelectorAll('tr[data-final="no"]');
  if (!running().length) return;
  const poll = async () => {
    let packages;
    try {
      const response = await fetch(section.dataset.progressUrl, { credentials: "same-origin" });
      // Anything but JSON (a signed-out session lands on the sign-in page): try again later.
      if (!response.ok || !response.headers.get("content-type")?.includes("json")) return;
      ({ packages } = await response.json());
    } catch (error) {
      return; // the server is restarting or unreachable: the next tick tries again
    }
    let finished = false;
    for (const p of packages) {
      const row = section.querySelector(`tr[data-package="${p.id}"]`);
      if (!row || row.dataset.final === "yes") continue;
      row.querySelector('[data-field="state"]').textContent = p.state;
      const bar = row.querySelector("progress");
      if (bar) bar.value = p.progress;
      const pct = row.querySelector('[data-field="progress"]');
      if (pct) pct.textContent = `${p.progress}%`;
      // A running package may carry a message too: the attempt that failed and is retried.
      const message = row.querySelector('[data-field="message"]');
      message.textContent = p.message;
      message.hidden = !p.message;
      // A queued package can be cancelled until a worker claims it.
      const cancel = row.querySelector("form[data-cancel]");
      if (cancel) cancel.hidden = !p.queued;
      if (p.final) finished = true;
    }
    if (finished) window.location.reload();
  };
  setInterval(poll, 1000);
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("input[data-unix-field]").forEach(wirePicker);
  const packages = document.getElementById("packages");
  if (packages) watchPackages(packages);
});
