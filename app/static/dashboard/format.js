// Words, icons and times: status is never shown by colour alone.
export const STATUS = {
  offline: { word: "Offline", icon: "⊘" },
  critical: { word: "Critical", icon: "✖" },
  warning: { word: "Warning", icon: "▲" },
  healthy: { word: "Healthy", icon: "✔" },
};

const REASONS = {
  heartbeat_late: "no heartbeat",
  last_will: "disconnected (last will)",
  process_crashed: "player crashed",
  process_starting: "player starting",
  process_stopped: "player stopped",
  screen_black: "screen black",
  screen_frozen: "screen frozen",
  error_logs: "errors in 24 h",
  warn_logs: "warnings in 24 h",
  deactivated: "retired",
};

export function reasonWords(reasons) {
  return (reasons ?? []).map((reason) => REASONS[reason] ?? reason.replaceAll("_", " "));
}

export const TYPE_LABEL = { periodic: "periodic", event_start: "⚡ event start", event_stop: "⚡ event stop" };

export function displayName(client) {
  return client.description || client.hostname || client.uuid;
}

export function ago(iso, now) {
  if (!iso) return "never";
  const seconds = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return `${Math.floor(seconds / 86400)} d ago`;
}

export function clockTime(iso) {
  if (!iso) return "–";
  return new Date(iso).toLocaleString(undefined, { hour12: false });
}

// A share (0..1) as a percentage; null (not measured yet) as a dash.
export function percent(share) {
  if (share === null || share === undefined) return "–";
  return `${(share * 100).toFixed(1)} %`;
}

export function duration(milliseconds) {
  const seconds = Math.max(0, Math.ceil(milliseconds / 1000));
  const minutes = Math.floor(seconds / 60);
  return minutes ? `${minutes}:${String(seconds % 60).padStart(2, "0")}` : `${seconds} s`;
}

export function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "text") node.textContent = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}
