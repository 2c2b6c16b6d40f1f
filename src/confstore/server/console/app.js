// The confstore console: sign-in, tenants, configs, values, history, diffs, rollback, delete,
// effective values and live updates, all through the /v1 API with the signed-in token.

import { Api, ApiError, Watcher, configPath } from "./api.js";
import { announce, byId, fill, h, icon, keepingFocus, relativeTime, successor, timeElement, toast } from "./dom.js";
import { diffTable, jsonBlock, jsonNodes } from "./json.js";

const TOKEN_KEY = "confstore.console.token";
const HISTORY_LIMIT = 200;
const SCOPES = ["system", "agent", "routing", "telemetry"];

/** What a signed-out console knows: nothing. */
function signedOutState() {
  return {
    api: null,
    identity: null,
    watcher: null,
    tenants: [],
    typedLocations: new Set(),
    tenant: null,
    // The tenant whose config pane is drawn (a navigation left before drawing it leaves none).
    paneTenant: null,
    configs: [],
    configsError: null,
    filter: "",
    route: { view: "tenants" },
    detail: null,
    revealSecrets: false,
  };
}

const state = signedOutState();

// ---- answers in order: a route's load and live reloads overlap, and their answers may come
// back in any order; an answer older than one already shown (or for a page left, or a session
// ended, meanwhile) is dropped instead of drawing stale data over newer.

const requested = { tenants: 0, configs: 0, detail: 0 };
const shown = { tenants: 0, configs: 0, detail: 0 };

/** A numbered request of `kind` ("tenants", "configs" or "detail") in this session. */
function request(kind) {
  requested[kind] += 1;
  return { kind, number: requested[kind], api: state.api };
}

/** Whether the answer to `ticket` may be shown: same session, nothing newer shown. It is then
 * the newest shown. */
function mayShow(ticket) {
  if (state.api !== ticket.api || ticket.number < shown[ticket.kind]) return false;
  shown[ticket.kind] = ticket.number;
  return true;
}

// ---- routes: #/ , #/t/TENANT , #/t/TENANT/SCOPE/SERVICE/KEY (no token ever goes in a URL)

function parseRoute(hash) {
  const parts = hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(safeDecode);
  if (parts[0] !== "t" || parts.length < 2) return { view: "tenants" };
  if (parts.length === 5) {
    const [, tenant, scope, service, key] = parts;
    return { view: "config", tenant, scope, service, key };
  }
  return { view: "tenant", tenant: parts[1] };
}

function safeDecode(part) {
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}

export function tenantHref(tenant) {
  return `#/t/${encodeURIComponent(tenant)}`;
}

function configHref(config) {
  return `${tenantHref(config.tenant_id)}/${[config.scope, config.service, config.config_key]
    .map(encodeURIComponent)
    .join("/")}`;
}

/** Whether the page shown (or being shown) is the config `key`. */
function isRouteOf(key) {
  const route = state.route;
  return route.view === "config" && sameKey(key, route);
}

function sameKey(a, b) {
  return (
    a !== null &&
    b !== null &&
    a.tenant === b.tenant &&
    a.scope === b.scope &&
    a.service === b.service &&
    a.key === b.key
  );
}

function typedLocation(scope, configKey) {
  return `${scope}\n${configKey}`;
}

function canWrite() {
  return state.identity !== null && state.identity.role !== "read";
}

function secretsQuery() {
  return state.revealSecrets && canWrite() ? {} : { mask_secrets: "true" };
}

// ---- signing in and out

async function signIn(token, { restoring = false } = {}) {
  // A 401 ends a session; during the sign-in itself, the form reports it instead.
  const api = new Api(token, (error) => {
    if (state.api === api) signOut(sessionEndedMessage(error));
  });
  const [identity, schemas] = await Promise.all([api.get("/v1/token"), api.get("/v1/schemas")]);
  sessionStorage.setItem(TOKEN_KEY, token);
  state.typedLocations = new Set(schemas.schemas.map((schema) => typedLocation(schema.scope, schema.config_key)));
  state.api = api;
  state.identity = identity;
  document.body.classList.remove("signed-out");
  byId("signin").hidden = true;
  byId("workspace").hidden = false;
  byId("session").hidden = false;
  fill(
    byId("who"),
    h("span", { class: "who-name" }, identity.name),
    h("span", { class: `role role-${identity.role}` }, identity.role === "read" ? "read-only" : identity.role),
  );
  byId("who").title = `token ${identity.name}: role ${identity.role}, tenants ${identity.tenants.join(", ")}`;
  state.watcher = new Watcher(api, { onChange: onLiveChange, onState: showLiveState });
  state.watcher.start();
  await loadTenants();
  await showRoute();
  if (!restoring) announce(`Signed in as ${identity.name}`);
}

function sessionEndedMessage(error) {
  return `Signed out: ${error.message}`;
}

