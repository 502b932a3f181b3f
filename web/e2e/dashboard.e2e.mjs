// End-to-end run of the dashboard in a real Chromium (Debian's, driven by playwright-core).
//
//   node e2e/dashboard.e2e.mjs CONFIG.json
//
// CONFIG (written by tests/web/test_dashboard.py, which starts the API and `next start`):
//   baseUrl, edition ("community" | "enterprise"), key, viewerKey?, workspace, principal,
//   customer?, pipeline {id, name, streams: [{name, mode, cursor_field, primary_key}]},
//   pipelineNames (every pipeline, for the pagination check), tag + taggedNames (tag filter),
//   secrets (strings no page may contain), shotDir, chromium.
//
// It performs each step as an operator would and records what the pages showed; the pytest test
// asserts on that record. It prints one JSON document on its last line of stdout:
//   {"ok": bool, "steps": {name: {ok, error?, ...observations}}, "scanned": n, "leaks": [...]}
// and exits 1 when a step failed (an element that never appeared, a navigation that never ended).
import fs from "node:fs";
import path from "node:path";

import { chromium } from "playwright-core";

const config = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const base = config.baseUrl.replace(/\/+$/, "");
const steps = {};
const keys = [config.key, config.viewerKey].filter(Boolean);
const leaks = [];
let scanned = 0;
let failed = false;

/** Run one step; an exception marks it failed and is recorded (later steps still run). */
async function step(name, fn) {
  const started = Date.now();
  try {
    steps[name] = { ok: true, ...(await fn()) };
  } catch (error) {
    failed = true;
    steps[name] = { ok: false, error: String(error?.stack ?? error).slice(0, 2000) };
  }
  steps[name].ms = Date.now() - started;
}

const text = async (locator) => ((await locator.textContent()) ?? "").replace(/\s+/g, " ").trim();
const texts = async (locator) => (await locator.allTextContents()).map((t) => t.replace(/\s+/g, " ").trim());

const browser = await chromium.launch({
  executablePath: config.chromium,
  // Without the background-networking switches Chromium waits on the (closed) network.
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});

