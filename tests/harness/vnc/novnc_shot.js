// Drive noVNC's vnc_lite.html in headless Debian chromium (playwright-core):
//   node novnc_shot.js URL OUT.png
// Waits for the status "Connected" and for the canvas to hold non-black
// pixels, saves a screenshot and prints one JSON line; exits 1 on failure.
const { chromium } = require('playwright-core');
const fs = require('fs');
const os = require('os');
const path = require('path');

(async () => {
  const [url, out] = process.argv.slice(2);
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'snf-chrome-'));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1000, height: 700 },
    ignoreHTTPSErrors: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--ignore-certificate-errors',
           '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = ctx.pages()[0] || await ctx.newPage();
    page.on('console', m => console.error('console:', m.type(), m.text()));
    const t0 = Date.now();
    await page.goto(url);
    await page.waitForFunction(() => /Connected/.test(document.getElementById('status')?.textContent || ''),
                               null, { timeout: 20000 });
    const connectedMs = Date.now() - t0;
    await page.waitForFunction(() => {
      const c = document.querySelector('canvas');
      if (!c || !c.width) return false;
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      for (let i = 0; i < d.length; i += 4 * 97) if (d[i] || d[i + 1] || d[i + 2]) return true;
      return false;
    }, null, { timeout: 20000, polling: 200 });
    const size = await page.evaluate(() => { const c = document.querySelector('canvas'); return [c.width, c.height]; });
    await page.screenshot({ path: out });
    const status = await page.textContent('#status');
    console.log(JSON.stringify({ status, connected_ms: connectedMs, drawn_ms: Date.now() - t0, canvas: size }));
  } finally {
    await ctx.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
})().catch(e => { console.error('FAIL', e.message); process.exit(1); });