function signOut(message = "") {
  state.watcher?.stop();
  sessionStorage.removeItem(TOKEN_KEY);
  Object.assign(state, signedOutState());
  const dialog = byId("dialog");
  if (dialog.open) dialog.close();
  document.body.classList.add("signed-out");
  byId("workspace").hidden = true;
  byId("workspace").removeAttribute("aria-busy");
  byId("session").hidden = true;
  fill(byId("config-pane"));
  fill(byId("main"));
  byId("signin").hidden = false;
  byId("signin-error").textContent = message;
  byId("token-input").value = "";
  byId("token-input").focus();
}

function signInProblem(error) {
  if (error.status === 401) return "That token is not valid (unknown, revoked or malformed).";
  if (error.status === 429) return "Too many failed attempts from here: wait a minute and try again.";
  if (error.status === 0) return "Cannot reach the server.";
  return error.message;
}

async function onSignInSubmit(event) {
  event.preventDefault();
  const input = byId("token-input");
  const token = input.value.trim();
  const errorLine = byId("signin-error");
  if (!token) {
    errorLine.textContent = "Enter an API token.";
    input.focus();
    return;
  }
  const button = byId("signin-button");
  button.disabled = true;
  errorLine.textContent = "";
  try {
    await signIn(token);
    input.value = "";
  } catch (error) {
    errorLine.textContent = signInProblem(error);
    input.focus();
  } finally {
    button.disabled = false;
  }
}

// ---- the live event stream

const LIVE_LABELS = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
  stopped: "Offline",
};

function showLiveState(liveState) {
  const badge = byId("live-status");
  badge.className = `live live-${liveState}`;
  badge.textContent = LIVE_LABELS[liveState] ?? liveState;
  badge.title =
    liveState === "live" ? "Changes made anywhere appear here as they are committed" : "";
}

const pending = new Map();

/** Run `task` once, shortly: many changes in a burst make one reload. */
function soon(name, task) {
  if (pending.has(name)) return;
  pending.set(
    name,
    setTimeout(() => {
      pending.delete(name);
      task().catch(reportError);
    }, 120),
  );
}

function onLiveChange(change) {
  if (!state.tenants.includes(change.tenant_id) || change.kind !== "set") {
    soon("tenants", loadTenants);
  }
  if (change.tenant_id === state.tenant) {
    soon("configs", async () => {
      const tenant = state.tenant;
      if (tenant === null) return;
      await loadConfigs(tenant);
      // A navigation to another tenant meanwhile draws its own pane.
      if (state.tenant !== tenant || state.paneTenant !== tenant) return;
      renderConfigTree();
      if (state.route.view === "tenant") renderTenantSummary();
      flashConfig(change);
    });
  }
  const key = {
    tenant: change.tenant_id,
    scope: change.scope,
    service: change.service,
    key: change.config_key,
  };
  if (state.detail !== null && sameKey(state.detail.key, key)) {
    soon("detail", async () => {
      // The page may have changed since the change came: reload only the config still shown.
      const detail = state.detail;
      if (detail === null || !sameKey(detail.key, key) || !isRouteOf(key)) return;
      const before = detail.history[0]?.version ?? 0;
      await loadDetail(detail.key, { keepTab: true });
      const latest = state.detail !== null && sameKey(state.detail.key, key) ? state.detail.history[0] : null;
      if (latest && latest.version > before) {
        const what = latest.deleted ? "deleted" : `updated to version ${latest.version}`;
        const by = latest.updated_by ? ` by ${latest.updated_by}` : "";
        showLiveNotice(`This config was just ${what}${by}.`);
      }
    });
  }
}

function flashConfig(change) {
  const link = document.querySelector(`#config-tree a[href="${CSS.escape(configHref(change))}"]`);
  if (link) {
    link.classList.remove("flash");
    void link.offsetWidth;
    link.classList.add("flash");
  }
}

function showLiveNotice(message) {
  const notice = document.getElementById("live-notice");
  if (notice) {
    fill(notice, icon("history"), h("span", {}, message));
    notice.hidden = false;
  }
  announce(message);
}

// ---- tenants

async function loadTenants() {
  const ticket = request("tenants");
  const answer = await state.api.get("/v1/tenants");
  if (!mayShow(ticket)) return;
  state.tenants = answer.tenants;
  renderTenantSelect();
  if (state.route.view === "tenants") renderTenantsView();
}

function renderTenantSelect() {
  const select = byId("tenant-select");
  fill(
    select,
    h("option", { value: "" }, "All tenants"),
    state.tenants.map((tenant) => h("option", { value: tenant }, tenant)),
  );
  select.value = state.tenants.includes(state.tenant) ? state.tenant : "";
}

/** The page title, where the focus goes when a re-render removed the focused element. */
function pageTitle() {
  return document.getElementById("page-title");
}

