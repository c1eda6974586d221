// Traditional DES-based crypt(3), the 13-character hashes `htpasswd -d` writes, computed as the
// system crypt() on Linux computes them (Apache checks these entries with it):
//
// - the key is the first 8 bytes of the password (it stops at a NUL, as a C string does), each
//   shifted left one bit, so only their low 7 bits count and the parity bit DES drops is zero;
// - the salt is the hash's first two characters, 12 bits in crypt's alphabet (first character
//   least significant); salt bit i swaps outputs i and i + 24 of DES's expansion E, so the same
//   password hashes differently under each of the 4096 salts;
// - a zero block is encrypted 25 times in a row with that key and perturbed expansion;
// - the 64 result bits, with two zero bits appended, are written as 11 characters of
//   `./0-9A-Za-z`, six bits each, most significant first, after the two salt characters.
//
// DES is kept in two 32-bit halves; the expansion is split into two 24-bit halves (S-boxes 1-4
// and 5-8) so the salt's swaps are one masked exchange between them per round. The S-boxes are
// merged with the P permutation that follows them into tables built once, at module load.

const ALPHABET = './0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

// DES's tables as the standard (FIPS 46) prints them: bit positions counted from 1, at the most
// significant end.

/** Initial permutation; only its inverse is used (the block starts as zeros, which IP keeps). */
const IP = [
  58, 50, 42, 34, 26, 18, 10, 2, 60, 52, 44, 36, 28, 20, 12, 4, 62, 54, 46, 38, 30, 22, 14, 6, 64, 56, 48, 40, 32, 24, 16, 8, 57, 49, 41,
  33, 25, 17, 9, 1, 59, 51, 43, 35, 27, 19, 11, 3, 61, 53, 45, 37, 29, 21, 13, 5, 63, 55, 47, 39, 31, 23, 15, 7,
];

/** Permuted choice 1: the 56 key bits that matter, as the two 28-bit registers C and D. */
const PC1 = [
  57, 49, 41, 33, 25, 17, 9, 1, 58, 50, 42, 34, 26, 18, 10, 2, 59, 51, 43, 35, 27, 19, 11, 3, 60, 52, 44, 36, 63, 55, 47, 39, 31, 23, 15, 7,
  62, 54, 46, 38, 30, 22, 14, 6, 61, 53, 45, 37, 29, 21, 13, 5, 28, 20, 12, 4,
];

/** Permuted choice 2: the 48 bits of a round key, taken from C and D after their rotation. */
const PC2 = [
  14, 17, 11, 24, 1, 5, 3, 28, 15, 6, 21, 10, 23, 19, 12, 4, 26, 8, 16, 7, 27, 20, 13, 2, 41, 52, 31, 37, 47, 55, 30, 40, 51, 45, 33, 48,
  44, 49, 39, 56, 34, 53, 46, 42, 50, 36, 29, 32,
];

/** How far C and D rotate left before each of the 16 rounds. */
const ROTATIONS = [1, 1, 2, 2, 2, 2, 2, 2, 1, 2, 2, 2, 2, 2, 2, 1];

/** The permutation applied to the S-boxes' 32 output bits. */
const P = [16, 7, 20, 21, 29, 12, 28, 17, 1, 15, 23, 26, 5, 18, 31, 10, 2, 8, 24, 14, 32, 27, 3, 9, 19, 13, 30, 6, 22, 11, 4, 25];

