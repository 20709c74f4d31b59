// A display's drawer: details, uptime, the priority image vs its fallback, error summary, status history,
// incidents, logs (level filter, paging by cursor) and the screenshot history with type badges.
import { ApiError, getJson, thumbnailUrl } from "./api.js";
import { STATUS, TYPE_LABEL, clockTime, displayName, element, percent, reasonWords } from "./format.js";

const LOG_PAGE = 50;
const LEVELS = ["", "ERROR", "WARN", "INFO", "DEBUG"];
const HISTORY_HOURS = 168;
const INCIDENT_LIMIT = 20;
const UPTIME_WINDOWS = [["24h", "24 h", "uptime_24h"], ["7d", "7 days", "uptime_7d"], ["30d", "30 days", "uptime_30d"]];

function statusText(status) {
  if (!status) return "(first seen)";
  const known = STATUS[status];
  return known ? `${known.icon} ${known.word}` : status;
}

// A section whose data did not come: its own words (403: the role may not read it), never a broken drawer.
function failure(error, what) {
  if (error instanceof ApiError && error.status === 403) {
    return element("p", { class: "muted", "data-state": "forbidden", text: `Not allowed: your role cannot read ${what}.` });
  }
  return element("p", { class: "muted", "data-state": "error", text: `Could not load ${what}: ${error.message}` });
}

