/** A single resource read, the same for users and groups: one read-only transaction, 404 when it is not there. */
import type { AppStore, StoreTx } from "../store/index.js";
import type { ResourceRecord } from "../store/records.js";
import type { Resource } from "./model/attribute-path.js";
import { notFound } from "./model/errors.js";
import type { Written } from "./responses.js";

export function readOne(
  store: AppStore,
  operation: string,
  find: (tx: StoreTx) => Promise<ResourceRecord | undefined>,
  missing: string,
  render: (tx: StoreTx, rec: ResourceRecord) => Promise<Resource>,
): Promise<Written> {
  return store.run(
    operation,
    async (tx) => {
      const rec = await find(tx);
      if (!rec) throw notFound(missing);
      return { resource: await render(tx, rec), version: rec.version };
    },
    { readOnly: true },
  );
}
