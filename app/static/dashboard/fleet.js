// The fleet as the page knows it: the overview's entries, patched by live events, drawn as tiles.
import { thumbnailUrl } from "./api.js";
import { STATUS, TYPE_LABEL, displayName, duration, reasonWords } from "./format.js";

const STATUS_KEYS = { critical: "criticalClients", warning: "warningClients", healthy: "healthyClients" };

export class Fleet {
  constructor({ grid, template, ttlSeconds, onOpen }) {
    this.grid = grid;
    this.template = template;
    this.ttlMilliseconds = ttlSeconds * 1000;
    this.onOpen = onOpen;
    this.clients = new Map();
    this.tiles = new Map();
    this.order = [];
    this.clockOffset = 0;
    this.logTotals = { errorLogs: 0, warnLogs: 0 };
    this.filter = { status: "", group: "", text: "" };
    this.loaded = false;
  }

  now() {
    return Date.now() + this.clockOffset;
  }

  // A priority screenshot is active for the TTL after it arrived (SPEC §8), by the server's clock.
  priorityEndsAt(client) {
    if (!client.priorityScreenshotReceivedAt) return 0;
    const received = Date.parse(client.priorityScreenshotReceivedAt);
    // The service said this priority screenshot ended (compared as instants: the formats may differ).
    if (client.priorityEnded === received) return 0;
    return received + this.ttlMilliseconds;
  }

  isPriorityActive(client, now = this.now()) {
    return this.priorityEndsAt(client) >= now;
  }

  // The whole overview (first load and every poll): entries replaced, tiles patched in place.
  load(overview) {
    this.clockOffset = Date.parse(overview.timestamp) - Date.now();
    this.logTotals = { errorLogs: overview.summary.errorLogs, warnLogs: overview.summary.warnLogs };
    const seen = new Set();
    overview.clients.forEach((client, index) => {
      client.order = index;
      seen.add(client.uuid);
      this.clients.set(client.uuid, client);
    });
    for (const uuid of [...this.clients.keys()]) {
      if (!seen.has(uuid)) {
        this.clients.delete(uuid);
        this.tiles.get(uuid)?.remove();
        this.tiles.delete(uuid);
      }
    }
    this.loaded = true;
    this.renderAll();
  }

  renderAll() {
    const fragment = document.createDocumentFragment();
    for (const client of this.clients.values()) {
      let tile = this.tiles.get(client.uuid);
      if (!tile) {
        tile = this.createTile(client.uuid);
        this.tiles.set(client.uuid, tile);
        fragment.append(tile);
      }
      this.paint(tile, client);
    }
    this.grid.append(fragment);
    this.arrange();
  }

