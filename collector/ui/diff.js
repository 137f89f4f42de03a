// Word-level diff (longest common subsequence over words and the whitespace between them).

const MAX_CELLS = 4_000_000;

function tokens(text) {
  return String(text ?? "").split(/(\s+)/).filter((t) => t !== "");
}

/**
 * diffWords(a, b) -> [{op: "same" | "del" | "add", text}], or null when the texts are too long
 * to compare word by word.
 */
export function diffWords(a, b) {
  const x = tokens(a);
  const y = tokens(b);
  let start = 0;
  while (start < x.length && start < y.length && x[start] === y[start]) start++;
  let endX = x.length;
  let endY = y.length;
  while (endX > start && endY > start && x[endX - 1] === y[endY - 1]) {
    endX--;
    endY--;
  }
  const mx = x.slice(start, endX);
  const my = y.slice(start, endY);
  const n = mx.length;
  const m = my.length;
  if ((n + 1) * (m + 1) > MAX_CELLS) return null;
  // lcs[i][j] = LCS length of mx[i:], my[j:]
  const width = m + 1;
  const lcs = new Uint32Array((n + 1) * width);
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i * width + j] = mx[i] === my[j] ? lcs[(i + 1) * width + j + 1] + 1 : Math.max(lcs[(i + 1) * width + j], lcs[i * width + j + 1]);
    }
  }
  const out = [];
  const push = (op, text) => {
    const last = out[out.length - 1];
    if (last && last.op === op) last.text += text;
    else out.push({ op, text });
  };
  if (start) push("same", x.slice(0, start).join(""));
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (mx[i] === my[j]) {
      push("same", mx[i]);
      i++;
      j++;
    } else if (lcs[(i + 1) * width + j] >= lcs[i * width + j + 1]) {
      push("del", mx[i++]);
    } else {
      push("add", my[j++]);
    }
  }
  while (i < n) push("del", mx[i++]);
  while (j < m) push("add", my[j++]);
  if (endX < x.length) push("same", x.slice(endX).join(""));
  return out;
}
