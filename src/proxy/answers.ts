// wsgate's own answers (errors, refusals, redirects), one home for each front: bytes on an
// HTTP/1.1 socket, a response on an HTTP/2 stream, bytes the native front's engine writes.

import * as http2 from 'node:http2';
import type { Socket } from 'node:net';
import { buildErrorResponse, errorBody } from '../http/forward';
import { CONNECTION_SPECIFIC, closeStream, SINGLE_VALUE } from './h2stream';

const { NGHTTP2_INTERNAL_ERROR, NGHTTP2_NO_ERROR } = http2.constants;

/** Writes an error answer on an HTTP/1.1 connection, then closes it unless `keepAlive`. */
export function respondHttp1Error(socket: Socket, status: number, keepAlive: boolean, extraHeaders = '', withBody = true): void {
  if (!socket.writable) return;
  socket.write(buildErrorResponse(status, keepAlive, extraHeaders, withBody));
  if (!keepAlive) socket.destroySoon();
}

/** The bytes of an error answer the native front writes (and closes after); `withBody` false for a HEAD request. */
export function nativeErrorAnswer(status: number, extraHeaders = '', withBody = true): Buffer {
  return buildErrorResponse(status, false, extraHeaders, withBody);
}

/** A status answered by wsgate itself on a stream (the same text body as over HTTP/1.1). */
export function respondH2Error(
  stream: http2.ServerHttp2Stream,
  status: number,
  retryAfterS?: number,
  extraFields: readonly string[] = [],
): void {
  if (stream.destroyed || stream.closed || stream.headersSent) {
    closeStream(stream, NGHTTP2_INTERNAL_ERROR);
    return;
  }
  const body = errorBody(status);
  const headers: http2.OutgoingHttpHeaders = {
    ':status': status,
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
  };
  if (retryAfterS !== undefined) headers['retry-after'] = String(retryAfterS);
  for (let i = 0; i + 1 < extraFields.length; i += 2) {
    const name = extraFields[i].toLowerCase();
    if (CONNECTION_SPECIFIC.has(name)) continue;
    const prev = headers[name];
    headers[name] =
      prev === undefined || SINGLE_VALUE.includes(name)
        ? extraFields[i + 1]
        : [...(Array.isArray(prev) ? prev : [String(prev)]), extraFields[i + 1]];
  }
  try {
    stream.respond(headers);
  } catch {
    // A `Header always` value Node cannot send: the client gets a reset instead of the status.
    closeStream(stream, NGHTTP2_INTERNAL_ERROR);
    return;
  }
  stream.end(body, () => {
    // The request body, if any, is not wanted: end the stream instead of leaving it half-open.
    if (!stream.endAfterHeaders && !stream.readableEnded) closeStream(stream, NGHTTP2_NO_ERROR);
  });
}
