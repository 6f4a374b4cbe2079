// How a batch (samples, crops, gallery rows) is shared among a fixed number of workers.

/** Splits count items into at most parts contiguous ranges, sizes differing by at most one. */
export function splitRanges(count: number, parts: number, multiple = 1): { start: number; count: number }[] {
  const units = Math.ceil(count / multiple);
  const used = Math.max(1, Math.min(parts, units));
  const ranges: { start: number; count: number }[] = [];
  let start = 0;
  for (let i = 0; i < used; i++) {
    const u = Math.floor(units / used) + (i < units % used ? 1 : 0);
    const c = Math.min(u * multiple, count - start);
    if (c > 0) ranges.push({ start, count: c });
    start += c;
  }
  return ranges;
}
