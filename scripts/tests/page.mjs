// The studio's web page in headless Chromium (Debian's chromium, driven by playwright-core):
// enter the key, submit a prompt, wait for the finished video to play, take a screenshot; then
// upload a storyboard and wait until every shot of the film is done.
//
//   node scripts/tests/page.mjs BASE_URL API_KEY SCREENSHOT.png STORYBOARD.yaml
//
// Run by crates/reel-cli/tests/studio.rs; needs `npm install playwright-core` and /usr/bin/chromium.
import { chromium } from 'playwright-core';

const [baseUrl, key, screenshot, storyboard] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const page = await browser.newPage({ viewport: { width: 1100, height: 700 } });
  page.on('pageerror', (e) => { console.error('page error:', e.message); process.exitCode = 1; });
  await page.goto(`${baseUrl}/?key=${key}`);
  await page.waitForSelector('#model option', { state: 'attached' });
  const prompt = 'a large yellow star spins over a black backdrop';
  await page.fill('#prompt', prompt);
  await page.fill('#seed', '3');
  // The estimate for the request shows before it is submitted.
  await page.waitForFunction(() => /Estimate on this server: about [0-9.]+ s/.test(document.getElementById('estimate').textContent),
    null, { timeout: 30000, polling: 200 });
  await page.click('#submit');
  // The new card appears, its video finishes, loads and has a duration.
  const ready = await page.waitForFunction((prompt) => {
    const card = [...document.querySelectorAll('.video[data-status="completed"]')]
      .find((c) => c.querySelector('.prompt').textContent === prompt);
    const video = card && card.querySelector('video');
    return video && video.readyState >= 2 && video.duration > 0 ? { duration: video.duration } : null;
  }, prompt, { timeout: 120000, polling: 250 });
  const { duration } = await ready.jsonValue();
  await page.screenshot({ path: screenshot });
  console.log(`video plays in the page: ${duration.toFixed(2)} s`);

  // A film from an uploaded storyboard: its card lists each shot's state until all are done.
  await page.setInputFiles('#storyboard-file', storyboard);
  await page.click('#film-submit');
  const film = await page.waitForFunction(() => {
    const card = [...document.querySelectorAll('.video[data-status="completed"]')]
      .find((c) => c.querySelector('.prompt').textContent === 'Uploaded film');
    const video = card && card.querySelector('video');
    return video && video.readyState >= 2 ? card.querySelector('.shots').textContent : null;
  }, null, { timeout: 180000, polling: 250 });
  const shots = await film.jsonValue();
  if (shots !== 'shot 1 completed · shot 2 completed') throw new Error(`unexpected shot states: '${shots}'`);
  console.log(`the uploaded film is done: ${shots}`);
} finally {
  await browser.close();
}
