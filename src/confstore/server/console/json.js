// JSON values as text: formatted and coloured by building spans, masked secrets marked.

import { h } from "./dom.js";

export const MASK = "***";

function scalar(value) {
  if (value === MASK) return h("span", { class: "j-secret", title: "secret (masked)" }, JSON.stringify(MASK));
  if (typeof value === "string") return h("span", { class: "j-str" }, JSON.stringify(value));
  if (typeof value === "number") return h("span", { class: "j-num" }, String(value));
  return h("span", { class: "j-lit" }, String(value));
}

function render(value, indent, parts) {
  const pad = "  ".repeat(indent + 1);
  const close = "  ".repeat(indent);
  if (Array.isArray(value)) {
    if (value.length === 0) return parts.push("[]");
    parts.push("[\n");
    value.forEach((item, index) => {
      parts.push(pad);
      render(item, indent + 1, parts);
      parts.push(index < value.length - 1 ? ",\n" : "\n");
    });
    return parts.push(`${close}]`);
  }
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value);
    if (entries.length === 0) return parts.push("{}");
    parts.push("{\n");
    entries.forEach(([key, item], index) => {
      parts.push(pad, h("span", { class: "j-key" }, JSON.stringify(key)), ": ");
      render(item, indent + 1, parts);
      parts.push(index < entries.length - 1 ? ",\n" : "\n");
    });
    return parts.push(`${close}}`);
  }
  return parts.push(scalar(value));
}

/** The nodes of a value formatted as JSON (two-space indent). */
export function jsonNodes(value) {
  const parts = [];
  render(value, 0, parts);
  return parts;
}

/** A block of formatted JSON with a label for assistive technology. */
export function jsonBlock(value, label) {
  return h("pre", { class: "json", tabindex: "0", "aria-label": label }, h("code", {}, jsonNodes(value)));
}

/** A value inside a diff cell: absent, a scalar, or a small formatted block. */
function cell(value, present) {
  if (!present) return h("span", { class: "absent" }, "(absent)");
  if (value !== null && typeof value === "object") return h("code", { class: "json inline" }, jsonNodes(value));
  return h("code", {}, scalar(value));
}

const KIND_LABEL = { added: "added", removed: "removed", changed: "changed" };

/**
 * A side-by-side, field-level diff table of the API's changes (path, old, new, kind),
 * the two columns headed by `fromLabel` and `toLabel`.
 */
export function diffTable(changes, fromLabel, toLabel, caption) {
  if (changes.length === 0) {
    return h("p", { class: "empty-diff" }, "No field differs between these versions.");
  }
  return h(
    "div",
    { class: "table-scroll" },
    h(
      "table",
      { class: "diff" },
      h("caption", { class: "visually-hidden" }, caption),
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          h("th", { scope: "col" }, "Field"),
          h("th", { scope: "col" }, fromLabel),
          h("th", { scope: "col" }, toLabel),
        ),
      ),
      h(
        "tbody",
        {},
        changes.map((change) =>
          h(
            "tr",
            { class: `diff-${change.kind}` },
            h(
              "th",
              { scope: "row" },
              h("code", {}, change.path || "(whole value)"),
              h("span", { class: `tag tag-${change.kind}` }, KIND_LABEL[change.kind] ?? change.kind),
            ),
            h("td", { class: "old" }, cell(change.old, change.kind !== "added")),
            h("td", { class: "new" }, cell(change.new, change.kind !== "removed")),
          ),
        ),
      ),
    ),
  );
}