/** The eight S-boxes, each 4 rows of 16: the row is a 6-bit input's outer bits, the column its inner four. */
const S = [
  [
    14, 4, 13, 1, 2, 15, 11, 8, 3, 10, 6, 12, 5, 9, 0, 7, 0, 15, 7, 4, 14, 2, 13, 1, 10, 6, 12, 11, 9, 5, 3, 8, 4, 1, 14, 8, 13, 6, 2, 11,
    15, 12, 9, 7, 3, 10, 5, 0, 15, 12, 8, 2, 4, 9, 1, 7, 5, 11, 3, 14, 10, 0, 6, 13,
  ],
  [
    15, 1, 8, 14, 6, 11, 3, 4, 9, 7, 2, 13, 12, 0, 5, 10, 3, 13, 4, 7, 15, 2, 8, 14, 12, 0, 1, 10, 6, 9, 11, 5, 0, 14, 7, 11, 10, 4, 13, 1,
    5, 8, 12, 6, 9, 3, 2, 15, 13, 8, 10, 1, 3, 15, 4, 2, 11, 6, 7, 12, 0, 5, 14, 9,
  ],
  [
    10, 0, 9, 14, 6, 3, 15, 5, 1, 13, 12, 7, 11, 4, 2, 8, 13, 7, 0, 9, 3, 4, 6, 10, 2, 8, 5, 14, 12, 11, 15, 1, 13, 6, 4, 9, 8, 15, 3, 0,
    11, 1, 2, 12, 5, 10, 14, 7, 1, 10, 13, 0, 6, 9, 8, 7, 4, 15, 14, 3, 11, 5, 2, 12,
  ],
  [
    7, 13, 14, 3, 0, 6, 9, 10, 1, 2, 8, 5, 11, 12, 4, 15, 13, 8, 11, 5, 6, 15, 0, 3, 4, 7, 2, 12, 1, 10, 14, 9, 10, 6, 9, 0, 12, 11, 7, 13,
    15, 1, 3, 14, 5, 2, 8, 4, 3, 15, 0, 6, 10, 1, 13, 8, 9, 4, 5, 11, 12, 7, 2, 14,
  ],
  [
    2, 12, 4, 1, 7, 10, 11, 6, 8, 5, 3, 15, 13, 0, 14, 9, 14, 11, 2, 12, 4, 7, 13, 1, 5, 0, 15, 10, 3, 9, 8, 6, 4, 2, 1, 11, 10, 13, 7, 8,
    15, 9, 12, 5, 6, 3, 0, 14, 11, 8, 12, 7, 1, 14, 2, 13, 6, 15, 0, 9, 10, 4, 5, 3,
  ],
  [
    12, 1, 10, 15, 9, 2, 6, 8, 0, 13, 3, 4, 14, 7, 5, 11, 10, 15, 4, 2, 7, 12, 9, 5, 6, 1, 13, 14, 0, 11, 3, 8, 9, 14, 15, 5, 2, 8, 12, 3,
    7, 0, 4, 10, 1, 13, 11, 6, 4, 3, 2, 12, 9, 5, 15, 10, 11, 14, 1, 7, 6, 0, 8, 13,
  ],
  [
    4, 11, 2, 14, 15, 0, 8, 13, 3, 12, 9, 7, 5, 10, 6, 1, 13, 0, 11, 7, 4, 9, 1, 10, 14, 3, 5, 12, 2, 15, 8, 6, 1, 4, 11, 13, 12, 3, 7, 14,
    10, 15, 6, 8, 0, 5, 9, 2, 6, 11, 13, 8, 1, 4, 10, 7, 9, 5, 0, 15, 14, 2, 3, 12,
  ],
  [
    13, 2, 8, 4, 6, 15, 11, 1, 10, 9, 3, 14, 5, 0, 12, 7, 1, 15, 13, 8, 10, 3, 7, 4, 12, 5, 6, 11, 0, 14, 9, 2, 7, 11, 4, 1, 9, 12, 14, 2,
    0, 6, 10, 13, 15, 3, 5, 8, 2, 1, 14, 7, 4, 10, 8, 13, 15, 12, 9, 0, 3, 5, 6, 11,
  ],
];

/** Bit `n` (from 1, most significant first) of a 32-bit word. */
function bit32(word: number, n: number): number {
  return (word >>> (32 - n)) & 1;
}

/** SP[box][input]: S-box `box` applied to a 6-bit input, its 4 bits put in place and permuted by P. */
const SP: Int32Array[] = S.map((box, b) => {
  const table = new Int32Array(64);
  for (let v = 0; v < 64; v++) {
    const row = ((v >> 4) & 2) | (v & 1);
    const column = (v >> 1) & 15;
    const placed = box[row * 16 + column]! << (28 - 4 * b);
    let permuted = 0;
    for (let i = 0; i < 32; i++) permuted = (permuted << 1) | bit32(placed, P[i]!);
    table[v] = permuted;
  }
  return table;
});

/** The inverse of IP: output bit i (from 1) is block bit FP[i - 1]. */
const FP: number[] = new Array<number>(64);
IP.forEach((from, i) => {
  FP[from - 1] = i + 1;
});

/** A character's value in crypt's alphabet, or -1. */
function value64(c: number): number {
  return ALPHABET.indexOf(String.fromCharCode(c));
}

/** Bit `n` (from 1, most significant first) of a 28-bit register. */
function bit28(register: number, n: number): number {
  return (register >>> (28 - n)) & 1;
}

