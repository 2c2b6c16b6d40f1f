// Building the page: every stored string reaches the DOM as a text node, never as HTML.

const SVG_NS = "http://www.w3.org/2000/svg";

/**
 * An element: h("a", {href: "#/", class: "x", dataset: {k: "v"}, on: {click: fn}}, children...).
 * Children are nodes or strings (made text nodes); null, undefined and false are skipped.
 * Attributes named on... are refused: handlers go in `on`.
 */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  setAttributes(element, attributes);
  append(element, children);
  return element;
}

/** An SVG element (icons), built the same way. */
export function svg(tag, attributes = {}, ...children) {
  const element = document.createElementNS(SVG_NS, tag);
  setAttributes(element, attributes);
  append(element, children);
  return element;
}

function setAttributes(element, attributes) {
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "on") {
      for (const [event, handler] of Object.entries(value)) element.addEventListener(event, handler);
    } else if (name === "dataset") {
      Object.assign(element.dataset, value);
    } else if (name.toLowerCase().startsWith("on")) {
      throw new Error(`inline handler ${name} refused: use the 'on' attribute`);
    } else {
      element.setAttribute(name, value === true ? "" : String(value));
    }
  }
}

function append(parent, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace an element's children. */
export function fill(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

export function byId(id) {
  const element = document.getElementById(id);
  if (element === null) throw new Error(`no element #${id}`);
  return element;
}

const ICONS = {
  back: "M15 6l-6 6 6 6",
  history: "M3 12a9 9 0 1 0 3-6.7M3 4v5h5M12 7v5l3 3",
  compare: "M8 3v18M16 3v18M3 8h5M16 16h5",
  undo: "M9 14L4 9l5-5M4 9h11a5 5 0 0 1 0 10h-3",
  trash: "M4 7h16M9 7V4h6v3M6 7l1 13h10l1-13",
  eye: "M2 12s4-7 10-7 10 7 10 7-4 7-10 7S2 12 2 12zM12 9a3 3 0 1 0 0 6 3 3 0 0 0 0-6z",
  layers: "M12 3l9 5-9 5-9-5 9-5zM3 13l9 5 9-5",
  code: "M8 6l-6 6 6 6M16 6l6 6-6 6",
  search: "M11 4a7 7 0 1 0 0 14 7 7 0 0 0 0-14zM20 20l-4-4",
  out: "M15 4h4v16h-4M10 8l-4 4 4 4M6 12h10",
};

/** A small decorative icon (hidden from assistive technology: its button has a name). */
export function icon(name) {
  return svg(
    "svg",
    { class: "icon", viewBox: "0 0 24 24", "aria-hidden": "true", focusable: "false" },
    svg("path", { d: ICONS[name] }),
  );
}

const RELATIVE = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
const ABSOLUTE = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
const STEPS = [
  [60, "second"],
  [60, "minute"],
  [24, "hour"],
  [30, "day"],
  [12, "month"],
  [Infinity, "year"],
];

/** "3 minutes ago", for a timestamp of the API. */
export function relativeTime(iso, now = Date.now()) {
  let amount = (new Date(iso).getTime() - now) / 1000;
  for (const [size, unit] of STEPS) {
    if (Math.abs(amount) < size) return RELATIVE.format(Math.round(amount), unit);
    amount /= size;
  }
  return ABSOLUTE.format(new Date(iso));
}

/** A <time> showing the local date and time, with the relative time beside it. */
export function timeElement(iso) {
  const date = new Date(iso);
  return h(
    "time",
    { datetime: iso, title: date.toISOString() },
    ABSOLUTE.format(date),
    h("span", { class: "muted" }, ` · ${relativeTime(iso)}`),
  );
}

/** Announce a message to screen readers (and nothing else). */
export function announce(message) {
  const region = byId("announcer");
  region.textContent = "";
  // A separate task, so the same message twice is still read.
  setTimeout(() => {
    region.textContent = message;
  }, 50);
}

let toastTimer = null;

/** A short message at the bottom of the screen; kind is "ok" or "error". */
export function toast(message, kind = "ok") {
  const area = byId("toast");
  fill(area, h("p", { class: `toast toast-${kind}`, role: kind === "error" ? "alert" : "status" }, message));
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => fill(area), 6000);
}

/**
 * What identifies `element` across a re-render that builds it anew: its id, else the place a
 * link goes, else its tag, role and text (a button has no id).
 */
function focusKey(element) {
  if (element.id) return { id: element.id };
  const href = element.getAttribute("href");
  if (href !== null) return { href };
  return { tag: element.tagName, role: element.getAttribute("role"), text: element.textContent.trim() };
}

/** The element under `root` (an element or the document) that `key` (of focusKey) names. */
function findByKey(root, key) {
  if (key.id) return root.querySelector(`#${CSS.escape(key.id)}`);
  if (key.href !== undefined) return root.querySelector(`a[href="${CSS.escape(key.href)}"]`);
  return (
    [...root.querySelectorAll(key.tag)].find(
      (element) => element.getAttribute("role") === key.role && element.textContent.trim() === key.text,
    ) ?? null
  );
}

/**
 * A stand-in for `element` once it may have been replaced: itself while it is in the page,
 * else the element under `root` that now has its id, link or label, else null.
 */
export function successor(element, root = document) {
  if (document.contains(element)) return element;
  return findByKey(root, focusKey(element));
}

/**
 * Run `render()`, which rebuilds what is inside `container`. If the keyboard focus was in it,
 * it goes back to the element that took the focused one's place (else to `fallback()`'s
 * element): a live update must not throw a keyboard user back to the top of the page.
 */
export function keepingFocus(container, render, fallback = () => null) {
  const focused = document.activeElement;
  const inside = focused !== null && focused !== document.body && container.contains(focused);
  render();
  if (!inside || document.contains(focused)) return;
  (successor(focused, container) ?? fallback())?.focus({ preventScroll: true });
}
