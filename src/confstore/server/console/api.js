// The /v1 API, with the token in the Authorization header (never in a URL), and its event
// stream read with fetch (EventSource cannot send that header).

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.message ?? `the server answered ${status}`);
    this.status = status;
    this.type = body?.type ?? "http_error";
    this.body = body;
  }
}

const NETWORK_ERROR = { type: "network", message: "cannot reach the server" };

export function configPath(tenant, scope, service, key) {
  return `/v1/tenants/${encodeURIComponent(tenant)}/configs/${[scope, service, key]
    .map(encodeURIComponent)
    .join("/")}`;
}

export class Api {
  /** onUnauthorized(error) is called on any 401: the token was revoked or is unknown. */
  constructor(token, onUnauthorized = () => {}) {
    this.token = token;
    this.onUnauthorized = onUnauthorized;
  }

  headers(extra = {}) {
    return { Authorization: `Bearer ${this.token}`, ...extra };
  }

  /** The decoded JSON answer; ApiError for any error answer (its JSON problem) or no answer. */
  async request(method, path, { query = {}, body, headers = {} } = {}) {
    const url = new URL(path, window.location.origin);
    for (const [name, value] of Object.entries(query)) {
      if (value !== undefined && value !== null) url.searchParams.set(name, String(value));
    }
    const init = {
      method,
      headers: this.headers({ Accept: "application/json", ...headers }),
      cache: "no-store",
      credentials: "omit",
    };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(url, init);
    } catch {
      throw new ApiError(0, NETWORK_ERROR);
    }
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (!response.ok) {
      const error = new ApiError(response.status, data);
      if (response.status === 401) this.onUnauthorized(error);
      throw error;
    }
    return data;
  }

  get(path, query) {
    return this.request("GET", path, { query });
  }
}

const MAX_RETRY_MS = 15000;

/**
 * Follows /v1/watch: calls onChange(record) for every committed write the token may see and
 * onState("connecting" | "live" | "reconnecting" | "stopped"). Reconnects with Last-Event-ID,
 * so nothing is missed across a dropped connection.
 */
export class Watcher {
  constructor(api, { onChange, onState }) {
    this.api = api;
    this.onChange = onChange;
    this.onState = onState;
    this.lastEventId = null;
    this.retryMs = 2000;
    this.controller = new AbortController();
    this.stopped = false;
  }

  start() {
    this.run();
  }

  stop() {
    this.stopped = true;
    this.controller.abort();
    this.onState("stopped");
  }

  async run() {
    let failures = 0;
    while (!this.stopped) {
      this.onState(failures === 0 ? "connecting" : "reconnecting");
      try {
        const headers = this.api.headers({ Accept: "text/event-stream" });
        if (this.lastEventId) headers["Last-Event-ID"] = this.lastEventId;
        const response = await fetch("/v1/watch", {
          headers,
          cache: "no-store",
          credentials: "omit",
          signal: this.controller.signal,
        });
        if (response.status === 401) {
          this.api.onUnauthorized(new ApiError(401, await response.json().catch(() => null)));
          return;
        }
        if (response.ok && response.body) {
          await this.read(response.body, () => {
            failures = 0;
          });
        }
      } catch {
        // A dropped connection or an abort: retry below unless stopped.
      }
      if (this.stopped) return;
      failures += 1;
      this.onState("reconnecting");
      await this.pause(Math.min(this.retryMs * 2 ** Math.min(failures - 1, 3), MAX_RETRY_MS));
    }
  }

  pause(milliseconds) {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, milliseconds);
      this.controller.signal.addEventListener("abort", () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  async read(body, onReady) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let event = { type: "message", data: [], id: null };
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let end;
      while ((end = buffer.search(/\r\n|\r|\n/)) >= 0) {
        const line = buffer.slice(0, end);
        buffer = buffer.slice(end + (buffer.startsWith("\r\n", end) ? 2 : 1));
        if (line === "") {
          this.dispatch(event, onReady);
          event = { type: "message", data: [], id: null };
        } else if (!line.startsWith(":")) {
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
          if (field === "event") event.type = text;
          else if (field === "data") event.data.push(text);
          else if (field === "id") event.id = text;
          else if (field === "retry" && /^\d+$/.test(text)) this.retryMs = Number(text);
        }
      }
    }
  }

  dispatch(event, onReady) {
    if (event.id) this.lastEventId = event.id;
    if (event.type === "ready") {
      onReady();
      this.onState("live");
    } else if (event.type === "change") {
      try {
        this.onChange(JSON.parse(event.data.join("\n")));
      } catch (error) {
        console.warn("confstore console: an unreadable change event", error);
      }
    }
  }
}