try {
  const context = await browser.newContext({ viewport: { width: 1360, height: 900 }, acceptDownloads: true });
  context.setDefaultTimeout(20_000);
  const page = await context.newPage();
  const consoleErrors = [];
  page.on("console", (m) => {
    if (m.type() === "error") consoleErrors.push(m.text());
  });
  // Every answer of the dashboard's server (HTML, RSC payloads, server action results, the
  // download) is scanned for the API keys.
  const pending = [];
  page.on("response", (response) => {
    if (!response.url().startsWith(base)) return;
    pending.push(
      response
        .body()
        .then((body) => {
          scanned += 1;
          const s = body.toString("utf8");
          for (const k of keys) if (s.includes(k)) leaks.push(`${response.status()} ${response.url()}`);
          for (const secret of config.secrets ?? []) if (s.includes(secret)) leaks.push(`secret in ${response.url()}`);
        })
        .catch(() => undefined), // redirects and aborted requests have no body
    );
  });

  const goto = async (p) => {
    const r = await page.goto(base + p);
    return r?.status() ?? 0;
  };

  const login = async (key) => {
    await goto("/login");
    await page.getByTestId("api-key").fill(key);
    await Promise.all([page.waitForURL(`${base}/`), page.getByTestId("login").click()]);
  };

  await step("unauthenticated_redirect", async () => {
    await goto("/pipelines");
    return { url: page.url() };
  });

  await step("login_bad_key", async () => {
    await goto("/login");
    await page.getByTestId("api-key").fill(`of_000000000000_${"x".repeat(43)}`);
    await page.getByTestId("login").click();
    const problem = page.getByTestId("problem");
    await problem.waitFor();
    return {
      url: page.url(),
      problemType: await problem.getAttribute("data-problem-type"),
      detail: await text(page.getByTestId("problem-detail")),
    };
  });

  await step("login", async () => {
    await login(config.key);
    await page.getByTestId("workspace").waitFor();
    const customer = page.getByTestId("customer");
    const features = {};
    for (const row of await page.locator("[data-testid=features] tr[data-feature]").all()) {
      features[await row.getAttribute("data-feature")] = {
        granted: (await row.getAttribute("data-granted")) === "true",
        text: await text(row),
      };
    }
    const warning = page.getByTestId("license-warning");
    const observed = {
      url: page.url(),
      workspace: await text(page.getByTestId("workspace")),
      principal: await text(page.getByTestId("principal")),
      roles: await text(page.getByTestId("roles")),
      edition: await text(page.getByTestId("edition")),
      licenseReason: (await page.getByTestId("license-reason").count()) ? await text(page.getByTestId("license-reason")) : null,
      customer: (await customer.count()) ? await text(customer) : null,
      licenseWarning: (await warning.count()) ? await text(warning) : null,
      features,
    };
    await page.screenshot({ path: path.join(config.shotDir, `overview-${config.edition}.png`), fullPage: true });
    return observed;
  });

  await step("session_cookie", async () => {
    const cookies = await context.cookies(base);
    return {
      documentCookie: await page.evaluate(() => document.cookie),
      cookies: cookies.map((c) => ({ name: c.name, httpOnly: c.httpOnly, sameSite: c.sameSite, secure: c.secure, path: c.path })),
    };
  });

  await step("nav", async () => {
    const entries = [];
    for (const link of await page.locator("nav[aria-label=Main] a[data-feature]").all()) {
      entries.push({
        href: await link.getAttribute("href"),
        feature: await link.getAttribute("data-feature"),
        locked: (await link.getAttribute("data-locked")) === "true",
        lockIcon: (await link.locator(".lock-icon").count()) > 0,
      });
    }
    return { entries };
  });

  await step("connections", async () => {
    await page.getByRole("link", { name: "Connections", exact: true }).click();
    await page.waitForURL(`${base}/connections`);
    const rows = page.locator("[data-testid=connections] tbody tr[data-connection]");
    await rows.first().waitFor();
    return {
      names: await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute("data-connection"))),
      text: await text(page.getByTestId("connections")),
    };
  });

  await step("pipelines_pages", async () => {
    await goto("/pipelines?limit=2");
    const names = () =>
      page.locator("[data-testid=pipelines] tbody tr[data-pipeline]").evaluateAll((trs) => trs.map((tr) => tr.getAttribute("data-pipeline")));
    await page.locator("[data-testid=pipelines] tbody tr[data-pipeline]").first().waitFor();
    const first = await names();
    const seen = [...first];
    let pages = 1;
    while ((await page.getByTestId("next-page").count()) > 0 && pages < 10) {
      await Promise.all([page.waitForURL(/cursor=/), page.getByTestId("next-page").click()]);
      await page.locator("[data-testid=pipelines] tbody tr[data-pipeline]").first().waitFor();
      seen.push(...(await names()));
      pages += 1;
    }
    return { first, seen, pages };
  });

  await step("pipelines_tag_filter", async () => {
    await goto("/pipelines");
    await page.getByTestId("tag-filter").fill(config.tag);
    await Promise.all([page.waitForURL(/tag=/), page.getByTestId("tag-filter").press("Enter")]);
    await page.getByTestId("pipelines").waitFor();
    const names = await page
      .locator("[data-testid=pipelines] tbody tr[data-pipeline]")
      .evaluateAll((trs) => trs.map((tr) => tr.getAttribute("data-pipeline")));
    return { url: page.url(), names };
  });

  await step("pipeline_detail", async () => {
    await goto("/pipelines");
    await Promise.all([
      page.waitForURL(`${base}/pipelines/${config.pipeline.id}`),
      page.getByRole("link", { name: config.pipeline.name, exact: true }).click(),
    ]);
    await page.getByTestId("streams").waitFor();
    const streams = [];
    for (const row of await page.locator("[data-testid=streams] tbody tr[data-stream]").all()) {
      const cells = await texts(row.locator("td"));
      streams.push({
        name: await row.getAttribute("data-stream"),
        mode: cells[1],
        cursor: cells[2],
        primaryKey: cells[3],
        state: cells[6],
      });
    }
    const runsProblem = page.locator("section:has(h2:text('Recent runs')) [data-testid=problem]");
    return {
      name: await text(page.getByTestId("pipeline-name")),
      streams,
      recentRunsProblem: (await runsProblem.count()) ? await runsProblem.getAttribute("data-problem-type") : null,
    };
  });

  await step("run_now", async () => {
    await page.getByTestId("run-now").click();
    const box = page.getByTestId("run-now-problem");
    await box.waitFor();
    return {
      url: page.url(),
      problemType: await box.getByTestId("problem").getAttribute("data-problem-type"),
      text: await text(box),
    };
  });

  await step("runs_page", async () => {
    await page.getByRole("link", { name: "Runs", exact: true }).click();
    await page.waitForURL(`${base}/runs`);
    const problem = page.getByTestId("problem");
    await problem.waitFor();
    const observed = {
      status: Number(await problem.getAttribute("data-status")),
      problemType: await problem.getAttribute("data-problem-type"),
      text: await text(problem),
      navLinks: await texts(page.locator("nav[aria-label=Main] a")),
    };
    // The nav still works from the failing page.
    await page.getByRole("link", { name: "Pipelines", exact: true }).click();
    await page.waitForURL(`${base}/pipelines`);
    await page.getByTestId("pipelines").waitFor();
    observed.afterNav = page.url();
    return observed;
  });

  await step("audit", async () => {
    await goto(`/audit?action=${encodeURIComponent("pipeline:run")}`);
    await page.getByTestId("audit").waitFor();
    const rows = await page
      .locator("[data-testid=audit] tbody tr[data-action]")
      .evaluateAll((trs) => trs.map((tr) => ({ action: tr.getAttribute("data-action"), outcome: tr.getAttribute("data-outcome") })));
    await goto("/audit");
    const all = await page
      .locator("[data-testid=audit] tbody tr[data-action]")
      .evaluateAll((trs) => trs.map((tr) => tr.getAttribute("data-action")));
    return { runRows: rows, actions: all };
  });

  if (config.edition === "community") {
    await step("locked_policies", async () => {
      const status = await goto("/policies");
      const panel = page.getByTestId("enterprise-locked");
      await panel.waitFor();
      const observed = {
        status,
        feature: await panel.getAttribute("data-feature"),
        text: await text(panel),
        editors: await page.getByTestId("policy-editor").count(),
        versions: await page.getByTestId("policy-versions").count(),
      };
      await page.screenshot({ path: path.join(config.shotDir, "policies-community.png"), fullPage: true });
      return observed;
    });

    await step("locked_explain", async () => {
      await goto("/policies/explain");
      const panel = page.getByTestId("enterprise-locked");
      await panel.waitFor();
      return { feature: await panel.getAttribute("data-feature"), forms: await page.getByTestId("explain-form").count() };
    });

    await step("locked_export", async () => {
      await goto("/audit/export");
      const panel = page.getByTestId("enterprise-locked");
      await panel.waitFor();
      const observed = { feature: await panel.getAttribute("data-feature"), forms: await page.getByTestId("export-form").count() };
      // The download route itself is gated too: straight to it, and back comes the panel.
      await goto("/audit/export/download");
      await page.getByTestId("enterprise-locked").waitFor();
      observed.downloadUrl = page.url();
      return observed;
    });
  }

  if (config.edition === "enterprise") {
    await step("policies_save", async () => {
      await page.getByRole("link", { name: "Policies", exact: true }).click();
      await page.waitForURL(`${base}/policies`);
      await page.getByTestId("policy-editor").waitFor();
      const before = Number(await page.getByTestId("policies-in-force").getAttribute("data-version"));
      await page.getByTestId("policy-text").fill(config.validPolicy);
      await page.getByTestId("policy-comment").fill(config.validComment);
      await page.getByTestId("policy-save").click();
      const saved = page.getByTestId("policy-saved");
      await saved.waitFor();
      await page.locator(`[data-testid=policy-versions] tr[data-version="${before + 1}"]`).waitFor();
      return {
        before,
        saved: await text(saved),
        inForce: Number(await page.getByTestId("policies-in-force").getAttribute("data-version")),
        history: await page
          .locator("[data-testid=policy-versions] tbody tr[data-version]")
          .evaluateAll((trs) => trs.map((tr) => ({ version: Number(tr.getAttribute("data-version")), text: tr.textContent }))),
      };
    });

    await step("policies_invalid", async () => {
      await page.getByTestId("policy-text").fill(config.invalidPolicy);
      await page.getByTestId("policy-save").click();
      const table = page.getByTestId("diagnostics");
      await table.waitFor();
      const diagnostics = [];
      for (const row of await table.locator("tbody tr").all()) {
        const [line, policy, kind, message] = await texts(row.locator("td"));
        diagnostics.push({ line, policy, kind, message });
      }
      const observed = {
        problemType: await page.getByTestId("problem").getAttribute("data-problem-type"),
        problem: await text(page.getByTestId("problem")),
        diagnostics,
        editorText: await page.getByTestId("policy-text").inputValue(),
        inForce: Number(await page.getByTestId("policies-in-force").getAttribute("data-version")),
        history: await page
          .locator("[data-testid=policy-versions] tbody tr[data-version]")
          .evaluateAll((trs) => trs.map((tr) => Number(tr.getAttribute("data-version")))),
      };
      await page.screenshot({ path: path.join(config.shotDir, "policies-enterprise.png"), fullPage: true });
      // A reload shows what the API has: still the valid version only.
      await page.reload();
      await page.getByTestId("policies-in-force").waitFor();
      observed.inForceAfterReload = Number(await page.getByTestId("policies-in-force").getAttribute("data-version"));
      return observed;
    });

    await step("explain", async () => {
      await page.getByRole("link", { name: "Explain", exact: true }).click();
      await page.waitForURL(`${base}/policies/explain`);
      await page.getByTestId("explain-action").fill(config.explain.action);
      await page.getByTestId("explain-resource-type").selectOption(config.explain.resourceType);
      await page.getByTestId("explain-resource-id").fill(config.explain.resourceId);
      await page.getByTestId("explain-resource-extra").fill(config.explain.resourceExtra);
      await page.getByTestId("explain-submit").click();
      const ex = page.getByTestId("explanation");
      await ex.waitFor();
      await page.screenshot({ path: path.join(config.shotDir, "explain-enterprise.png"), fullPage: true });
      return { allowed: (await ex.getAttribute("data-allowed")) === "true", text: await text(ex) };
    });

    await step("audit_export", async () => {
      await page.getByRole("link", { name: "Audit export", exact: true }).click();
      await page.waitForURL(`${base}/audit/export`);
      await page.screenshot({ path: path.join(config.shotDir, "export-enterprise.png"), fullPage: true });
      const [download] = await Promise.all([page.waitForEvent("download"), page.getByTestId("export-download").click()]);
      const file = path.join(config.shotDir, "audit-export.ndjson");
      await download.saveAs(file);
      const observed = { filename: download.suggestedFilename(), file, failure: await download.failure() };
      // A refused export comes back to the page with the API's problem.
      await goto("/audit/export/download?since=yesterday");
      const problem = page.getByTestId("problem");
      await problem.waitFor();
      observed.refusedUrl = page.url();
      observed.refused = await text(problem);
      observed.refusedType = await problem.getAttribute("data-problem-type");
      return observed;
    });

    if (config.viewerKey) {
      await step("viewer_forbidden", async () => {
        await Promise.all([page.waitForURL(/\/login$/), page.getByTestId("logout").click()]);
        await login(config.viewerKey);
        await goto("/audit");
        const problem = page.getByTestId("problem");
        await problem.waitFor();
        const observed = {
          status: Number(await problem.getAttribute("data-status")),
          problemType: await problem.getAttribute("data-problem-type"),
          text: await text(problem),
        };
        await goto("/policies");
        const p2 = page.getByTestId("problem").first();
        await p2.waitFor();
        observed.policiesStatus = Number(await p2.getAttribute("data-status"));
        observed.policiesText = await text(p2);
        observed.editors = await page.getByTestId("policy-editor").count();
        return observed;
      });
    }
  }

  await step("logout", async () => {
    await Promise.all([page.waitForURL(/\/login$/), page.getByTestId("logout").click()]);
    const afterLogout = page.url();
    const cookies = await context.cookies(base);
    await goto("/");
    return { afterLogout, cookies: cookies.map((c) => c.name), revisit: page.url() };
  });

  await Promise.all(pending);
  steps.console = { ok: true, errors: consoleErrors };
} finally {
  await browser.close();
}

console.log(JSON.stringify({ ok: !failed, steps, scanned, leaks }));
process.exit(failed ? 1 : 0);
