// The three ways a client reaches wsgate over HTTP/1.1 on one port, for tests that must hold on
// each: the native front, Node accepting (WSGATE_NATIVE_FRONT=0) and TLS.

import { once } from 'node:events';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { makeCerts, type CertFiles, type Certs } from './certs';
import { startGateway, type RunningGateway } from './harness';

export type Front = 'native' | 'node' | 'tls';
export const FRONTS: readonly Front[] = ['native', 'node', 'tls'];

/** Gateways and client connections on each front; the certificates are made at the first use. */
export class FrontKit {
  private made: { certs: Certs; cert: CertFiles } | undefined;

  /** The CA and the front's certificate (for `localhost` and 127.0.0.1). */
  get certs(): Certs {
    return this.tls().certs;
  }

  private tls(): { certs: Certs; cert: CertFiles } {
    if (this.made === undefined) {
      const certs = makeCerts();
      this.made = { certs, cert: certs.issue('front', ['127.0.0.1', 'localhost']) };
    }
    return this.made;
  }

  /** A gateway whose first Listen is served by `front`, with `body` after it. */
  async gatewayOn(front: Front, body: string): Promise<RunningGateway> {
    if (front === 'tls') {
      const { cert } = this.tls();
      return startGateway(
        `Listen 127.0.0.1:0 https\nSSLEngine on\nSSLCertificateFile ${cert.cert}\nSSLCertificateKeyFile ${cert.key}\n${body}\n`,
      );
    }
    if (front === 'native') return startGateway(`Listen 127.0.0.1:0\n${body}\n`);
    process.env.WSGATE_NATIVE_FRONT = '0';
    try {
      return await startGateway(`Listen 127.0.0.1:0\n${body}\n`);
    } finally {
      delete process.env.WSGATE_NATIVE_FRONT;
    }
  }

  /** A connected client socket (TLS: verified against the test CA as `localhost`). */
  async connect(front: Front, port: number): Promise<net.Socket> {
    const s =
      front === 'tls'
        ? tls.connect({ host: '127.0.0.1', port, ca: this.certs.ca.pem, servername: 'localhost' })
        : net.connect(port, '127.0.0.1');
    s.on('error', () => {});
    await once(s, front === 'tls' ? 'secureConnect' : 'connect');
    return s;
  }
}

/** What a raw client read: the status of the first answer (0 if none), every byte, and whether the peer closed. */
export interface Answer {
  status: number;
  data: string;
  /** The peer closed the connection (as opposed to `until` matching). */
  closed: boolean;
}

/** Collects what the socket receives until it closes (or `until` holds for the bytes so far). */
export function collect(s: net.Socket, until?: (text: string) => boolean): Promise<Answer> {
  return new Promise((resolve) => {
    let data = '';
    const finish = (closed: boolean): void => {
      s.removeAllListeners('data');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(data);
      resolve({ status: m ? Number(m[1]) : 0, data, closed });
    };
    s.on('data', (c: Buffer) => {
      data += c.toString('latin1');
      if (until?.(data)) finish(false);
    });
    s.once('close', () => finish(true));
  });
}
