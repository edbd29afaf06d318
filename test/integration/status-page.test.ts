/**
 * The admin port's status page in a real browser (Debian's chromium, driven by playwright-core): open on the
 * standby of a two-node cluster, kill the primary, and watch the page show this node as the new primary with a
 * new failover row. A screenshot of it is kept in test/output/status-page/ (CI keeps it as an artifact).
 */
import assert from "node:assert/strict";
import { existsSync, mkdirSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { type Browser, chromium, type Page } from "playwright-core";
import { Cluster, type NodeProc } from "../support/cluster.js";
import { waitFor } from "../support/okta-sim.js";

const CHROMIUM = process.env.PROVISIOND_TEST_CHROMIUM ?? "/usr/bin/chromium";
const OUT = new URL("../output/status-page/", import.meta.url);

describe("status page (chromium)", { timeout: 300_000 }, () => {
  let c: Cluster;
  let browser: Browser;
  before(async () => {
    if (!existsSync(CHROMIUM))
      throw new Error(
        `no chromium at ${CHROMIUM}: apt-get install chromium, or set PROVISIOND_TEST_CHROMIUM`,
      );
    mkdirSync(OUT, { recursive: true });
    [c, browser] = await Promise.all([
      Cluster.start({ ttlMs: 2000 }),
      chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-dev-shm-usage"] }),
    ]);
    await waitFor("a primary", async () => (await c.primary()) !== undefined);
  });
  after(async () => {
    await browser?.close();
    await c?.destroy();
  });

  const open = async (n: NodeProc): Promise<Page> => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1100 } });
    await page.goto(`http://127.0.0.1:${n.adminPort}/`);
    return page;
  };

  it("on the standby: the primary is killed, and the page shows this node as primary with a new failover row", async () => {
    const old = (await c.primary())!;
    const standby = c.nodes.find((n) => n !== old)!;
    await c.sim.control("POST", "/load", { users: 50, updates: 50, perSecond: 200, prefix: "page" });
    const page = await open(standby);
    await page.locator("#summary .role", { hasText: "standby" }).waitFor();
    await page.locator("#members tbody tr", { hasText: old.id }).locator(".role.primary").waitFor();
    const rowsBefore = await page.locator("#failovers tbody tr").filter({ hasText: "→" }).count();

    await c.kill(old, "SIGKILL");
    await page.locator("#summary .role", { hasText: "primary" }).waitFor({ timeout: 60_000 });
    const row = page.locator("#failovers tbody tr").filter({ hasText: `${old.id} → ${standby.id}` });
    await row.first().waitFor();
    assert.equal(await page.locator("#failovers tbody tr").filter({ hasText: "→" }).count(), rowsBefore + 1);
    // The row is complete once the new term has applied an event: every leg timed, the lease ran out.
    await row.first().filter({ hasText: "lease-ran-out" }).waitFor();
    await page.waitForFunction(() => {
      const cells = [...document.querySelectorAll("#failovers tbody tr:first-child td")];
      return cells.length === 8 && cells.slice(4).every((td) => /\d ms$/.test(td.textContent ?? ""));
    });
    assert.match((await page.locator("#summary").textContent()) ?? "", new RegExp(`primary: ${standby.id}`));
    await page.screenshot({ path: new URL("standby-after-failover.png", OUT).pathname, fullPage: true });
    await page.close();
    await c.startNode(old);
  });

  it("shows what /status says as text, never as markup (dead-letter reasons carry user input)", async () => {
    const n = c.nodes[0]!;
    const real = await c.status(n);
    const hostile = '<img src=x onerror="window.__pwned=1">';
    const page = await browser.newPage();
    await page.route("**/status", (route) =>
      route.fulfill({
        contentType: "application/json",
        body: JSON.stringify({
          ...real,
          nodeId: `<b>${n.id}</b>`,
          deadLetters: {
            total: 1,
            items: [
              {
                eventId: "e1",
                eventType: "application.user_membership.add",
                published: real.startedAt,
                subject: "<script>window.__pwned=2</script>",
                reason: `400: userName ${hostile} is not valid`,
                at: real.startedAt,
              },
            ],
          },
        }),
      }),
    );
    await page.goto(`http://127.0.0.1:${n.adminPort}/`);
    await page.locator("#dead tbody td", { hasText: hostile }).waitFor();
    assert.equal(await page.locator("#dead img, #dead script, #node b").count(), 0);
    assert.equal(await page.locator("#node").textContent(), `<b>${n.id}</b>`);
    assert.equal(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned), undefined);
    await page.close();
  });
});
