import { ScimError } from "../../src/scim/model/errors.js";

/** "status:scimType" of the ScimError `fn` throws, or undefined when it throws none. */
export function scimErrorOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    if (err instanceof ScimError) return `${err.status}:${err.scimType}`;
    throw err;
  }
  return undefined;
}