// Live updates re-render parts of the page while someone may be using it from the keyboard:
// each re-render keeps the focus on the element that replaces the focused one.

function renderTenantsView() {
  keepingFocus(byId("main"), drawTenantsView, pageTitle);
}

function drawTenantsView() {
  document.body.dataset.view = "tenants";
  state.paneTenant = null;
  fill(byId("config-pane"));
  const tenants = state.tenants;
  const scopeNote =
    state.identity.tenants.includes("*")
      ? "Your token covers every tenant."
      : `Your token covers: ${state.identity.tenants.join(", ")}.`;
  fill(
    byId("main"),
    h(
      "div",
      { class: "page" },
      h("h1", { id: "page-title", tabindex: "-1" }, "Tenants"),
      h("p", { class: "muted" }, scopeNote),
      tenants.length === 0
        ? h("p", { class: "empty" }, "No tenant has a config yet.")
        : h(
            "ul",
            { class: "tenant-grid", "aria-label": "Tenants" },
            tenants.map((tenant) =>
              h(
                "li",
                {},
                h(
                  "a",
                  { class: "tenant-card", href: tenantHref(tenant) },
                  h("span", { class: "tenant-initial", "aria-hidden": "true" }, tenant.slice(0, 1).toUpperCase()),
                  h("span", { class: "tenant-name" }, tenant),
                ),
              ),
            ),
          ),
    ),
  );
}

// ---- one tenant's configs

async function loadConfigs(tenant) {
  const ticket = request("configs");
  let configs = [];
  let problem = null;
  try {
    const answer = await state.api.get(`/v1/tenants/${encodeURIComponent(tenant)}/configs`, {
      mask_secrets: "true",
    });
    configs = answer.configs;
  } catch (error) {
    if (error.status === 401) throw error;
    problem = error;
  }
  if (state.tenant !== tenant || !mayShow(ticket)) return;
  state.configs = configs;
  state.configsError = problem;
}

function matches(config, words) {
  const text = `${config.scope}/${config.service}/${config.config_key}`.toLowerCase();
  return words.every((word) => text.includes(word));
}

function filteredConfigs() {
  const words = state.filter.toLowerCase().split(/\s+/).filter(Boolean);
  return state.configs.filter((config) => matches(config, words));
}

/** Configs grouped by scope, then service, in the API's order. */
function grouped(configs) {
  const scopes = new Map();
  for (const config of configs) {
    if (!scopes.has(config.scope)) scopes.set(config.scope, new Map());
    const services = scopes.get(config.scope);
    if (!services.has(config.service)) services.set(config.service, []);
    services.get(config.service).push(config);
  }
  return [...scopes.entries()].sort(
    ([a], [b]) => SCOPES.indexOf(a) - SCOPES.indexOf(b) || a.localeCompare(b),
  );
}

function renderConfigPane() {
  const tenant = state.tenant;
  state.paneTenant = tenant;
  fill(
    byId("config-pane"),
    h(
      "div",
      { class: "pane-head" },
      h("a", { class: "back-link", href: "#/" }, icon("back"), "Tenants"),
      h("h2", { id: "config-pane-title" }, h("span", { class: "muted" }, "Configs of "), tenant),
      h(
        "div",
        { class: "filter" },
        h("label", { for: "filter-input" }, "Filter configs"),
        h(
          "div",
          { class: "input-icon" },
          icon("search"),
          h("input", {
            id: "filter-input",
            type: "search",
            value: state.filter,
            placeholder: "scope, service or key",
            autocomplete: "off",
            spellcheck: "false",
            "aria-describedby": "filter-count",
            "aria-keyshortcuts": "/",
            on: { input: onFilterInput },
          }),
        ),
        h("p", { id: "filter-count", class: "muted small", "aria-live": "polite" }),
      ),
    ),
    h("div", { id: "config-tree", class: "tree" }),
  );
  renderConfigTree();
}

function onFilterInput(event) {
  state.filter = event.target.value;
  renderConfigTree();
  if (state.route.view === "tenant") renderTenantSummary();
}

function renderConfigTree() {
  const tree = document.getElementById("config-tree");
  if (!tree) return;
  keepingFocus(tree, () => drawConfigTree(tree), () => document.getElementById("filter-input"));
}

