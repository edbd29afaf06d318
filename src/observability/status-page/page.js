// The admin port's status page: polls /status (each second) and /metrics (every 5 s) of the node serving it.
// Every value goes into the page through textContent, never as HTML: dead-letter reasons carry user input.
// URLs are relative, so the page works behind a proxy that serves the admin port under a path prefix.

const $ = (id) => document.getElementById(id);

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function ms(v) {
  return v === null || v === undefined ? "—" : `${Math.round(v).toLocaleString("en")} ms`;
}

function when(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleTimeString("en-GB", { hour12: false });
}

function rows(tbody, items, cells, empty) {
  const body = $(tbody).querySelector("tbody");
  body.replaceChildren();
  if (!items.length) {
    const tr = el("tr");
    const td = el("td", empty, "hint");
    td.colSpan = body.parentElement.querySelectorAll("th").length;
    tr.append(td);
    body.append(tr);
    return;
  }
  for (const item of items) {
    const tr = el("tr");
    for (const c of cells(item)) tr.append(c instanceof Node ? c : el("td", c));
    body.append(tr);
  }
}

function num(v) {
  return el("td", v, "num");
}

function pairs(id, list) {
  const dl = $(id);
  dl.replaceChildren();
  for (const [k, v, cls] of list) dl.append(el("dt", k), el("dd", v, cls));
}

function roleBadge(role) {
  return el("span", role, `role ${role}`);
}

function cellOf(node) {
  const td = el("td");
  td.append(node);
  return td;
}

function render(s) {
  $("node").textContent = s.nodeId;
  const summary = $("summary");
  summary.replaceChildren(
    roleBadge(s.role),
    el("span", ` term ${s.term ?? "—"} · primary: ${s.leaderId ?? "none"} · since ${when(s.since)}`),
  );
  rows(
    "members",
    s.members ?? [],
    (m) => [m.nodeId, cellOf(roleBadge(m.role)), m.term ?? "—"],
    "no node holds a campaign key (etcd unreachable?)",
  );
  const a = s.agent ?? {};
  const lag = s.eventLagSeconds;
  pairs("events", [
    [
      "agent",
      a.running
        ? `running (term ${a.term})`
        : a.stopping
          ? `stopping (term ${a.term} ended)`
          : "not running here",
      a.running ? "ok" : undefined,
    ],
    ["caught up", a.caughtUp ? "yes" : "no", a.caughtUp ? "ok" : undefined],
    ["event lag", lag === null || lag === undefined ? "—" : `${lag.toFixed(1)} s`],
    ["last poll", when(a.lastPollAt)],
    [
      "waiting",
      a.waitingUntil ? `${a.waitingFor} until ${when(a.waitingUntil)}` : "no",
      // Pacing (polling slower so the budget lasts) is the agent keeping clear of the limit, not a fault.
      a.waitingUntil && !String(a.waitingFor).startsWith("pace") ? "bad" : undefined,
    ],
    ["cursor", s.cursor ? `after ${s.cursor.published ?? "(start)"} · term ${s.cursor.term ?? "—"}` : "—"],
    [
      "trouble",
      a.trouble ? `${a.trouble.reason}: ${a.trouble.message} (${a.trouble.failures}×)` : "none",
      a.trouble ? "bad" : undefined,
    ],
  ]);
  rows(
    "failovers",
    s.failovers ?? [],
    (f) => [
      when(f.at),
      `${f.from ?? "?"} → ${f.to}`,
      f.term,
      f.previousEnded ?? "not seen",
      num(ms(f.legsMs?.lastKeepaliveToKeyGone)),
      num(ms(f.legsMs?.keyGoneToElected)),
      num(ms(f.legsMs?.electedToFirstEvent)),
      num(ms(f.totalMs)),
    ],
    "this node has not been elected since it started",
  );
  const b = s.breaker ?? {};
  pairs("store", [
    ["kind", s.store?.kind],
    ["breaker", b.state, b.state === "closed" ? "ok" : "bad"],
    ["since", when(b.since)],
    [
      "last window",
      b.window ? `${b.window.successes} ok · ${b.window.failures} failed · ${b.window.rejects} refused` : "—",
    ],
  ]);
  const dead = s.deadLetters ?? { total: null, items: [] };
  $("dead-total").textContent =
    dead.total === null ? "etcd did not answer" : `${dead.total} in all${dead.total ? "; the latest:" : ""}`;
  rows("dead", dead.items ?? [], (d) => [when(d.at), d.eventType, d.subject, d.reason], "none");
  renderLimits(a.oktaRateLimits ?? {});
}

let remainingFromMetrics = {};

function renderLimits(budgets) {
  const buckets = Object.keys(budgets).length ? Object.keys(budgets) : Object.keys(remainingFromMetrics);
  rows(
    "limits",
    buckets.sort(),
    (k) => {
      const b = budgets[k];
      const remaining = b ? b.remaining : remainingFromMetrics[k];
      return [
        k,
        num(b ? `${remaining} of ${b.limit}` : remaining),
        num(b?.limit ? `${Math.round((100 * remaining) / b.limit)} %` : "—"),
        when(b?.resetAt),
      ];
    },
    "no Okta call yet (the agent runs on the primary)",
  );
}

/** provisiond_okta_rate_limit_remaining{bucket="logs",…} 117 → { logs: 117 } */
function parseRemaining(text) {
  const out = {};
  for (const line of text.split("\n")) {
    const m = /^provisiond_okta_rate_limit_remaining\{[^}]*bucket="([^"]+)"[^}]*\} (\S+)$/.exec(line);
    if (m) out[m[1]] = Number(m[2]);
  }
  return out;
}

let lastOk = 0;
/** A node that accepts the connection and never answers must not leave the page showing old values as current. */
const ANSWER_WITHIN_MS = 3000;

async function refresh() {
  try {
    const res = await fetch("status", { cache: "no-store", signal: AbortSignal.timeout(ANSWER_WITHIN_MS) });
    if (!res.ok) throw new Error(`/status answered ${res.status}`);
    const body = await res.json().catch(() => {
      throw new Error("/status did not answer JSON (a proxy's error page?)");
    });
    try {
      render(body);
    } catch (err) {
      // The node answered: say the page could not show it, rather than that the node is down.
      throw Object.assign(new Error(`this page could not show /status: ${err.message}`), { answered: true });
    }
    lastOk = Date.now();
    $("reach").hidden = true;
    document.body.classList.remove("stale");
    $("updated").textContent = `updated ${when(new Date().toISOString())}`;
  } catch (err) {
    const reach = $("reach");
    reach.hidden = false;
    document.body.classList.add("stale");
    const why = err.name === "TimeoutError" ? `no answer within ${ANSWER_WITHIN_MS / 1000} s` : err.message;
    const what = err.answered ? err.message : `this node does not answer (${why})`;
    reach.textContent = `${what}; what follows is ${lastOk ? `from ${when(new Date(lastOk).toISOString())}` : "not known yet"}`;
  }
}

async function refreshMetrics() {
  try {
    const res = await fetch("metrics", { cache: "no-store", signal: AbortSignal.timeout(ANSWER_WITHIN_MS) });
    if (res.ok) remainingFromMetrics = parseRemaining(await res.text());
  } catch {
    // /status reports the node being unreachable.
  }
}

/** Runs `f` every `ms` after the previous run ends, so a slow node never has requests piling up. */
async function every(ms, f) {
  for (;;) {
    await f();
    await new Promise((r) => setTimeout(r, ms));
  }
}

every(5000, refreshMetrics);
every(1000, refresh);
