// IP addresses and networks as `Require ip`, `Allow from` and `Deny from` write them (APR's
// apr_ipsubnet_create): a full address, a partial IPv4 address (`10.1` = 10.1.0.0/16), an
// address with `/bits` or (IPv4) `/netmask`, IPv6 with `/bits`. A client address is compared
// after plainAddress() has turned an IPv4-mapped IPv6 address into IPv4.

import * as net from 'node:net';
import type { IpNet } from '../config/model';

/** The network `text` stands for, or a sentence saying what is wrong with it. */
export function parseIpNet(text: string): IpNet | string {
  const slash = text.indexOf('/');
  const addr = slash === -1 ? text : text.slice(0, slash);
  const mask = slash === -1 ? undefined : text.slice(slash + 1);
  if (addr.includes(':')) {
    const bytes = ipBytes(addr.startsWith('[') && addr.endsWith(']') ? addr.slice(1, -1) : addr);
    if (bytes === undefined || bytes.length !== 16) return `"${text}" is not an IP address or network`;
    let bits = 128;
    if (mask !== undefined) {
      if (!/^\d{1,3}$/.test(mask) || Number(mask) > 128) return `"${text}": an IPv6 network takes /bits (0 to 128)`;
      bits = Number(mask);
    }
    return network(6, bytes, bits);
  }
  // IPv4, maybe partial: one to four decimal octets.
  if (!/^\d{1,3}(\.\d{1,3}){0,3}\.?$/.test(addr))
    return `"${text}" is not an IP address or network (host names are not supported: use addresses)`;
  const octets = addr.replace(/\.$/, '').split('.').map(Number);
  if (octets.some((o) => o > 255)) return `"${text}" is not an IP address`;
  let bits = octets.length * 8;
  if (mask !== undefined) {
    if (octets.length !== 4) return `"${text}": a partial address takes no mask`;
    if (/^\d{1,2}$/.test(mask) && Number(mask) <= 32) bits = Number(mask);
    else {
      const m = ipBytes(mask);
      if (m === undefined || m.length !== 4) return `"${text}": the mask must be /bits or a dotted netmask`;
      const value = ((m[0] << 24) | (m[1] << 16) | (m[2] << 8) | m[3]) >>> 0;
      bits = 32 - Math.log2((~value >>> 0) + 1);
      if (!Number.isInteger(bits)) return `"${text}": ${mask} is not a contiguous netmask`;
    }
  }
  const bytes = Buffer.alloc(4);
  for (let i = 0; i < octets.length; i++) bytes[i] = octets[i];
  return network(4, bytes, bits);
}

function network(family: 4 | 6, bytes: Buffer, bits: number): IpNet {
  const mask: number[] = [];
  const masked: number[] = [];
  for (let i = 0; i < bytes.length; i++) {
    const b = Math.max(0, Math.min(8, bits - i * 8));
    mask.push(b === 0 ? 0 : (0xff << (8 - b)) & 0xff);
    masked.push(bytes[i] & mask[i]);
  }
  return { family, bytes: masked, mask };
}

/** The bytes of an IP literal (4 or 16), or undefined. */
export function ipBytes(address: string): Buffer | undefined {
  const kind = net.isIP(address);
  if (kind === 4) return Buffer.from(address.split('.').map(Number));
  if (kind !== 6) return undefined;
  const zone = address.indexOf('%');
  const text = zone === -1 ? address : address.slice(0, zone);
  // Expand `::` and a trailing dotted IPv4 part into eight 16-bit groups.
  let groups: string[];
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  let head = text;
  const tail: string[] = [];
  if (dotted !== null) {
    const o = dotted[1].split('.').map(Number);
    tail.push(((o[0] << 8) | o[1]).toString(16), ((o[2] << 8) | o[3]).toString(16));
    head = text.slice(0, -dotted[1].length);
    if (head.endsWith(':') && !head.endsWith('::')) head = head.slice(0, -1);
  }
  if (head.includes('::')) {
    const [l, r] = head.split('::');
    const left = l === '' ? [] : l.split(':');
    const right = r === '' ? [] : r.split(':');
    const fill = 8 - tail.length - left.length - right.length;
    groups = [...left, ...new Array<string>(fill).fill('0'), ...right, ...tail];
  } else {
    groups = [...(head === '' ? [] : head.split(':')), ...tail];
  }
  const out = Buffer.alloc(16);
  for (let i = 0; i < groups.length; i++) out.writeUInt16BE(parseInt(groups[i], 16), i * 2);
  return out;
}

/** Whether the client address (plain: IPv4 as a.b.c.d) is in `n`. */
export function inNet(n: IpNet, bytes: Buffer | undefined): boolean {
  if (bytes === undefined || bytes.length !== n.bytes.length) return false;
  for (let i = 0; i < bytes.length; i++) if ((bytes[i] & n.mask[i]) !== n.bytes[i]) return false;
  return true;
}