function drawConfigTree(tree) {
  if (state.configsError !== null) {
    fill(tree, problemBox(state.configsError));
    fill(byId("filter-count"));
    return;
  }
  const shown = filteredConfigs();
  byId("filter-count").textContent =
    shown.length === state.configs.length
      ? `${state.configs.length} config${state.configs.length === 1 ? "" : "s"}`
      : `${shown.length} of ${state.configs.length} configs match`;
  if (shown.length === 0) {
    fill(tree, h("p", { class: "empty" }, state.configs.length ? "Nothing matches the filter." : "This tenant has no live config."));
    return;
  }
  const current = state.detail?.key ?? null;
  fill(
    tree,
    grouped(shown).map(([scope, services]) =>
      h(
        "section",
        { class: "scope-group", "aria-label": `scope ${scope}` },
        h("h3", { class: `scope-title scope-${scope}` }, scope),
        [...services.entries()].map(([service, configs]) =>
          h(
            "div",
            { class: "service-group" },
            h("h4", { class: "service-title" }, service),
            h(
              "ul",
              { role: "list" },
              configs.map((config) => {
                const key = {
                  tenant: config.tenant_id,
                  scope: config.scope,
                  service: config.service,
                  key: config.config_key,
                };
                return h(
                  "li",
                  {},
                  h(
                    "a",
                    {
                      href: configHref(config),
                      "aria-current": sameKey(current, key) ? "page" : null,
                    },
                    h("span", { class: "key-name" }, config.config_key),
                    " ",
                    h("span", { class: "version-pill" }, `v${config.version}`),
                  ),
                );
              }),
            ),
          ),
        ),
      ),
    ),
  );
}

function renderTenantSummary() {
  keepingFocus(byId("main"), drawTenantSummary, pageTitle);
}

function drawTenantSummary() {
  document.body.dataset.view = "tenant";
  const configs = filteredConfigs();
  const recent = [...configs].sort((a, b) => b.updated_at.localeCompare(a.updated_at)).slice(0, 10);
  const counts = SCOPES.map((scope) => [scope, configs.filter((c) => c.scope === scope).length]);
  fill(
    byId("main"),
    h(
      "div",
      { class: "page" },
      h("h1", { id: "page-title", tabindex: "-1" }, state.tenant),
      state.configsError !== null
        ? problemBox(state.configsError)
        : [
            h(
              "ul",
              { class: "stat-row", "aria-label": "Configs per scope" },
              counts.map(([scope, count]) =>
                h("li", { class: `stat scope-${scope}` }, h("span", { class: "stat-number" }, String(count)), h("span", {}, scope)),
              ),
            ),
            h("h2", {}, "Recently changed"),
            recent.length === 0
              ? h("p", { class: "empty" }, "No config to show.")
              : h(
                  "div",
                  { class: "table-scroll" },
                  h(
                    "table",
                    { class: "list-table" },
                    h(
                      "thead",
                      {},
                      h("tr", {}, ["Config", "Version", "Updated", "By"].map((name) => h("th", { scope: "col" }, name))),
                    ),
                    h(
                      "tbody",
                      {},
                      recent.map((config) =>
                        h(
                          "tr",
                          {},
                          h(
                            "td",
                            {},
                            h("a", { href: configHref(config) }, `${config.scope}/${config.service}/`, h("strong", {}, config.config_key)),
                          ),
                          h("td", {}, `v${config.version}`),
                          h("td", {}, h("time", { datetime: config.updated_at, title: config.updated_at }, relativeTime(config.updated_at))),
                          h("td", {}, config.updated_by ?? "—"),
                        ),
                      ),
                    ),
                  ),
                ),
            h("p", { class: "muted hint" }, "Choose a config to see its value, history and diffs."),
          ],
    ),
  );
}

// ---- one config

async function loadDetail(key, { keepTab = false } = {}) {
  const ticket = request("detail");
  const path = configPath(key.tenant, key.scope, key.service, key.key);
  const previous = state.detail !== null && sameKey(state.detail.key, key) ? state.detail : null;
  const detail = {
    key,
    path,
    history: [],
    explain: null,
    error: null,
    tab: keepTab && previous ? previous.tab : "value",
    from: keepTab && previous ? previous.from : null,
    to: keepTab && previous ? previous.to : null,
  };
  try {
    const typed = state.typedLocations.has(typedLocation(key.scope, key.key));
    const [history, explain] = await Promise.all([
      state.api.get(`${path}/history`, { limit: HISTORY_LIMIT, ...secretsQuery() }),
      typed ? state.api.get(`${path}/explain`, secretsQuery()).catch(explainMissing) : null,
    ]);
    detail.history = history.history;
    detail.explain = explain;
    if (detail.history.length === 0) detail.error = new ApiError(404, { message: "No such config: it has no version." });
  } catch (error) {
    if (error.status === 401) return;
    detail.error = error;
  }
  if (!isRouteOf(key) || !mayShow(ticket)) return;
  if (detail.tab === "effective" && detail.explain === null) detail.tab = "value";
  state.detail = detail;
  renderDetail();
}

function explainMissing(error) {
  if (error.status === 401) throw error;
  return error.status === 404 ? null : { error }; // 404: nothing stored or inherited
}

function latest() {
  return state.detail.history[0];
}

function versionLabel(entry) {
  return entry.deleted ? `v${entry.version} (deleted)` : `v${entry.version}`;
}

function renderDetail() {
  keepingFocus(byId("main"), drawDetail, pageTitle);
}

