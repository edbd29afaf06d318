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
    // The last leg ends at the first event the new term applies: the load above may have drained before the
    // kill, so events arrive after it too.
    await c.sim.control("POST", "/load", { users: 5, perSecond: 50, prefix: "after" });
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
    // A node that is up whatever the test above left behind.
    const n = c.alive()[0]!;
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

  it("works behind a proxy under a path prefix, and marks what it shows stale when the node stops answering", async () => {
    const n = c.alive()[0]!;
    const origin = `http://127.0.0.1:${n.adminPort}`;
    let down = false;
    const page = await browser.newPage();
    // The proxy: /admin/* is the admin port; anything else (an absolute URL on the page) goes nowhere.
    await page.route(`${origin}/**`, async (route) => {
      const url = new URL(route.request().url());
      if (!url.pathname.startsWith("/admin/") || (down && url.pathname === "/admin/status"))
        return route.abort("connectionrefused");
      return route.fulfill({ response: await route.fetch({ url: `${origin}${url.pathname.slice(6)}` }) });
    });
    await page.goto(`${origin}/admin/`);
    await page.locator("#node", { hasText: n.id }).waitFor();
    assert.equal(await page.locator("body.stale").count(), 0);
    assert.equal(await page.locator("#reach").isHidden(), true);

    down = true;
    await page.locator("body.stale #reach", { hasText: "does not answer" }).waitFor();
    assert.equal(await page.locator("#node").textContent(), n.id, "the last answer stays, marked stale");
    down = false;
    await page.locator("body:not(.stale) #reach[hidden]").waitFor({ state: "attached" });
    await page.close();
  });
});
