// Progress on stderr: on a terminal one bar redrawn in place with counts, rate and ETA; piped, one
// whole line (with its newline) every few seconds and at the end; --quiet, nothing.
import { describe, expect, it } from 'vitest';
import { ProgressBar } from '../../src/commands/progress.js';

function sink(tty: boolean) {
  const s = { text: '', errIsTTY: tty, err: (t: string) => void (s.text += t) };
  return s;
}

describe('ProgressBar', () => {
  it('piped: a complete line every 5 seconds and the last one, never two counts on one line', () => {
    let now = 0;
    const io = sink(false);
    const bar = new ProgressBar(io, 100, 'embedding images', { unit: 'images', now: () => now });
    for (let i = 0; i < 100; i++) {
      now += 200; // 5 images/s: 20 s in all
      bar.tick();
    }
    const lines = io.text.split('\n');
    expect(lines.pop()).toBe(''); // ends with a newline
    expect(io.text).not.toContain('\r');
    // The first tick, then one line per 5 s, then the final line.
    expect(lines).toHaveLength(5);
    for (const l of lines) expect(l).toMatch(/^embedding images \[[#.]{28}\] \d+\/100 \d+% [\d.]+ images\/s( ETA \d+:\d\d)? \(\d+:\d\d\)$/);
    expect(lines[1]).toMatch(/ 26\/100 26% 5\.0 images\/s ETA 0:15 \(0:05\)$/);
    expect(lines[4]).toMatch(/^embedding images \[#{28}\] 100\/100 100% 5\.0 images\/s \(0:20\)$/);
  });

  it('on a terminal: redraws one line with \\r at most ten times a second, and ends it with a newline', () => {
    let now = 0;
    const io = sink(true);
    const bar = new ProgressBar(io, 50, 'dedupe', { unit: 'photos', now: () => now });
    for (let i = 0; i < 50; i++) {
      now += 20;
      bar.tick();
    }
    const draws = io.text.split('\r').filter(Boolean);
    expect(draws.length).toBeLessThanOrEqual(11);
    expect(draws.length).toBeGreaterThanOrEqual(9);
    expect(io.text.split('\n')).toHaveLength(2); // one newline, at the end
    expect(draws[2]).toMatch(/^dedupe \[#+\.+\] \d+\/50 \d+% 50 photos\/s ETA 0:0\d \(0:00\)\x1b\[K$/);
    expect(draws.at(-1)).toMatch(/^dedupe \[#{28}\] 50\/50 100% 50 photos\/s \(0:01\)\x1b\[K\n$/);
  });

  it('quiet: prints nothing; finish() after stopping early prints the last count once', () => {
    const quiet = sink(true);
    const q = new ProgressBar(quiet, 10, 'x', { quiet: true });
    for (let i = 0; i < 10; i++) q.tick();
    expect(quiet.text).toBe('');
    let now = 0;
    const io = sink(false);
    const bar = new ProgressBar(io, 10, 'x', { now: () => now });
    bar.tick(3);
    now = 1000;
    bar.finish();
    bar.finish();
    expect(io.text.trim().split('\n').at(-1)).toMatch(/^x \[#{8}\.{20}\] 3\/10 30% 3\.0\/s ETA 0:02 \(0:01\)$/);
    expect(io.text.trim().split('\n')).toHaveLength(2);
  });
});