function drawDetail() {
  document.body.dataset.view = "config";
  const detail = state.detail;
  const key = detail.key;
  const main = byId("main");
  const crumbs = h(
    "nav",
    { class: "crumbs", "aria-label": "Breadcrumb" },
    h("a", { class: "back-link", href: tenantHref(key.tenant) }, icon("back"), h("span", { class: "visually-hidden" }, "Back to the configs of "), key.tenant),
    h("span", { "aria-hidden": "true" }, " / "),
    h("span", {}, `${key.scope} / ${key.service}`),
  );
  if (detail.error !== null) {
    fill(main, h("div", { class: "page" }, crumbs, h("h1", { id: "page-title", tabindex: "-1" }, key.key), problemBox(detail.error)));
    return;
  }
  const newest = latest();
  const writable = canWrite();
  const tabs = [
    ["value", "Value", "code"],
    ["history", `History (${detail.history.length})`, "history"],
    ["compare", "Compare", "compare"],
  ];
  if (detail.explain !== null) tabs.push(["effective", "Effective", "layers"]);
  const header = h(
    "header",
    { class: "detail-head" },
    crumbs,
    h(
      "div",
      { class: "title-row" },
      h("h1", { id: "page-title", tabindex: "-1" }, key.key),
      h("span", { class: `version-badge${newest.deleted ? " deleted" : ""}`, id: "version-badge" }, versionLabel(newest)),
      h(
        "div",
        { class: "actions" },
        writable
          ? h(
              "button",
              {
                type: "button",
                id: "secrets-toggle",
                class: "button ghost",
                "aria-pressed": String(state.revealSecrets),
                on: { click: toggleSecrets },
              },
              icon("eye"),
              state.revealSecrets ? "Hide secrets" : "Show secrets",
            )
          : null,
        writable && !newest.deleted
          ? h("button", { type: "button", id: "delete-button", class: "button danger", on: { click: openDeleteDialog } }, icon("trash"), "Delete…")
          : null,
      ),
    ),
    h(
      "p",
      { class: "meta" },
      newest.deleted ? "Deleted " : "Updated ",
      timeElement(newest.updated_at),
      newest.updated_by ? [" by ", h("strong", {}, newest.updated_by)] : null,
      newest.comment ? [" — ", h("q", {}, newest.comment)] : null,
    ),
    h("p", { id: "live-notice", class: "live-notice", role: "status", hidden: true }),
  );
  const tablist = h(
    "div",
    { class: "tabs", role: "tablist", "aria-label": "Views of this config", on: { keydown: onTabKey } },
    tabs.map(([id, label, iconName]) =>
      h(
        "button",
        {
          type: "button",
          role: "tab",
          id: `tab-${id}`,
          "aria-selected": String(detail.tab === id),
          "aria-controls": "tab-panel",
          tabindex: detail.tab === id ? "0" : "-1",
          on: { click: () => selectTab(id) },
        },
        icon(iconName),
        label,
      ),
    ),
  );
  const panel = h("section", { id: "tab-panel", class: "tab-panel", role: "tabpanel", "aria-labelledby": `tab-${detail.tab}`, tabindex: "0" });
  fill(main, h("div", { class: "page detail" }, header, tablist, panel));
  renderPanel(panel);
}

function onTabKey(event) {
  const tabs = [...event.currentTarget.querySelectorAll('[role="tab"]')];
  const index = tabs.indexOf(document.activeElement);
  if (index < 0) return;
  const moves = { ArrowRight: 1, ArrowLeft: -1, Home: -index, End: tabs.length - 1 - index };
  if (!(event.key in moves)) return;
  event.preventDefault();
  const next = tabs[(index + moves[event.key] + tabs.length) % tabs.length];
  selectTab(next.id.replace(/^tab-/, ""));
  document.getElementById(next.id)?.focus();
}

function selectTab(tab) {
  state.detail.tab = tab;
  renderDetail();
  document.getElementById(`tab-${tab}`)?.focus();
}

async function toggleSecrets() {
  state.revealSecrets = !state.revealSecrets;
  await loadDetail(state.detail.key, { keepTab: true });
  announce(state.revealSecrets ? "Secrets shown" : "Secrets masked");
}

function renderPanel(panel) {
  const tab = state.detail.tab;
  if (tab === "history") renderHistory(panel);
  else if (tab === "compare") renderCompare(panel);
  else if (tab === "effective") renderEffective(panel);
  else renderValue(panel);
}

function renderValue(panel) {
  const newest = latest();
  if (newest.deleted) {
    const live = state.detail.history.find((entry) => !entry.deleted);
    fill(
      panel,
      h("p", { class: "notice" }, `This config is deleted (version ${newest.version}). Its history is kept: roll back to an earlier version to bring it back.`),
      live ? [h("h2", { class: "small-heading" }, `Last value (version ${live.version})`), jsonBlock(live.config_value, `value of version ${live.version}`)] : null,
    );
    return;
  }
  fill(panel, jsonBlock(newest.config_value, `value of version ${newest.version}`));
}

