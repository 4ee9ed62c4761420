// Drives Debian's chromium (never a downloaded browser) with playwright-core for
// tests/e2e/tests/dashboard.rs: loads the dashboard, reports each poll the page
// completes ("poll N" on stdout) until the file named by DONE exists, then waits two
// more polls, saves a screenshot and prints "result {json}" with every number the
// page drew, read from its data attributes.
//
// node dashboard-snapshot.mjs URL DONE_FILE SCREENSHOT_PNG
import { chromium } from "playwright-core";
import { existsSync } from "node:fs";

const [url, doneFile, screenshot] = process.argv.slice(2);
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
const errors = [];
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  page.on("dialog", (d) => { errors.push("unexpected dialog: " + d.message()); d.dismiss(); });
  await page.goto(url);
  const seq = () => page.evaluate(() => Number(document.getElementById("status").dataset.pollSeq));
  const after = (n) => page.waitForFunction(
    (n) => Number(document.getElementById("status").dataset.pollSeq) > n, n, { timeout: 30000 });
  let last = 0;
  // Bounded: at most 600 polls while the test sends its traffic.
  for (let i = 0; i < 600 && !existsSync(doneFile); i++) {
    await after(last);
    last = await seq();
    console.log("poll " + last);
  }
  const settled = await seq();
  await after(settled + 1);
  const snapshot = await page.evaluate(() => {
    const rows = (id) => [...document.querySelectorAll("#" + id + " tbody tr")].map((tr) => ({ ...tr.dataset }));
    const metrics = {};
    for (const el of document.querySelectorAll("[data-metric]")) metrics[el.dataset.metric] = el.dataset.value;
    return {
      status: { ...document.getElementById("status").dataset },
      metrics,
      reasons: rows("reasons"),
      top_refusals: rows("top-refusals"),
      top_cost: rows("top-cost"),
      budgets: rows("budgets"),
      hourly: [...document.querySelectorAll("#hourly rect")].map((r) => ({ ...r.dataset })),
      rate_samples: Number(document.getElementById("rates").dataset.samples),
      address: location.href,
    };
  });
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log("result " + JSON.stringify({ errors, snapshot }));
} finally {
  await browser.close();
}
