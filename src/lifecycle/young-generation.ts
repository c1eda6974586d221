// A bound on V8's young generation for a serving process. V8 doubles the young generation each
// time the bytes that survive its scavenges outgrow it, up to 32 MB (two 16 MB semi-spaces),
// and never gives the memory back while nothing is allocated. In wsgate what survives is
// mostly the small records of tunnels that then stay open for hours, so holding 10,000 idle
// tunnels grew it to the full 32 MB: about 2.5 KB of resident memory per tunnel that no tunnel
// uses. The data path allocates nothing on the JavaScript heap; what does allocate (handshakes,
// plain requests) lives for milliseconds and dies young in V8's first size as well.
//
// V8 fixes the largest size when the process starts (`--max-semi-space-size`); what it reads
// each time it would grow is the growth factor, so the young generation is kept at its first
// size (2 MB) by a factor of 1. An observer that stopped growth at a larger size would act only
// after the garbage collection that grew it past that size, so it would not bound it. An
// operator who sized the young generation on the command line or in NODE_OPTIONS keeps their size.

import * as v8 from 'node:v8';

/** Keeps the young generation at its first size from now on (once per process). */
export function boundYoungGeneration(): void {
  const flags = [...process.execArgv, process.env.NODE_OPTIONS ?? ''].join(' ');
  if (/semi[-_]space/.test(flags)) return;
  v8.setFlagsFromString('--semi-space-growth-factor=1');
}