function renderHistory(panel) {
  const detail = state.detail;
  const newest = latest();
  const writable = canWrite();
  fill(
    panel,
    h(
      "ol",
      { class: "timeline", "aria-label": "Versions, newest first" },
      detail.history.map((entry) =>
        h(
          "li",
          { class: `event${entry.deleted ? " tombstone" : ""}`, dataset: { version: String(entry.version) } },
          h("span", { class: "event-dot", "aria-hidden": "true" }),
          h(
            "div",
            { class: "event-body" },
            h(
              "p",
              { class: "event-title" },
              h("strong", {}, `Version ${entry.version}`),
              entry.version === newest.version ? h("span", { class: "tag tag-current" }, "current") : null,
              entry.deleted ? h("span", { class: "tag tag-removed" }, "deleted") : null,
            ),
            h(
              "p",
              { class: "event-meta" },
              timeElement(entry.updated_at),
              " · ",
              entry.updated_by ? h("span", { class: "author" }, entry.updated_by) : h("span", { class: "muted" }, "no author"),
            ),
            entry.comment ? h("p", { class: "event-comment" }, entry.comment) : null,
            h(
              "div",
              { class: "event-actions" },
              entry.version !== newest.version
                ? h(
                    "button",
                    {
                      type: "button",
                      class: "button small",
                      on: { click: () => compareVersions(entry.version, newest.version) },
                    },
                    icon("compare"),
                    `Compare v${entry.version} with current`,
                  )
                : null,
              writable && entry.version !== newest.version && !entry.deleted
                ? h(
                    "button",
                    {
                      type: "button",
                      class: "button small",
                      on: { click: (event) => openRollbackDialog(entry.version, event.currentTarget) },
                    },
                    icon("undo"),
                    `Roll back to v${entry.version}…`,
                  )
                : null,
            ),
          ),
        ),
      ),
    ),
    detail.history.length >= HISTORY_LIMIT ? h("p", { class: "muted" }, `The newest ${HISTORY_LIMIT} versions are shown.`) : null,
  );
}

function compareVersions(from, to) {
  Object.assign(state.detail, { from, to });
  selectTab("compare");
}

function versionSelect(id, label, selected) {
  return h(
    "div",
    { class: "field" },
    h("label", { for: id }, label),
    h(
      "select",
      { id, on: { change: onCompareChange } },
      state.detail.history.map((entry) =>
        h("option", { value: String(entry.version), selected: entry.version === selected }, versionLabel(entry)),
      ),
    ),
  );
}

function renderCompare(panel) {
  const detail = state.detail;
  const versions = detail.history.map((entry) => entry.version);
  if (versions.length < 2) {
    fill(panel, h("p", { class: "empty" }, "There is only one version: nothing to compare yet."));
    return;
  }
  detail.to = versions.includes(detail.to) ? detail.to : versions[0];
  detail.from = versions.includes(detail.from) ? detail.from : versions[1];
  fill(
    panel,
    h(
      "div",
      { class: "compare-controls" },
      versionSelect("compare-from", "From version", detail.from),
      versionSelect("compare-to", "To version", detail.to),
    ),
    h("div", { id: "diff-area", "aria-live": "polite" }, h("p", { class: "muted" }, "Loading…")),
  );
  showDiff();
}

function onCompareChange() {
  state.detail.from = Number(byId("compare-from").value);
  state.detail.to = Number(byId("compare-to").value);
  showDiff();
}

async function fetchDiff(from, to) {
  return state.api.get(`${state.detail.path}/diff`, { from, to, ...secretsQuery() });
}

async function showDiff() {
  const { from, to } = state.detail;
  const area = document.getElementById("diff-area");
  try {
    const diff = await fetchDiff(from, to);
    if (document.getElementById("diff-area") !== area) return;
    const count = diff.changes.length;
    fill(
      area,
      h("p", { class: "diff-summary" }, count === 0 ? "" : `${count} field${count === 1 ? "" : "s"} changed from version ${from} to version ${to}.`),
      diffTable(diff.changes, `Version ${from}`, `Version ${to}`, `Changes from version ${from} to version ${to}`),
    );
  } catch (error) {
    if (error.status !== 401) fill(area, problemBox(error));
  }
}

const SOURCE_LABEL = { schema: "schema default", base: "base tenant", tenant: "this tenant", env: "environment" };

