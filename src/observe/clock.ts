// Timestamps that long-lived objects keep. Date.now() is beyond V8's small integers, so an object
// field holding it is a boxed number: 16 bytes more per field and object. A tunnel and its
// request record hold seven timestamps for as long as the tunnel lives, so they keep them as
// "ticks": milliseconds since this module loaded, plus one (0 stays "not yet"), which are small
// integers for the first 12 days of a process. Past that they are boxed again, still exact.
// (Date.now() is a double, and so is a difference of two: `small` makes the result an integer
// value V8 stores unboxed; a field that ever held a double stays boxed for every object.)

const BASE = Date.now() - 1;

/** Now, as ticks. */
export function ticksNow(): number {
  return small(Date.now() - BASE);
}

/** Epoch ms (0: not yet) as ticks. */
export function toTicks(epochMs: number): number {
  return epochMs === 0 ? 0 : small(epochMs - BASE);
}

/** Ticks (0: not yet) as epoch ms. */
export function toEpochMs(ticks: number): number {
  return ticks === 0 ? 0 : ticks + BASE;
}

/** `n` (an integer) as a small integer where it fits in 31 bits, else unchanged. */
export function small(n: number): number {
  return n >= 0 && n <= 0x3fffffff ? n | 0 : n;
}
