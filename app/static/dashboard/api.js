// Calls to the service's own API with the session cookie (same origin; nothing from another host).
const csrfToken = document.querySelector('meta[name="csrf-token"]')?.content ?? "";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export async function getJson(path) {
  const response = await fetch(path, {
    credentials: "same-origin",
    headers: { Accept: "application/json", "X-CSRF-Token": csrfToken },
  });
  if (response.status === 401) {
    // The session ended (logout elsewhere, token revoked): back to the sign-in form.
    window.location.assign("/login");
    throw new ApiError(401, "Not authenticated");
  }
  if (!response.ok) {
    let message = `${response.status}`;
    try {
      message = (await response.json()).error ?? message;
    } catch {
      // not JSON: keep the status
    }
    throw new ApiError(response.status, message);
  }
  return response.json();
}

export const overviewPath = "/api/client-logs/monitoring-overview?hours=24";

export function thumbnailUrl(hash, width) {
  return `/thumbnails/${encodeURIComponent(hash)}?w=${width}`;
}