function renderEffective(panel) {
  const explain = state.detail.explain;
  if (explain.error) {
    fill(panel, problemBox(explain.error));
    return;
  }
  const inherits = explain.base_tenant
    ? `What the services of ${explain.tenant_id} get: the schema's defaults, then ${explain.base_tenant}'s stored config, then ${explain.tenant_id}'s own overrides.`
    : `${explain.tenant_id} is the base tenant: its stored config over the schema's defaults.`;
  fill(
    panel,
    h("p", { class: "muted" }, inherits, " Environment overrides of each service's process are not shown."),
    h(
      "div",
      { class: "table-scroll" },
      h(
        "table",
        { class: "effective" },
        h("caption", { class: "visually-hidden" }, "Effective value of each field and where it comes from"),
        h("thead", {}, h("tr", {}, ["Field", "Value", "Source"].map((name) => h("th", { scope: "col" }, name)))),
        h(
          "tbody",
          {},
          explain.fields.map((field) =>
            h(
              "tr",
              { class: `source-${field.source}` },
              h("th", { scope: "row" }, h("code", {}, field.path)),
              h("td", {}, h("code", { class: "json inline" }, jsonNodes(field.value))),
              h(
                "td",
                {},
                h("span", { class: `tag tag-source-${field.source}` }, SOURCE_LABEL[field.source] ?? field.source),
                field.tenant_id ? h("span", { class: "muted small" }, ` ${field.tenant_id} v${field.version}`) : null,
              ),
            ),
          ),
        ),
      ),
    ),
  );
}

// ---- dialogs: rollback and delete

function openDialog(opener, ...children) {
  const dialog = byId("dialog");
  fill(dialog, ...children);
  dialog.addEventListener(
    "close",
    () => {
      fill(dialog);
      const target = (opener ? successor(opener, byId("main")) : null) ?? pageTitle();
      target?.focus();
    },
    { once: true },
  );
  dialog.showModal();
  return dialog;
}

function dialogError(dialog, error) {
  const line = dialog.querySelector(".form-error");
  line.textContent =
    error.type === "version_conflict"
      ? `The config changed meanwhile (now version ${error.body?.actual ?? "?"}): close this and review it again.`
      : error.message;
}

/**
 * A modal form: `title`, `body`, a Cancel button and `submit`. On submit `action()` runs; its
 * message is shown and the config reloaded, or its error is shown in the dialog.
 */
function confirmDialog({ opener, title, body, submit, focus, action }) {
  const form = h(
    "form",
    { method: "dialog", class: "dialog-form" },
    h("h2", { id: "dialog-title" }, title),
    body,
    h("p", { class: "form-error", role: "alert" }),
    h(
      "div",
      { class: "dialog-buttons" },
      h("button", { type: "button", class: "button ghost", on: { click: () => byId("dialog").close() } }, "Cancel"),
      submit,
    ),
  );
  const dialog = openDialog(opener, form);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (submit.disabled) return;
    submit.disabled = true;
    try {
      const message = await action();
      dialog.close();
      toast(message);
      announce(message);
      await loadDetail(state.detail.key, { keepTab: true });
    } catch (error) {
      if (error.status === 401) return;
      dialogError(dialog, error);
      submit.disabled = false;
    }
  });
  focus.focus();
}

async function openRollbackDialog(version, opener) {
  const detail = state.detail;
  const current = latest();
  let diff;
  try {
    diff = await fetchDiff(current.version, version);
  } catch (error) {
    if (error.status !== 401) toast(error.message, "error");
    return;
  }
  const commentInput = h("input", { id: "rollback-comment", type: "text", placeholder: `rollback to version ${version}`, autocomplete: "off" });
  confirmDialog({
    opener,
    title: `Roll back ${detail.key.key} to version ${version}?`,
    body: [
      h(
        "p",
        {},
        `This writes version ${current.version + 1} with the value of version ${version}. `,
        diff.changes.length === 0 ? "The value would not change." : "These fields change:",
      ),
      diffTable(diff.changes, `Now (${versionLabel(current)})`, `After (= v${version})`, "Changes the rollback applies"),
      h("div", { class: "field" }, h("label", { for: "rollback-comment" }, "Comment (optional)"), commentInput),
    ],
    submit: h("button", { type: "submit", class: "button primary", id: "confirm-rollback" }, icon("undo"), `Roll back to v${version}`),
    focus: commentInput,
    action: async () => {
      const body = { version };
      if (commentInput.value.trim()) body.comment = commentInput.value.trim();
      const entry = await state.api.request("POST", `${detail.path}/rollback`, {
        body,
        query: { mask_secrets: "true" },
        headers: { "If-Match": `"${current.version}"` },
      });
      return `Rolled back: version ${entry.version} has the value of version ${version}.`;
    },
  });
}