export class Drawer {
  constructor({ root, title, body, closeButton, fleet }) {
    this.root = root;
    this.title = title;
    this.body = body;
    this.fleet = fleet;
    this.uuid = null;
    this.returnFocus = null;
    this.objectUrl = null;
    closeButton.addEventListener("click", () => this.close());
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && !this.root.hidden) this.close();
    });
  }

  async open(uuid) {
    const client = this.fleet.clients.get(uuid);
    if (!client) return;
    this.uuid = uuid;
    this.returnFocus = document.activeElement;
    this.root.hidden = false;
    this.root.dataset.clientUuid = uuid;
    this.title.textContent = displayName(client);
    this.body.replaceChildren(
      this.detailsSection(client),
      this.uptimeSection(),
      this.imageSection(),
      this.errorSection(client),
      this.statusHistorySection(),
      this.incidentsSection(),
      this.logsSection(),
      this.historySection(),
    );
    this.root.querySelector(".close").focus();
    await Promise.allSettled([
      this.loadUptime(),
      this.loadImage(),
      this.loadStatusHistory(),
      this.loadIncidents(),
      this.loadLogs(null),
      this.loadHistory(),
    ]);
  }

  close() {
    this.root.hidden = true;
    this.uuid = null;
    if (this.objectUrl) URL.revokeObjectURL(this.objectUrl);
    this.objectUrl = null;
    this.returnFocus?.focus?.();
  }

  // A live event about the open display: its details follow.
  refresh(uuid) {
    if (uuid !== this.uuid) return;
    const client = this.fleet.clients.get(uuid);
    const section = this.body.querySelector('[data-section="details"]');
    if (client && section) section.replaceWith(this.detailsSection(client));
  }

  detailsSection(client) {
    const status = STATUS[client.status] ?? STATUS.offline;
    const reasons = reasonWords(client.statusReasons).join(", ");
    const rows = [
      ["Status", `${status.icon} ${status.word}${reasons ? ` — ${reasons}` : ""}`],
      ["UUID", client.uuid],
      ["Hostname", client.hostname ?? "–"],
      ["Description", client.description ?? "–"],
      ["Group", client.groupName ?? "ungrouped"],
      ["IP / model", `${client.ip ?? "–"} / ${client.model ?? "–"}`],
      ["Last heartbeat", clockTime(client.lastAlive)],
      ["Process", `${client.currentProcess ?? "–"} (${client.processStatus ?? "unknown"}${client.processPid ? `, pid ${client.processPid}` : ""})`],
      ["Screen (reported / detected)", `${client.screenHealthStatus ?? "–"} / ${client.detectedScreenHealth ?? "–"}`],
      ["Current event", client.currentEventId ?? "–"],
      ["Registered", clockTime(client.registrationTime)],
    ];
    const list = element("dl", { class: "details" });
    for (const [label, value] of rows) list.append(element("dt", { text: label }), element("dd", { text: String(value) }));
    return element("section", { "data-section": "details" }, element("h3", { text: "Details" }), list);
  }

  uptimeSection() {
    const list = element("dl", { class: "uptime" });
    for (const [key, label] of UPTIME_WINDOWS) {
      list.append(element("div", { "data-window": key }, element("dt", { text: label }), element("dd", { text: "…" })));
    }
    return element(
      "section",
      { "data-section": "uptime", "data-state": "loading" },
      element("h3", { text: "Uptime (not offline)" }),
      list,
    );
  }

  async loadUptime() {
    const uuid = this.uuid;
    const section = this.body.querySelector('[data-section="uptime"]');
    let client;
    try {
      client = await getJson(`/api/clients/${encodeURIComponent(uuid)}`);
    } catch (error) {
      if (uuid !== this.uuid) return;
      section.dataset.state = "failed";
      section.querySelector(".uptime").replaceWith(failure(error, "the uptime"));
      return;
    }
    if (uuid !== this.uuid) return;
    for (const [key, , field] of UPTIME_WINDOWS) {
      // null: the evaluator has not seen the display yet.
      section.querySelector(`[data-window="${key}"] dd`).textContent = percent(client[field]);
    }
    section.dataset.state = "loaded";
  }

  imageSection() {
    return element(
      "section",
      { "data-section": "image" },
      element("h3", { text: "Screenshot" }),
      element("div", { class: "shot" }, element("p", { class: "caption muted", text: "loading…" })),
    );
  }

  // The priority path answers the priority image, or the latest one when there is none (fallback):
  // the caption says which, from the response's own headers.
  async loadImage() {
    const uuid = this.uuid;
    const box = this.body.querySelector('[data-section="image"] .shot');
    const response = await fetch(`/screenshots/${encodeURIComponent(uuid)}/priority`, { credentials: "same-origin" });
    if (uuid !== this.uuid) return;
    if (!response.ok) {
      box.replaceChildren(element("p", { class: "caption muted", "data-shown": "none", text: "No screenshot yet." }));
      return;
    }
    const fallback = response.headers.get("X-Screenshot-Fallback") === "true";
    const type = response.headers.get("X-Screenshot-Type") ?? "periodic";
    const client = this.fleet.clients.get(uuid);
    const active = client && this.fleet.isPriorityActive(client);
    if (this.objectUrl) URL.revokeObjectURL(this.objectUrl);
    this.objectUrl = URL.createObjectURL(await response.blob());
    const caption = fallback
      ? "No priority screenshot from this display: showing its latest screenshot instead (fallback)."
      : `Priority screenshot (${TYPE_LABEL[type] ?? type}), ${active ? "active now" : "TTL ended"}, received ${clockTime(client?.priorityScreenshotReceivedAt)}.`;
    box.replaceChildren(
      element("p", { class: "caption", "data-shown": fallback ? "fallback" : "priority", text: caption }),
      element("img", { src: this.objectUrl, alt: caption }),
    );
  }

  errorSection(client) {
    const counts = client.logCounts24h ?? { error: 0, warn: 0, info: 0, debug: 0 };
    const latest = client.latestError;
    return element(
      "section",
      { "data-section": "errors" },
      element("h3", { text: "Errors (24 h)" }),
      element(
        "div",
        { class: "counts" },
        element("span", { class: "level-ERROR", "data-count": "error", text: `${counts.error} errors` }),
        element("span", { class: "level-WARN", "data-count": "warn", text: `${counts.warn} warnings` }),
        element("span", { text: `${counts.info} info` }),
        element("span", { text: `${counts.debug} debug` }),
      ),
      element("p", {
        class: latest ? "" : "muted",
        text: latest ? `Latest error (${clockTime(latest.timestamp)}): ${latest.message}` : "No error logged.",
      }),
    );
  }

  statusHistorySection() {
    return element(
      "section",
      { "data-section": "status-history", "data-state": "loading" },
      element("h3", { text: "Status history (7 days)" }),
      element("ol", { class: "transitions" }, element("li", { class: "muted", text: "loading…" })),
    );
  }

  async loadStatusHistory() {
    const uuid = this.uuid;
    const section = this.body.querySelector('[data-section="status-history"]');
    let answer;
    try {
      answer = await getJson(`/api/clients/${encodeURIComponent(uuid)}/status-history?hours=${HISTORY_HOURS}`);
    } catch (error) {
      if (uuid !== this.uuid) return;
      section.dataset.state = "failed";
      section.querySelector(".transitions").replaceWith(failure(error, "the status history"));
      return;
    }
    if (uuid !== this.uuid) return;
    // Oldest first from the API; the newest is what an operator looks for.
    const items = [...answer.transitions].reverse().map((change) => {
      const reasons = reasonWords(change.reasons).join(", ");
      return element(
        "li",
        { "data-transition": "", "data-from": change.from ?? "", "data-to": change.to },
        element("span", { class: "time", text: clockTime(change.at) }),
        element("span", { class: "change", text: `${statusText(change.from)} → ${statusText(change.to)}` }),
        element("span", { class: "why", text: reasons ? `(${reasons})` : "" }),
      );
    });
    if (!items.length) items.push(element("li", { class: "muted", "data-state": "empty", text: "No transitions recorded yet." }));
    section.querySelector(".transitions").replaceChildren(...items);
    section.dataset.state = "loaded";
  }

  incidentsSection() {
    return element(
      "section",
      { "data-section": "incidents", "data-state": "loading" },
      element("h3", { text: "Incidents" }),
      element("ol", { class: "incidents" }, element("li", { class: "muted", text: "loading…" })),
    );
  }

  async loadIncidents() {
    const uuid = this.uuid;
    const section = this.body.querySelector('[data-section="incidents"]');
    const query = new URLSearchParams({ client_uuid: uuid, limit: String(INCIDENT_LIMIT) });
    let answer;
    try {
      answer = await getJson(`/api/incidents?${query}`);
    } catch (error) {
      if (uuid !== this.uuid) return;
      section.dataset.state = "failed";
      section.querySelector(".incidents").replaceWith(failure(error, "incidents"));
      return;
    }
    if (uuid !== this.uuid) return;
    const items = answer.incidents.map((incident) => {
      const reasons = reasonWords(incident.reasons).join(", ");
      const state = incident.open ? "OPEN" : `closed ${clockTime(incident.closed_at)}`;
      const acknowledged = incident.acknowledged_at
        ? `acknowledged by ${incident.acknowledged_by ?? "?"} at ${clockTime(incident.acknowledged_at)}`
        : "not acknowledged";
      return element(
        "li",
        {
          "data-incident-id": incident.id,
          "data-open": String(incident.open),
          "data-acknowledged": String(Boolean(incident.acknowledged_at)),
        },
        element("span", { class: "state", text: state }),
        element("span", { class: "change", text: `${statusText(incident.status)}${reasons ? ` — ${reasons}` : ""}` }),
        element("span", { class: "time", text: `opened ${clockTime(incident.opened_at)}` }),
        element("span", { class: "ack", text: acknowledged }),
      );
    });
    if (!items.length) items.push(element("li", { class: "muted", "data-state": "empty", text: "No incidents." }));
    section.querySelector(".incidents").replaceChildren(...items);
    section.dataset.state = "loaded";
  }

  logsSection() {
    const level = element("select", { id: "log-level", "aria-label": "Log level" });
    for (const value of LEVELS) level.append(element("option", { value, text: value || "all levels" }));
    level.addEventListener("change", () => this.loadLogs(null));
    const newer = element("button", { type: "button", "data-action": "logs-first", text: "⇤ Newest" });
    const older = element("button", { type: "button", "data-action": "logs-older", text: "Older →" });
    newer.addEventListener("click", () => this.loadLogs(null));
    older.addEventListener("click", () => this.loadLogs(this.nextCursor));
    this.pageNumber = 1;
    return element(
      "section",
      { "data-section": "logs" },
      element("h3", { text: "Logs" }),
      element("div", { class: "log-controls" }, level, newer, older, element("span", { class: "muted small page-info" })),
      element("table", { class: "logs" }, element("tbody")),
    );
  }

  async loadLogs(cursor) {
    const uuid = this.uuid;
    const section = this.body.querySelector('[data-section="logs"]');
    const level = section.querySelector("#log-level").value;
    const query = new URLSearchParams({ limit: String(LOG_PAGE) });
    if (level) query.set("level", level);
    if (cursor) query.set("cursor", cursor);
    const page = await getJson(`/api/client-logs/${encodeURIComponent(uuid)}/logs?${query}`);
    if (uuid !== this.uuid) return;
    this.pageNumber = cursor ? this.pageNumber + 1 : 1;
    this.nextCursor = page.next_cursor;
    const rows = page.logs.map((log) =>
      element(
        "tr",
        { "data-log-id": log.id },
        element("td", { class: "time", text: clockTime(log.timestamp) }),
        element("td", { class: `level level-${log.level}`, text: log.level }),
        element("td", { class: "message", text: log.message }),
      ),
    );
    if (!rows.length) rows.push(element("tr", {}, element("td", { colspan: 3, class: "muted", text: "No logs." })));
    section.querySelector("tbody").replaceChildren(...rows);
    section.querySelector('[data-action="logs-older"]').disabled = !page.next_cursor;
    section.querySelector('[data-action="logs-first"]').disabled = !cursor;
    section.dataset.page = String(this.pageNumber);
    section.querySelector(".page-info").textContent = `page ${this.pageNumber} · ${page.count} shown`;
  }

  historySection() {
    return element(
      "section",
      { "data-section": "history" },
      element("h3", { text: "Screenshot history" }),
      element("ul", { class: "history" }),
    );
  }

  async loadHistory() {
    const uuid = this.uuid;
    const answer = await getJson(`/api/clients/${encodeURIComponent(uuid)}/screenshots`);
    if (uuid !== this.uuid) return;
    const list = this.body.querySelector('[data-section="history"] .history');
    const items = (answer.screenshots ?? []).map((shot) => {
      const image = element("img", { alt: `${shot.screenshot_type} ${shot.received_at}`, loading: "lazy", src: thumbnailUrl(shot.hash, 160) });
      // Before thumbnails exist, the drawer's few history images are fetched whole.
      image.addEventListener("error", () => {
        if (image.src.includes("/thumbnails/")) image.src = shot.url;
      }, { once: false });
      return element(
        "li",
        { "data-screenshot-id": shot.id },
        element("div", { class: "thumb" }, image, element("span", {
          class: "badge", "data-screenshot-type": shot.screenshot_type, text: TYPE_LABEL[shot.screenshot_type] ?? shot.screenshot_type,
        })),
        element("div", { class: "when", text: clockTime(shot.received_at) }),
      );
    });
    if (!items.length) items.push(element("li", { class: "muted", text: "No screenshots yet." }));
    list.replaceChildren(...items);
  }
}
