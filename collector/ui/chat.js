// Renders a conversation (the API's normalised GenAI messages) as chat bubbles.
import { h } from "./dom.js";

const ROLE_LABELS = { system: "System", developer: "Developer", user: "User", assistant: "Assistant", tool: "Tool", function: "Tool" };

function roleClass(message) {
  if (message.direction === "output") return "assistant output";
  const role = message.role;
  if (role === "system" || role === "developer") return "system";
  if (role === "user") return "user";
  if (role === "tool" || role === "function") return "tool";
  if (role === "assistant") return "assistant";
  return "other";
}

function renderPart(part) {
  switch (part.type) {
    case "text":
      return h("div", { class: "msg-text" }, part.content);
    case "reasoning":
      return h("details", { class: "msg-reasoning" }, h("summary", {}, "Reasoning"), h("div", { class: "msg-text" }, part.content));
    case "tool_call":
      return h(
        "div",
        { class: "tool-block tool-call" },
        h("div", { class: "tool-head" }, h("span", { class: "tool-kind" }, "Tool call"), h("code", { class: "tool-name" }, part.name), part.id ? h("span", { class: "muted mono small" }, part.id) : null),
        h("pre", { class: "code" }, part.arguments),
      );
    case "tool_call_response":
      return h(
        "div",
        { class: "tool-block tool-result" },
        h("div", { class: "tool-head" }, h("span", { class: "tool-kind" }, "Tool result"), part.id ? h("span", { class: "muted mono small" }, part.id) : null),
        h("pre", { class: "code" }, part.response),
      );
    default:
      return h("div", { class: "tool-block" }, h("div", { class: "tool-head" }, h("span", { class: "tool-kind" }, part.type)), h("pre", { class: "code" }, part.content));
  }
}

/** One message bubble. */
export function renderMessage(message) {
  const label = message.direction === "output" ? "Response" : ROLE_LABELS[message.role] || message.role;
  const head = h(
    "div",
    { class: "msg-head" },
    h("span", { class: "msg-role" }, label),
    message.direction === "output" && message.role !== "assistant" ? h("span", { class: "muted small" }, message.role) : null,
    message.name ? h("span", { class: "muted small" }, message.name) : null,
    message.finish_reason ? h("span", { class: "pill pill-neutral", title: "finish reason" }, message.finish_reason) : null,
  );
  const parts = message.parts.length ? message.parts.map(renderPart) : [h("div", { class: "muted small" }, "(empty)")];
  return h("div", { class: `msg msg-${roleClass(message).replace(" ", " msg-")}`, dataset: { role: message.role } }, head, h("div", { class: "msg-body" }, parts));
}

/** The whole conversation, or a note when nothing was captured. */
export function renderConversation(messages, { emptyNote } = {}) {
  if (!messages || messages.length === 0) {
    return h("p", { class: "muted" }, emptyNote || "No messages were recorded for this call (content capture was off, or it is not an LLM call).");
  }
  return h("div", { class: "chat" }, messages.map(renderMessage));
}
