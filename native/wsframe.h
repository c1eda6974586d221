// The WebSocket frame tracker of the native engine: one per direction of a tunnel that upgraded
// to `websocket`. It reads frame headers (RFC 6455 §5.2) in the bytes just read and skips their
// payloads, so the engine knows where frames end and when a direction is between two frames (the
// only place a frame of wsgate's own may go). It never changes a forwarded byte.
//
// src/tunnel/wsframe.ts is the same state machine for the JavaScript pump; both run the vectors of
// test/tunnel/ws-vectors.json. The violation numbers are exported in the contract.

#ifndef WSGATE_WSFRAME_H_
#define WSGATE_WSFRAME_H_

#include <stddef.h>
#include <stdint.h>

namespace wsgate {

// What a tracker found wrong (0: nothing); names in kWsViolationNames, in this order.
enum WsViolation : int32_t {
  kWsNone = 0,
  kWsUnmasked = 1,
  kWsMasked = 2,
  kWsOpcode = 3,
  kWsRsv = 4,
  kWsControlTooLong = 5,
  kWsControlFragmented = 6,
  kWsContinuationWithoutStart = 7,
  kWsDataInsideMessage = 8,
  kWsLength = 9,
};
constexpr int kWsViolationCount = kWsLength + 1;
extern const char* const kWsViolationNames[kWsViolationCount];

// Tracker flags (the same bits in TypeScript): frames must be masked (client → backend), strict
// mode, and the RSV bits (as in a frame's first byte) a negotiated extension lets data frames set.
constexpr uint32_t kWsFlagMasked = 0x01;
constexpr uint32_t kWsFlagStrict = 0x02;
constexpr uint32_t kWsRsvMask = 0x70;

// feed() found nothing to stop at.
constexpr long kWsNoStop = -1;

// The payload length of wsgate's own pings (PING_PAYLOAD in TypeScript; in the contract).
constexpr size_t kPingPayload = 8;

// Orders close frames and wsgate's own closes across the engine, so a tunnel can tell which came
// first.
uint64_t NextCloseSeq();

struct WsTracker {
  uint32_t flags = 0;
  uint64_t frames = 0;    // complete frames, control frames included
  uint64_t messages = 0;  // complete data messages
  uint64_t violations = 0;
  int32_t first_violation = 0;
  bool stop_at_boundary = false;  // Feed stops at the next boundary
  bool stopped = false;           // Feed stopped: the rest of this direction is not forwarded
  // Stopped at a boundary: Feed still follows what comes (dropped by the engine) to read the
  // peer's answering close frame; a violation in strict mode ends that too.
  bool trailing = false;
  bool in_message = false;  // a fragmented data message is open
  // Set by the owner while a pong to its own ping is awaited: Feed pauses before a pong that
  // starts at a boundary, and sets `paused` (not `stopped`): the bytes from there are for a
  // WsPongCatcher.
  bool pause_on_pong = false;
  bool paused = false;
  // The status code of the first close frame this way (1005: it gave none), 0 before one; when
  // it came (NextCloseSeq); the bytes of its code still to read, the code so far, and where the
  // masking key is in hdr (0: unmasked).
  uint16_t close_code = 0;
  uint64_t close_seq = 0;
  uint8_t code_need = 0;
  uint8_t key_at = 0;
  uint16_t code_acc = 0;
  uint8_t hdr[14];
  uint8_t hlen = 0;
  uint8_t need = 2;
  uint8_t b0 = 0;          // the current frame's first byte
  uint64_t remaining = 0;  // payload bytes of the current frame still to pass

  bool AtBoundary() const { return hlen == 0 && remaining == 0; }
  // Follows data[0, n). Returns kWsNoStop when all of it may be forwarded, else the offset where
  // forwarding stops: the next boundary with stop_at_boundary, or the start of a violating frame
  // in strict mode (0 if its header began in an earlier read). Stopped, it returns 0.
  long Feed(const uint8_t* data, size_t n);
};

// What WsPongCatcher::Take decided about the frame it holds.
enum PongVerdict : int { kPongPending = 0, kPongOurs = 1, kPongOther = 2 };

// Holds back a pong frame, from a tracker's pause until it can tell whether it answers wsgate's
// own ping (the same length and payload): at most a header and kPingPayload bytes. Anything else
// is let go as soon as its second byte shows it. The same as PongCatcher in TypeScript.
struct WsPongCatcher {
  uint8_t expect[kPingPayload];
  bool awaiting = false;
  // The awaited pong came since the last ping check: the side's only sign of life may be that answer.
  bool answered = false;
  bool masked = false;  // the frames it sees come from a client
  uint8_t held[6 + kPingPayload];
  uint8_t held_len = 0;
  // Takes bytes of the held frame from data[*i, n), advancing *i, until it can decide.
  int Take(const uint8_t* data, size_t n, size_t* i);
};

// A ping carrying `payload` (kPingPayload bytes) into `out` (room for 6 + kPingPayload), masked
// with `key` toward a backend. Returns its length.
size_t PingFrame(uint8_t* out, const uint8_t* payload, bool masked, const uint8_t* key);

}  // namespace wsgate

#endif  // WSGATE_WSFRAME_H_