/** The 16 round keys, each as two 24-bit halves (for S-boxes 1-4, then 5-8), interleaved. */
function roundKeys(password: Buffer): Int32Array {
  // The 64-bit key as two 32-bit words; every eighth bit (a byte's lowest) is dropped by PC1.
  let first = 0;
  let second = 0;
  for (let i = 0; i < 8 && i < password.length && password[i] !== 0; i++) {
    const byte = (password[i]! << 1) & 0xff;
    if (i < 4) first |= byte << (24 - 8 * i);
    else second |= byte << (56 - 8 * i);
  }
  let c = 0;
  let d = 0;
  for (let i = 0; i < 56; i++) {
    const from = PC1[i]!;
    const b = from <= 32 ? bit32(first, from) : bit32(second, from - 32);
    if (i < 28) c = (c << 1) | b;
    else d = (d << 1) | b;
  }
  const keys = new Int32Array(32);
  for (let round = 0; round < 16; round++) {
    const n = ROTATIONS[round]!;
    c = ((c << n) | (c >>> (28 - n))) & 0xfffffff;
    d = ((d << n) | (d >>> (28 - n))) & 0xfffffff;
    let high = 0;
    let low = 0;
    for (let i = 0; i < 24; i++) {
      const from = PC2[i]!;
      high = (high << 1) | (from <= 28 ? bit28(c, from) : bit28(d, from - 28));
    }
    for (let i = 24; i < 48; i++) {
      const from = PC2[i]!;
      low = (low << 1) | (from <= 28 ? bit28(c, from) : bit28(d, from - 28));
    }
    keys[round * 2] = high;
    keys[round * 2 + 1] = low;
  }
  return keys;
}

/**
 * The traditional crypt() of `password` with the salt in the first two characters of `setting`
 * (a stored hash or just its salt): the 13-character hash. Undefined when a salt character is
 * outside `./0-9A-Za-z`, where the system crypt fails too (so no password matches).
 */
export function desCrypt(password: Buffer, setting: string): string | undefined {
  if (setting.length < 2) return undefined;
  const s0 = value64(setting.charCodeAt(0));
  const s1 = value64(setting.charCodeAt(1));
  if (s0 < 0 || s1 < 0) return undefined;
  const salt = s0 | (s1 << 6);
  // Salt bit i swaps expansion outputs i and i + 24: bit 23 - i of the two 24-bit halves.
  let swap = 0;
  for (let i = 0; i < 12; i++) if ((salt >> i) & 1) swap |= 1 << (23 - i);
  const keys = roundKeys(password);

  let left = 0;
  let right = 0;
  for (let n = 0; n < 25; n++) {
    for (let round = 0; round < 16; round++) {
      // The expansion E: S-box k (from 0) reads 6 bits of the half-block starting one bit before
      // bit 4k, wrapping around. Rotated right by one, window k starts 26 - 4k bits up from the
      // least significant end (the last one wraps around to the top two bits).
      const r = (right >>> 1) | (right << 31);
      let high = (((r >>> 26) & 0x3f) << 18) | (((r >>> 22) & 0x3f) << 12) | (((r >>> 18) & 0x3f) << 6) | ((r >>> 14) & 0x3f);
      let low = (((r >>> 10) & 0x3f) << 18) | (((r >>> 6) & 0x3f) << 12) | (((r >>> 2) & 0x3f) << 6) | (((r << 2) | (r >>> 30)) & 0x3f);
      const t = (high ^ low) & swap;
      high ^= t ^ keys[round * 2]!;
      low ^= t ^ keys[round * 2 + 1]!;
      const f =
        SP[0]![(high >>> 18) & 0x3f]! ^
        SP[1]![(high >>> 12) & 0x3f]! ^
        SP[2]![(high >>> 6) & 0x3f]! ^
        SP[3]![high & 0x3f]! ^
        SP[4]![(low >>> 18) & 0x3f]! ^
        SP[5]![(low >>> 12) & 0x3f]! ^
        SP[6]![(low >>> 6) & 0x3f]! ^
        SP[7]![low & 0x3f]!;
      const next = left ^ f;
      left = right;
      right = next;
    }
    // Each encryption ends with its halves swapped, then FP; the next one's IP undoes FP, so
    // between encryptions only the swap remains, and FP is applied once, after the last.
    const t = left;
    left = right;
    right = t;
  }

  // The final permutation, then 66 bits (64 and two zeros) as 11 characters, six bits each.
  const bits = new Uint8Array(66);
  for (let i = 0; i < 64; i++) {
    const from = FP[i]!;
    bits[i] = from <= 32 ? bit32(left, from) : bit32(right, from - 32);
  }
  let out = setting.slice(0, 2);
  for (let i = 0; i < 66; i += 6) {
    let v = 0;
    for (let j = 0; j < 6; j++) v = (v << 1) | bits[i + j]!;
    out += ALPHABET[v];
  }
  return out;
}
