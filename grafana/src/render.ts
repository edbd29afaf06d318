/**
 * Dashboard JSON as Biome formats it (objects one key a line, short arrays of scalars on one line), so that
 * `biome format --write .` leaves the generated files alone and the staleness test keeps comparing bytes.
 */

const LINE_WIDTH = 110; // biome.json's formatter.lineWidth

function scalar(v: unknown): boolean {
  return v === null || typeof v !== "object";
}

function write(v: unknown, indent: string, prefixLength: number): string {
  if (scalar(v)) return JSON.stringify(v);
  const inner = `${indent}  `;
  if (Array.isArray(v)) {
    if (v.length === 0) return "[]";
    if (v.every(scalar)) {
      const line = `[${v.map((x) => JSON.stringify(x)).join(", ")}]`;
      // Biome would wrap a longer one over several lines; none of ours is, and a silent mismatch would not do.
      if (prefixLength + line.length + 1 > LINE_WIDTH)
        throw new Error(`array too long for one line: ${line}`);
      return line;
    }
    return `[\n${v.map((x) => `${inner}${write(x, inner, inner.length)}`).join(",\n")}\n${indent}]`;
  }
  const entries = Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== undefined);
  if (entries.length === 0) return "{}";
  const lines = entries.map(([k, x]) => {
    const key = `${inner}${JSON.stringify(k)}: `;
    return `${key}${write(x, inner, key.length)}`;
  });
  return `{\n${lines.join(",\n")}\n${indent}}`;
}

export function renderJson(value: unknown): string {
  // Through JSON first: the SDK's objects may carry functions or undefined that JSON drops.
  return `${write(JSON.parse(JSON.stringify(value)), "", 0)}\n`;
}