  createTile(uuid) {
    const tile = this.template.content.firstElementChild.cloneNode(true);
    tile.dataset.clientUuid = uuid;
    const image = tile.querySelector("img");
    // The image stays laid out (transparent) while it loads: a hidden lazy image would never load.
    image.addEventListener("load", () => {
      tile.dataset.thumb = "shown";
    });
    image.addEventListener("error", () => {
      // No thumbnail (not made yet, or the endpoint is missing): the placeholder shows instead.
      tile.dataset.thumb = "missing";
      tile.querySelector(".placeholder").textContent = "no preview";
    });
    tile.addEventListener("click", () => this.onOpen(uuid));
    tile.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        this.onOpen(uuid);
      }
    });
    return tile;
  }

  // What the tile shows: the priority image while it is active, else the latest screenshot.
  shown(client, now = this.now()) {
    if (this.isPriorityActive(client, now)) {
      return {
        priority: true,
        type: client.priorityScreenshotType ?? client.latestScreenshotType,
        hash: client.priorityScreenshotHash ?? client.lastScreenshotHash,
      };
    }
    return { priority: false, type: client.latestScreenshotType ?? "periodic", hash: client.lastScreenshotHash };
  }

  paint(tile, client, now = this.now()) {
    const status = STATUS[client.status] ?? STATUS.offline;
    const shown = this.shown(client, now);
    const reasons = reasonWords(client.statusReasons).join(", ");
    const name = displayName(client);
    tile.dataset.status = client.status;
    tile.dataset.priority = shown.priority ? "active" : "inactive";
    tile.setAttribute("aria-label", `${name}: ${status.word}${reasons ? ` (${reasons})` : ""}`);
    setText(tile.querySelector(".status-line .icon"), status.icon);
    setText(tile.querySelector(".status-word"), status.word);
    setText(tile.querySelector(".reasons"), reasons);
    setText(tile.querySelector(".name"), name);
    setText(tile.querySelector(".group"), client.groupName ?? "");
    const host = client.description && client.hostname ? client.hostname : client.uuid;
    setText(tile.querySelector(".host"), host);
    const badge = tile.querySelector(".badge");
    badge.dataset.screenshotType = shown.type;
    setText(badge, TYPE_LABEL[shown.type] ?? shown.type);
    setText(tile.querySelector(".priority-left"), shown.priority ? `${duration(this.priorityEndsAt(client) - now)} left` : "");
    const image = tile.querySelector("img");
    const source = shown.hash ? thumbnailUrl(shown.hash, 320) : "";
    if (image.dataset.source !== source) {
      image.dataset.source = source;
      tile.dataset.thumb = source ? "loading" : "missing";
      setText(tile.querySelector(".placeholder"), source ? "loading…" : "no screenshot yet");
      if (source) image.src = source;
      else image.removeAttribute("src");
    }
    tile.hidden = !this.matches(client);
  }

  // Priority tiles first (newest first), then the overview's order (group, description, hostname).
  arrange() {
    const now = this.now();
    const sorted = [...this.clients.values()].sort((a, b) => {
      const pa = this.isPriorityActive(a, now);
      const pb = this.isPriorityActive(b, now);
      if (pa !== pb) return pa ? -1 : 1;
      if (pa) return Date.parse(b.priorityScreenshotReceivedAt) - Date.parse(a.priorityScreenshotReceivedAt);
      return a.order - b.order;
    });
    const order = sorted.map((client) => client.uuid);
    if (order.length === this.order.length && order.every((uuid, index) => uuid === this.order[index])) return;
    this.order = order;
    // Moves only the tiles out of place: the rest of the grid is left alone.
    let previous = null;
    for (const uuid of order) {
      const tile = this.tiles.get(uuid);
      const expected = previous ? previous.nextElementSibling : this.grid.firstElementChild;
      if (expected !== tile) {
        if (previous) previous.after(tile);
        else this.grid.prepend(tile);
      }
      previous = tile;
    }
  }

  // One display changed (a live event): its tile is repainted in place; the order changes only
  // when its priority did.
  patch(uuid, change) {
    const client = this.clients.get(uuid);
    if (!client) return false;
    const wasPriority = this.isPriorityActive(client);
    Object.assign(client, change);
    const tile = this.tiles.get(uuid);
    this.paint(tile, client);
    if (wasPriority !== this.isPriorityActive(client)) this.arrange();
    return true;
  }

  // Once a second: the time left on priority tiles; an ended TTL puts the tile back in its place.
  tick() {
    const now = this.now();
    let ended = false;
    for (const tile of this.grid.querySelectorAll('.tile[data-priority="active"]')) {
      const client = this.clients.get(tile.dataset.clientUuid);
      if (!client) continue;
      if (!this.isPriorityActive(client, now)) ended = true;
      this.paint(tile, client, now);
    }
    if (ended) this.arrange();
    return ended;
  }

  anyPriorityActive() {
    const now = this.now();
    for (const client of this.clients.values()) if (this.isPriorityActive(client, now)) return true;
    return false;
  }

  summary() {
    const now = this.now();
    const counts = {
      totalClients: this.clients.size, onlineClients: 0, offlineClients: 0, healthyClients: 0,
      warningClients: 0, criticalClients: 0, activePriorityScreenshots: 0, ...this.logTotals,
    };
    for (const client of this.clients.values()) {
      counts[client.status === "offline" ? "offlineClients" : "onlineClients"] += 1;
      if (STATUS_KEYS[client.status]) counts[STATUS_KEYS[client.status]] += 1;
      if (this.isPriorityActive(client, now)) counts.activePriorityScreenshots += 1;
    }
    return counts;
  }

  groups() {
    const names = new Set();
    let ungrouped = false;
    for (const client of this.clients.values()) {
      if (client.groupName) names.add(client.groupName);
      else ungrouped = true;
    }
    return { names: [...names].sort((a, b) => a.localeCompare(b)), ungrouped };
  }

  matches(client) {
    const { status, group, text } = this.filter;
    if (status && client.status !== status) return false;
    if (group === "\u0000" ? client.groupName : group && client.groupName !== group) return false;
    if (text) {
      const haystack = [
        client.uuid, client.hostname, client.description, client.groupName, client.ip, client.model,
        client.status, ...reasonWords(client.statusReasons),
      ].join(" ").toLowerCase();
      if (!text.toLowerCase().split(/\s+/).every((word) => haystack.includes(word))) return false;
    }
    return true;
  }

  applyFilter(filter) {
    this.filter = { ...this.filter, ...filter };
    let shown = 0;
    for (const [uuid, tile] of this.tiles) {
      const visible = this.matches(this.clients.get(uuid));
      tile.hidden = !visible;
      if (visible) shown += 1;
    }
    return shown;
  }

  visibleCount() {
    let shown = 0;
    for (const tile of this.tiles.values()) if (!tile.hidden) shown += 1;
    return shown;
  }
}

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}
