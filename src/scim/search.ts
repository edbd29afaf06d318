/** Root-level search (RFC 7644 §3.4.3): users, then groups, paged as one list. */
import { UnsupportedQuery } from "../store/errors.js";
import type { ListResult, RequestContext } from "./context.js";
import type { GroupService } from "./groups.js";
import { fitPage, type ListParams, listResponse } from "./list.js";
import { ScimError } from "./model/errors.js";
import type { UserService } from "./users.js";

/** A filter or attribute that one resource type lacks selects nothing of that type. */
async function unlessInapplicable(fn: () => Promise<ListResult>): Promise<ListResult | undefined> {
  try {
    return await fn();
  } catch (err) {
    if ((err instanceof ScimError && err.status === 400) || err instanceof UnsupportedQuery) return undefined;
    throw err;
  }
}

export class RootSearch {
  constructor(
    private readonly users: UserService,
    private readonly groups: GroupService,
  ) {}

  async search(p: ListParams, ctx: RequestContext): Promise<ListResult> {
    const u = await unlessInapplicable(() => this.users.list({ ...p, count: 0 }, ctx));
    const g = await unlessInapplicable(() => this.groups.list({ ...p, count: 0 }, ctx));
    // Inapplicable to both: the users' error is the answer.
    if (!u && !g) await this.users.list({ ...p, count: 0 }, ctx);
    const uTotal = u?.totalResults ?? 0;
    const gTotal = g?.totalResults ?? 0;
    const Resources: Record<string, unknown>[] = [];
    if (u && p.startIndex <= uTotal && p.count > 0) {
      const page = (await this.users.list(p, ctx)).Resources;
      Resources.push(...page);
      // A users part cut short by the byte cap ends the page: groups here would take skipped users' places,
      // and the next page (from startIndex + itemsPerPage) would repeat them.
      if (p.startIndex - 1 + page.length < Math.min(uTotal, p.startIndex - 1 + p.count))
        return listResponse(uTotal + gTotal, p.startIndex, Resources);
    }
    const left = p.count - Resources.length;
    if (g && left > 0) {
      const start = Math.max(1, p.startIndex - uTotal);
      if (start <= gTotal)
        Resources.push(...(await this.groups.list({ ...p, startIndex: start, count: left }, ctx)).Resources);
    }
    // The two parts together keep to the byte cap; trimming the tail keeps the paging consistent.
    return listResponse(uTotal + gTotal, p.startIndex, fitPage(Resources, p.maxPageBytes));
  }
}