function openDeleteDialog(event) {
  const detail = state.detail;
  const name = detail.key.key;
  const confirmInput = h("input", {
    id: "delete-confirm",
    type: "text",
    autocomplete: "off",
    spellcheck: "false",
    "aria-describedby": "delete-help",
  });
  const commentInput = h("input", { id: "delete-comment", type: "text", autocomplete: "off" });
  const submit = h("button", { type: "submit", class: "button danger", id: "confirm-delete", disabled: true }, icon("trash"), "Delete config");
  confirmInput.addEventListener("input", () => {
    submit.disabled = confirmInput.value !== name;
  });
  confirmDialog({
    opener: event.currentTarget,
    title: `Delete ${name}?`,
    body: [
      h(
        "p",
        {},
        `${detail.key.tenant} / ${detail.key.scope} / ${detail.key.service} / `,
        h("strong", {}, name),
        " stops being served. A deletion is a new version: the history is kept, and rolling back brings the config back.",
      ),
      h(
        "div",
        { class: "field" },
        h("label", { for: "delete-confirm" }, "Type the config key to confirm"),
        h("p", { id: "delete-help", class: "muted small" }, "Type ", h("code", {}, name), " exactly."),
        confirmInput,
      ),
      h("div", { class: "field" }, h("label", { for: "delete-comment" }, "Comment (optional)"), commentInput),
    ],
    submit,
    focus: confirmInput,
    action: async () => {
      const body = commentInput.value.trim() ? { comment: commentInput.value.trim() } : undefined;
      await state.api.request("DELETE", detail.path, { body });
      return `Deleted ${name}: its history is kept.`;
    },
  });
}

// ---- errors

function problemBox(error) {
  let title = "Something went wrong";
  if (error.status === 403) title = "No access";
  else if (error.status === 404) title = "Not found";
  else if (error.status === 0) title = "Cannot reach the server";
  return h("div", { class: "problem", role: "alert" }, h("strong", {}, title), h("p", {}, error.message));
}

function reportError(error) {
  if (error instanceof ApiError && error.status === 401) return;
  toast(error.message ?? String(error), "error");
}

// ---- navigation

/** Routes still loading; the workspace is aria-busy while any is. */
let routesLoading = 0;

async function showRoute({ focus = false } = {}) {
  if (state.api === null) return;
  const workspace = byId("workspace");
  routesLoading += 1;
  workspace.setAttribute("aria-busy", "true");
  try {
    await renderRoute();
  } finally {
    routesLoading -= 1;
    if (routesLoading === 0) workspace.setAttribute("aria-busy", "false");
  }
  if (focus) document.getElementById("page-title")?.focus();
}

async function renderRoute() {
  const route = parseRoute(window.location.hash);
  state.route = route;
  // After each wait: a later navigation (or a sign-out) has taken over, and draws its own page.
  const left = () => state.route !== route || state.api === null;
  if (route.view === "tenants") {
    state.tenant = null;
    state.detail = null;
    renderTenantSelect();
    renderTenantsView();
  } else {
    if (route.tenant !== state.tenant || state.paneTenant !== route.tenant) {
      state.tenant = route.tenant;
      state.filter = "";
      state.detail = null;
      await loadConfigs(route.tenant);
      if (left()) return;
      renderConfigPane();
    }
    renderTenantSelect();
    if (route.view === "tenant") {
      state.detail = null;
      renderConfigTree();
      renderTenantSummary();
    } else {
      const key = { tenant: route.tenant, scope: route.scope, service: route.service, key: route.key };
      await loadDetail(key);
      if (left()) return;
      renderConfigTree();
    }
  }
}

function onGlobalKey(event) {
  const typing = event.target.closest("input, textarea, select, [contenteditable]");
  if (event.key === "/" && !typing && !byId("dialog").open) {
    const filter = document.getElementById("filter-input");
    if (filter) {
      event.preventDefault();
      filter.focus();
    }
  }
  if ((event.key === "ArrowDown" || event.key === "ArrowUp") && event.target.closest("#config-tree a, #filter-input")) {
    const links = [...document.querySelectorAll("#config-tree a")];
    if (links.length === 0) return;
    event.preventDefault();
    const index = links.indexOf(event.target);
    const next = event.key === "ArrowDown" ? index + 1 : index < 0 ? links.length - 1 : index - 1;
    links[Math.max(0, Math.min(links.length - 1, next))].focus();
  }
}

function boot() {
  byId("signin-form").addEventListener("submit", onSignInSubmit);
  byId("sign-out").addEventListener("click", () => signOut("You signed out."));
  byId("tenant-select").addEventListener("change", (event) => {
    window.location.hash = event.target.value ? tenantHref(event.target.value) : "#/";
  });
  byId("skip-link").addEventListener("click", () => {
    const target = document.getElementById("page-title") ?? byId("main");
    target.focus();
  });
  window.addEventListener("hashchange", () => showRoute({ focus: true }).catch(reportError));
  document.addEventListener("keydown", onGlobalKey);
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) {
    signIn(token, { restoring: true }).catch((error) => signOut(signInProblem(error)));
  } else {
    byId("token-input").focus();
  }
}

boot();
