// Client addresses as logs, X-Forwarded-For and access rules want them: an IPv4 client of a
// dual-stack socket is reported by Node as `::ffff:a.b.c.d`; it is `a.b.c.d`.

/** `a.b.c.d` for an IPv4-mapped IPv6 address, the address itself otherwise ('' if unknown). */
export function plainAddress(address: string | undefined): string {
  if (address === undefined) return '';
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}
