// What a process on this machine holds, read from Linux's /proc: the TCP ports it listens on, its
// connections, its children.
// Looking at the process's own descriptors (not "is anything on port X") keeps a check right
// while other programs on the machine open and close ports.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import type * as net from 'node:net';
import type WebSocket from 'ws';

/** Inodes of the sockets among `pid`'s open descriptors. */
function socketInodes(pid: number): Set<string> {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    let target: string;
    try {
      target = readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue; // closed meanwhile
    }
    const m = /^socket:\[(\d+)\]$/.exec(target);
    if (m) inodes.add(m[1]);
  }
  return inodes;
}

/** The TCP ports (IPv4 and IPv6) on which `pid` holds a listening socket, sorted, each once. */
export function listeningPorts(pid: number): number[] {
  const mine = socketInodes(pid);
  const ports = new Set<number>();
  for (const table of ['tcp', 'tcp6']) {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/net/${table}`, 'utf8');
    } catch {
      continue; // no IPv6 on this machine
    }
    for (const row of text.split('\n').slice(1)) {
      const f = row.trim().split(/\s+/);
      // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
      if (f.length < 10 || f[3] !== '0A') continue; // 0A: LISTEN
      if (!mine.has(f[9])) continue;
      ports.add(parseInt(f[1].split(':')[1], 16));
    }
  }
  return [...ports].sort((a, b) => a - b);
}

/**
 * The peer ports of the established TCP connections `pid` holds on local port `port` (IPv4 and
 * IPv6): for a proxy, the client ports of the connections it accepted there.
 */
export function peerPorts(pid: number, port: number): number[] {
  const mine = socketInodes(pid);
  const peers: number[] = [];
  for (const table of ['tcp', 'tcp6']) {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/net/${table}`, 'utf8');
    } catch {
      continue;
    }
    for (const row of text.split('\n').slice(1)) {
      const f = row.trim().split(/\s+/);
      if (f.length < 10 || f[3] !== '01') continue; // 01: ESTABLISHED
      if (!mine.has(f[9]) || parseInt(f[1].split(':')[1], 16) !== port) continue;
      peers.push(parseInt(f[2].split(':')[1], 16));
    }
  }
  return peers;
}

/** The pids of `pid`'s child processes (a `-w N` primary's workers). */
export function childrenOf(pid: number): number[] {
  const text = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
  return text === '' ? [] : text.split(/\s+/).map(Number);
}

/** Which of `workers` holds each client's connection to `port`: the one with an accepted connection from its local port. */
export function holders(clients: readonly WebSocket[], workers: readonly number[], port: number): number[] {
  const byPeer = new Map<number, number>();
  for (const pid of workers) for (const peer of peerPorts(pid, port)) byPeer.set(peer, pid);
  return clients.map((ws) => {
    const pid = byPeer.get((ws as unknown as { _socket: net.Socket })._socket.localPort!);
    assert.ok(pid !== undefined, 'every connection is held by a worker');
    return pid;
  });
}
