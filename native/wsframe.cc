// The frame tracker's state machine (wsframe.h). Payloads are skipped in one step per read; only
// header bytes (at most 14 per frame) are looked at one by one.

#include "wsframe.h"

namespace wsgate {

const char* const kWsViolationNames[kWsViolationCount] = {
    "none",
    "unmasked client frame",
    "masked backend frame",
    "unknown opcode",
    "reserved bits set",
    "control frame over 125 bytes",
    "fragmented control frame",
    "continuation without a start",
    "data frame inside a fragmented message",
    "64-bit length with its top bit set",
};

namespace {

// The violation in a header's first two bytes, or 0.
inline int32_t Check(const WsTracker& w, uint8_t b0, uint8_t b1) {
  uint32_t op = b0 & 0x0f;
  bool masked = (b1 & 0x80) != 0;
  if (masked != ((w.flags & kWsFlagMasked) != 0)) return masked ? kWsMasked : kWsUnmasked;
  if (op >= 8) {
    if (op > 10) return kWsOpcode;
    if (b0 & kWsRsvMask) return kWsRsv;
    if ((b1 & 0x7f) > 125) return kWsControlTooLong;
    if ((b0 & 0x80) == 0) return kWsControlFragmented;
    return kWsNone;
  }
  if (op > 2) return kWsOpcode;
  // Extensions set RSV bits on a message's first frame only (RFC 7692 §6).
  uint32_t rsv = b0 & kWsRsvMask;
  if (rsv != 0 && (op == 0 || (rsv & ~w.flags & kWsRsvMask) != 0)) return kWsRsv;
  if (op == 0 && !w.in_message) return kWsContinuationWithoutStart;
  if (op != 0 && w.in_message) return kWsDataInsideMessage;
  return kWsNone;
}

// Counts a violation; true when the direction must stop (strict mode).
inline bool Violated(WsTracker* w, int32_t v) {
  w->violations++;
  if (w->first_violation == 0) w->first_violation = v;
  return (w->flags & kWsFlagStrict) != 0;
}

inline void FrameEnded(WsTracker* w) {
  w->frames++;
  if ((w->b0 & 0x0f) < 8 && (w->b0 & 0x80)) w->messages++;
}

// The first close frame this way: its status code is read from its first two payload bytes.
inline void CloseStarts(WsTracker* w, uint64_t len) {
  w->close_seq = NextCloseSeq();
  if (len < 2) {
    w->close_code = 1005;
    return;
  }
  uint8_t len7 = w->hdr[1] & 0x7f;
  w->key_at = (w->hdr[1] & 0x80) ? (len7 == 126 ? 4 : len7 == 127 ? 10 : 2) : 0;
  w->code_need = 2;
  w->code_acc = 0;
}

inline void ReadCode(WsTracker* w, const uint8_t* data, size_t n) {
  for (size_t k = 0; k < n && w->code_need != 0; k++) {
    int pos = 2 - w->code_need;
    uint8_t key = w->key_at == 0 ? 0 : w->hdr[w->key_at + pos];
    w->code_acc = uint16_t((w->code_acc << 8) | (data[k] ^ key));
    if (--w->code_need == 0) w->close_code = w->code_acc == 0 ? 1005 : w->code_acc;
  }
}

inline void HeaderDone(WsTracker* w) {
  const uint8_t* h = w->hdr;
  uint64_t len = h[1] & 0x7f;
  if (len == 126) {
    len = (uint64_t(h[2]) << 8) | h[3];
  } else if (len == 127) {
    len = 0;
    for (int k = 2; k < 10; k++)
      len = (len << 8) | h[k];
    len &= ~(uint64_t(1) << 63);
  }
  w->b0 = h[0];
  w->hlen = 0;
  w->need = 2;
  w->remaining = len;
  if ((h[0] & 0x0f) < 8)
    w->in_message = (h[0] & 0x80) == 0;
  else if ((h[0] & 0x0f) == 8 && w->close_seq == 0)
    CloseStarts(w, len);
  if (len == 0) FrameEnded(w);
}

uint64_t g_close_seq = 0;

}  // namespace

uint64_t NextCloseSeq() {
  return ++g_close_seq;
}

long WsTracker::Feed(const uint8_t* data, size_t n) {
  if (stopped) {
    if (trailing) {
      stopped = false;
      stop_at_boundary = false;
      pause_on_pong = false;
      if (Feed(data, n) != kWsNoStop) trailing = false;
      stopped = true;
    }
    return 0;
  }
  size_t i = 0;
  // Where the current frame began in this read (-1: in an earlier one, already forwarded).
  long start = hlen == 0 ? 0 : -1;
  while (i < n) {
    if (remaining > 0) {
      uint64_t k = n - i < remaining ? n - i : remaining;
      if (code_need != 0) ReadCode(this, data + i, size_t(k));
      remaining -= k;
      i += size_t(k);
      if (remaining == 0) FrameEnded(this);
      continue;
    }
    if (hlen == 0) {
      if (stop_at_boundary) {
        stopped = true;
        trailing = true;
        return long(i);
      }
      if (pause_on_pong && data[i] == 0x8a) {
        paused = true;
        return long(i);
      }
      start = long(i);
    }
    hdr[hlen++] = data[i++];
    int32_t v = kWsNone;
    if (hlen == 2) {
      v = Check(*this, hdr[0], hdr[1]);
      uint8_t len7 = hdr[1] & 0x7f;
      need = uint8_t(2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + ((hdr[1] & 0x80) ? 4 : 0));
    } else if (hlen == 3 && (hdr[1] & 0x7f) == 127 && (hdr[2] & 0x80)) {
      v = kWsLength;
    }
    if (v != kWsNone && Violated(this, v)) {
      // Stopped before the violating frame: at a boundary only if its header began in this read.
      stopped = true;
      if (start < 0) return 0;
      hlen = 0;
      need = 2;
      return start;
    }
    if (hlen >= 2 && hlen == need) HeaderDone(this);
  }
  if (stop_at_boundary && AtBoundary()) {
    stopped = true;
    trailing = true;
    return long(n);
  }
  return kWsNoStop;
}

int WsPongCatcher::Take(const uint8_t* data, size_t n, size_t* i) {
  while (*i < n) {
    held[held_len++] = data[(*i)++];
    if (held_len < 2) continue;
    uint8_t b1 = held[1];
    if ((b1 & 0x7f) != kPingPayload || ((b1 & 0x80) != 0) != masked) return kPongOther;
    size_t p = masked ? 6 : 2;
    if (held_len < p + kPingPayload) continue;
    for (size_t k = 0; k < kPingPayload; k++) {
      if (uint8_t(held[p + k] ^ (masked ? held[2 + (k & 3)] : 0)) != expect[k]) return kPongOther;
    }
    return kPongOurs;
  }
  return kPongPending;
}

size_t PingFrame(uint8_t* out, const uint8_t* payload, bool masked, const uint8_t* key) {
  size_t head = masked ? 6 : 2;
  out[0] = 0x89;
  out[1] = uint8_t((masked ? 0x80 : 0) | kPingPayload);
  if (masked)
    for (int k = 0; k < 4; k++)
      out[2 + k] = key[k];
  for (size_t k = 0; k < kPingPayload; k++)
    out[head + k] = uint8_t(payload[k] ^ (masked ? key[k & 3] : 0));
  return head + kPingPayload;
}

}  // namespace wsgate
