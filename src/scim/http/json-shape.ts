/**
 * Checks a request body's shape before it is parsed: no object may name a member twice, and nesting stays
 * within `maxDepth`. JSON.parse keeps the last of two duplicate names silently, so two parsers (ours, and a
 * proxy's or an auditor's) could read one body two ways, a known trick; and deep nesting makes recursive code
 * overflow its stack. jsonc-parser's visitor sees every member name without building the value.
 */
import { visit } from "jsonc-parser";

export class BodyShapeError extends Error {
  /** body-parser reports a `verify` failure under the error's own type. */
  readonly type = "entity.shape.invalid";
  constructor(message: string) {
    super(message);
    this.name = "BodyShapeError";
  }
}

export function checkJsonShape(text: string, maxDepth: number): void {
  const names: Set<string>[] = [];
  let depth = 0;
  let problem: string | undefined;
  const enter = () => {
    if (++depth > maxDepth) problem ??= `the request body nests deeper than ${maxDepth} levels`;
  };
  visit(
    text,
    {
      onObjectBegin: () => {
        enter();
        names.push(new Set());
      },
      onObjectEnd: () => {
        depth--;
        names.pop();
      },
      onArrayBegin: enter,
      onArrayEnd: () => {
        depth--;
      },
      onObjectProperty: (name) => {
        // SCIM attribute names are case-insensitive (RFC 7643 §2.1): `userName` and `USERNAME` are one name.
        const seen = names[names.length - 1]!;
        const folded = name.toLowerCase();
        if (seen.has(folded)) problem ??= `the request body names "${name.slice(0, 64)}" twice in one object`;
        seen.add(folded);
      },
    },
    { disallowComments: true, allowTrailingComma: false },
  );
  if (problem) throw new BodyShapeError(problem);
}
