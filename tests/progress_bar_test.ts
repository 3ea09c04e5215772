/**
 * The progress line as text (lib/cli/progress_bar.ts) and the summary of a many-file transfer:
 * the line fits the terminal's width, keeping percentage, rate and ETA on a narrow one, and the
 * rate behind the ETA is smoothed so that the ETA does not jump.
 *
 * @module
 */
import assert from "node:assert/strict";
import { formatBar, formatEta, RateMeter, truncate } from "../lib/cli/progress_bar.ts";
import { summaryLine } from "../lib/cli/output.ts";

const FIELDS = {
  label: "a-rather-long-file-name-of-a-movie.bin",
  fraction: 0.42,
  amount: "26.9 MiB/64.0 MiB",
  rate: "3.20 MiB/s",
  eta: "12s",
};

Deno.test("formatBar() on a wide terminal shows the name, a 24-cell bar, bytes, rate and ETA", () => {
  const line = formatBar(FIELDS, 160);
  assert.match(
    line,
    /^a-rather-long-file-name-of-a-movie\.bin \[[\u2588\u2591]{24}\] 42% 26\.9 MiB\/64\.0 MiB 3\.20 MiB\/s ETA 12s$/,
  );
  assert.equal(line.match(/\u2588/g)?.length, Math.round(0.42 * 24));
});

Deno.test("formatBar() at 50 columns fits in 49 and keeps percentage, rate and ETA", () => {
  const line = formatBar(FIELDS, 50);
  assert.ok(Array.from(line).length <= 49, `${line} (${line.length})`);
  assert.match(line, / 42% /);
  assert.match(line, /3\.20 MiB\/s/);
  assert.match(line, /ETA 12s$/);
  assert.match(line, /\[[\u2588\u2591]{8,24}\]/);
});

Deno.test("formatBar() never exceeds the width, from 1 to 200 columns, and keeps the percentage", () => {
  for (let width = 1; width <= 200; width++) {
    const line = formatBar(FIELDS, width);
    assert.ok(Array.from(line).length <= Math.max(1, width - 1), `${width}: ${line}`);
    if (width >= 5) assert.match(line, /42%/, `${width}: ${line}`);
  }
});

Deno.test("formatBar() drops the byte amount before the rate, and the rate before the ETA", () => {
  const widths = Array.from({ length: 100 }, (_, i) => i + 20);
  for (const width of widths) {
    const line = formatBar(FIELDS, width);
    if (line.includes("MiB/64.0")) assert.match(line, /MiB\/s ETA/, line);
    if (line.includes("MiB/s")) assert.match(line, /ETA 12s/, line);
  }
  assert.doesNotMatch(formatBar(FIELDS, 50), /64\.0 MiB/);
});

Deno.test("truncate() cuts to the width with an ellipsis, and leaves short text alone", () => {
  assert.equal(truncate("movie.bin", 20), "movie.bin");
  assert.equal(truncate("movie.bin", 6), "movie\u2026");
  assert.equal(truncate("movie.bin", 0), "");
});

Deno.test("formatEta() writes seconds, minutes and hours, and `-` when unknown", () => {
  assert.equal(formatEta(4.2), "5s");
  assert.equal(formatEta(65), "1m05s");
  assert.equal(formatEta(2 * 3600 + 3 * 60), "2h03m");
  assert.equal(formatEta(Infinity), "-");
  assert.equal(formatEta(NaN), "-");
});

Deno.test("RateMeter smooths bursts and stalls: the rate stays near the average, so the ETA does not jump", () => {
  const meter = new RateMeter(0, 0, 5, 200);
  // 1 MiB/s on average, arriving as 2 MiB/s bursts and stalls every other half second.
  const MiB = 1024 * 1024;
  let bytes = 0;
  const rates: number[] = [];
  for (let step = 1; step <= 80; step++) {
    bytes += step % 2 === 0 ? MiB : 0;
    const rate = meter.sample(bytes, step * 500);
    assert.ok(rate !== undefined);
    if (step > 40) rates.push(rate); // once it has settled
  }
  // The measured rate swings between 0 and 2 MiB/s; the smoothed one stays within 15% of 1 MiB/s.
  for (const rate of rates) assert.ok(Math.abs(rate - MiB) < 0.15 * MiB, `${rate / MiB} MiB/s`);
  // The ETA of 60 MiB left moves by about a tenth from one sample to the next (unsmoothed, it
  // would swing between 30 s and never).
  for (let i = 1; i < rates.length; i++) {
    const before = 60 * MiB / rates[i - 1]!;
    const after = 60 * MiB / rates[i]!;
    assert.ok(Math.abs(after - before) / before < 0.12, `${before} s -> ${after} s`);
  }
});

Deno.test("RateMeter follows a lasting change of rate within a few time constants (here 1 s)", () => {
  const meter = new RateMeter(0, 0, 1, 100);
  let bytes = 0;
  for (let ms = 100; ms <= 5000; ms += 100) meter.sample(bytes += 100_000, ms); // 1 MB/s
  assert.ok(Math.abs(meter.rate! - 1_000_000) < 1, String(meter.rate));
  for (let ms = 5100; ms <= 12_000; ms += 100) meter.sample(bytes += 10_000, ms); // 100 kB/s
  assert.ok(Math.abs(meter.rate! - 100_000) < 5_000, String(meter.rate));
});

Deno.test("RateMeter gives the plain average until its first interval has passed, then smooths", () => {
  const meter = new RateMeter(0, 0, 3, 200);
  assert.equal(meter.sample(0, 0), undefined); // no time has passed
  assert.equal(meter.sample(1000, 50), 20_000); // a fast transfer still shows a rate
  assert.equal(meter.sample(1000, 100), 10_000);
  assert.equal(meter.rate, undefined);
  assert.equal(meter.sample(2000, 200), 10_000); // 2000 bytes in 0.2 s: the first full sample
  // Samples within the interval after it are folded into the next.
  assert.equal(meter.sample(100_000, 250), 10_000);
});

Deno.test("summaryLine() counts files, bytes, time and rate, then what was skipped or not moved", () => {
  assert.equal(
    summaryLine({
      direction: "get",
      files: 5000,
      bytes: 5 * 1024 * 1024,
      seconds: 4,
      skipped: 0,
      notTransferred: 0,
    }),
    "Downloaded 5000 files (5.00 MiB) in 4.00 s, 1.25 MiB/s",
  );
  assert.equal(
    summaryLine({
      direction: "put",
      files: 1,
      bytes: 2048,
      seconds: 2,
      skipped: 3,
      notTransferred: 2,
    }),
    "Uploaded 1 file (2.00 KiB) in 2.00 s, 1.00 KiB/s; 3 skipped (already complete); 2 not uploaded",
  );
});
