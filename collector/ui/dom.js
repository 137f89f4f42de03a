// Safe DOM building: every piece of data becomes a text node or an attribute value set through
// the DOM API. No string is ever parsed as HTML, here or anywhere in the viewer.

/**
 * h("a", {class: "x", href: "#/", onclick: fn}, "text", child) -> HTMLElement
 * props: class, text, dataset {..}, style {..} (CSSOM), on<event> listeners, other attributes.
 */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  if (props) {
    for (const [key, value] of Object.entries(props)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") el.className = value;
      else if (key === "text") el.textContent = String(value);
      else if (key === "dataset") Object.assign(el.dataset, value);
      else if (key === "style") Object.assign(el.style, value);
      else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
      else el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

/** Append children (nodes, strings, numbers, nested arrays; null/false skipped) as nodes. */
export function append(el, children) {
  for (const child of [children].flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replace all children of el. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** A hash link inside the app: route segments are URI-encoded. */
export function link(route, text, props = {}) {
  return h("a", { href: route, ...props }, text);
}

/** A button that copies `text()` to the clipboard and says so. */
export function copyButton(getText, label = "Copy") {
  const button = h("button", { type: "button", class: "btn btn-small copy", title: "Copy to clipboard" }, label);
  button.addEventListener("click", async () => {
    const text = getText();
    let ok = false;
    try {
      await navigator.clipboard.writeText(text);
      ok = true;
    } catch {
      const area = h("textarea", { class: "offscreen", readonly: true });
      area.value = text;
      document.body.append(area);
      area.select();
      ok = document.execCommand("copy");
      area.remove();
    }
    button.textContent = ok ? "Copied" : "Press Ctrl+C";
    button.classList.toggle("copied", ok);
    setTimeout(() => {
      button.textContent = label;
      button.classList.remove("copied");
    }, 1500);
  });
  return button;
}

/** A small labelled pill. kind: neutral | ok | error | accent | warn */
export function pill(text, kind = "neutral", title) {
  return h("span", { class: `pill pill-${kind}`, title }, text);
}

/** "Loading…" placeholder. */
export function loading(what = "Loading") {
  return h("div", { class: "loading", role: "status" }, h("span", { class: "spinner" }), `${what}…`);
}

/** An error box with an optional action. */
export function errorBox(message, action) {
  return h("div", { class: "notice notice-error", role: "alert" }, h("strong", {}, "Something went wrong. "), message, action ? [" ", action] : null);
}
