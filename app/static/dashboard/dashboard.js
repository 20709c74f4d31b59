// The operator dashboard (SPEC §11): plain ES modules, no build step.
import { ApiError, getJson, overviewPath } from "./api.js";
import { Drawer } from "./drawer.js";
import { Fleet } from "./fleet.js";
import { Live } from "./live.js";

const $ = (selector) => document.querySelector(selector);
const ttlSeconds = Number($('meta[name="priority-ttl-seconds"]').content);

const fleet = new Fleet({
  grid: $("#grid"),
  template: $("#tile-template"),
  ttlSeconds,
  onOpen: (uuid) => drawer.open(uuid),
});
const drawer = new Drawer({
  root: $("#drawer"),
  title: $("#drawer-title"),
  body: $("#drawer-body"),
  closeButton: $("#drawer-close"),
  fleet,
});

let pendingEvents = [];
let refreshQueued = false;

function showSummary() {
  const summary = fleet.summary();
  for (const counter of document.querySelectorAll("[data-summary]")) {
    const value = summary[counter.dataset.summary];
    const node = counter.querySelector(".value");
    const text = value === undefined ? "–" : String(value);
    if (node.textContent !== text) node.textContent = text;
  }
}

function showGroups() {
  const select = $("#filter-group");
  const { names, ungrouped } = fleet.groups();
  const wanted = ["", ...names, ...(ungrouped && names.length ? ["\u0000"] : [])];
  const current = [...select.options].map((option) => option.value);
  if (wanted.length === current.length && wanted.every((value, index) => value === current[index])) return;
  const chosen = select.value;
  select.replaceChildren(
    ...wanted.map((value) => {
      const option = document.createElement("option");
      option.value = value;
      option.textContent = value === "" ? "all groups" : value === "\u0000" ? "ungrouped" : value;
      return option;
    }),
  );
  select.value = wanted.includes(chosen) ? chosen : "";
}

function showNotice() {
  const notice = $("#notice");
  const shown = fleet.visibleCount();
  $("#shown-count").textContent = fleet.clients.size ? `${shown} of ${fleet.clients.size} shown` : "";
  if (!fleet.clients.size) {
    notice.dataset.state = "empty";
    notice.textContent = "No displays yet. A display appears here as soon as it sends a heartbeat, a log or a screenshot (over MQTT or HTTP).";
    notice.hidden = false;
  } else if (!shown) {
    notice.dataset.state = "filtered";
    notice.textContent = "No display matches these filters.";
    notice.hidden = false;
  } else {
    notice.hidden = true;
  }
}

function redraw() {
  showSummary();
  showGroups();
  showNotice();
}

async function refresh() {
  try {
    const overview = await getJson(overviewPath);
    fleet.load(overview);
    for (const [kind, data] of pendingEvents) applyEvent(kind, data);
    pendingEvents = [];
    redraw();
    if (!document.body.dataset.loaded) {
      document.body.dataset.loaded = "true";
      // When the first fleet is on screen (the next frame): bench/dashboard.py reads this mark.
      requestAnimationFrame(() => setTimeout(() => performance.mark("fleet-drawn"), 0));
    }
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 401)) {
      const notice = $("#notice");
      notice.dataset.state = "error";
      notice.textContent = `The overview could not be loaded (${error.message}); retrying.`;
      notice.hidden = false;
    }
  }
}

// A display the page does not know yet (new on the fleet): one overview read, not one per event.
function queueRefresh() {
  if (refreshQueued) return;
  refreshQueued = true;
  setTimeout(async () => {
    refreshQueued = false;
    await refresh();
  }, 500);
}

function applyEvent(kind, data) {
  const client = fleet.clients.get(data.uuid);
  if (!client) {
    queueRefresh();
    return;
  }
  if (kind === "status") {
    fleet.patch(data.uuid, { status: data.new, statusReasons: data.reasons ?? [], isAlive: data.new !== "offline" });
  } else if (kind === "screenshot") {
    const change = { lastScreenshotHash: data.hash, latestScreenshotType: data.type };
    if (data.type !== "periodic") {
      Object.assign(change, {
        priorityScreenshotType: data.type,
        priorityScreenshotReceivedAt: data.receivedAt,
        priorityScreenshotHash: data.hash,
      });
    }
    fleet.patch(data.uuid, change);
  } else if (kind === "priority") {
    if (data.active) {
      fleet.patch(data.uuid, {
        priorityScreenshotType: data.type,
        priorityScreenshotReceivedAt: data.receivedAt,
        priorityScreenshotHash: data.hash,
      });
    } else {
      // The service says it ended: believe it even if this browser's clock disagrees.
      fleet.patch(data.uuid, { priorityEnded: Date.parse(data.receivedAt) });
    }
  } else if (kind === "error") {
    const counts = { ...(client.logCounts24h ?? {}), error: (client.logCounts24h?.error ?? 0) + 1 };
    fleet.logTotals.errorLogs += 1;
    fleet.patch(data.uuid, {
      logCounts24h: counts,
      latestError: { id: data.logId, level: "ERROR", message: data.message, timestamp: data.timestamp, context: {} },
    });
  }
  drawer.refresh(data.uuid);
}

function onEvent(kind, data) {
  if (!fleet.loaded) {
    pendingEvents.push([kind, data]);
    return;
  }
  applyEvent(kind, data);
  showSummary();
  if (fleet.clients.has(data.uuid)) showNotice();
  // For scripts that watch the page (bench/dashboard.py measures each event's lag with it).
  window.dispatchEvent(new CustomEvent("fleet-event", { detail: { kind, data } }));
}

function onStateChange(state) {
  const connection = $("#connection");
  connection.dataset.connection = state;
  connection.textContent = state === "live" ? "Live" : state === "lost" ? "Stream lost, retrying (polling meanwhile)" : "Connecting…";
}

function setUpFilters() {
  const status = $("#filter-status");
  const group = $("#filter-group");
  const text = $("#filter-text");
  const apply = () => {
    fleet.applyFilter({ status: status.value, group: group.value, text: text.value.trim() });
    for (const counter of document.querySelectorAll("[data-filter-status]")) {
      counter.setAttribute("aria-pressed", String(counter.dataset.filterStatus === status.value && status.value !== ""));
    }
    showNotice();
  };
  status.addEventListener("change", apply);
  group.addEventListener("change", apply);
  text.addEventListener("input", apply);
  for (const counter of document.querySelectorAll("[data-filter-status]")) {
    counter.addEventListener("click", () => {
      status.value = status.value === counter.dataset.filterStatus ? "" : counter.dataset.filterStatus;
      apply();
    });
  }
  document.addEventListener("keydown", (event) => {
    if (event.key === "/" && document.activeElement?.tagName !== "INPUT") {
      event.preventDefault();
      text.focus();
    }
  });
}

setUpFilters();
const live = new Live({ onEvent, onStateChange, poll: refresh, fastPolling: () => fleet.anyPriorityActive() });
live.start();
await refresh();
setInterval(() => {
  if (fleet.tick()) showSummary();
  else if (fleet.anyPriorityActive()) showSummary();
}, 1000);
