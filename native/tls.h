// TLS on the native front: contexts prepared from the config (one per certificate), sessions on
// accepted sockets, and the reads and writes of a tunnel's TLS side. It uses the OpenSSL that
// Node links: the headers ship with Node's, and the symbols resolve from the node binary when the
// addon loads. Only tls.cc includes OpenSSL's headers; the rest of the engine sees `ssl_st*`.

#ifndef WSGATE_TLS_H_
#define WSGATE_TLS_H_

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <string>

struct ssl_st;

namespace wsgate {

// What JavaScript gives for a context (src/listeners/native-tls.ts: the same settings as Node's
// tls.createSecureContext gets from listeners/tls.ts). Versions are OpenSSL's numbers (0x0303 =
// TLS 1.2); `cipher_list` (TLS ≤ 1.2) and `cipher_suites` (TLS 1.3) as Node splits its `ciphers`.
struct TlsContextOptions {
  std::string cert;  // PEM: the certificate, then its chain
  std::string key;
  int min_version = 0;
  int max_version = 0;
  std::string cipher_list;
  std::string cipher_suites;
  bool honor_cipher_order = false;
  bool no_tickets = false;
  long session_timeout_s = 300;
  std::string groups;   // "" : OpenSSL's default
  std::string sigalgs;  // "" : OpenSSL's default
};

// A context's id (> 0), or 0 with *error saying what OpenSSL refused.
uint32_t TlsContextNew(const TlsContextOptions& o, std::string* error);
bool TlsContextFree(uint32_t id);

// A server session on connected socket `fd` with context `ctx_id` (null: unknown id). `alpn`: the
// protocol to select when the client offers ALPN ("" : none is selected).
ssl_st* TlsSessionNew(uint32_t ctx_id, int fd, const std::string& alpn);
void TlsSessionFree(ssl_st* ssl);

enum class TlsStep { kDone, kWantRead, kWantWrite, kFailed };
// Runs the handshake as far as the socket allows (kWantRead: it read the socket to EAGAIN;
// kWantWrite: the socket is full); on kFailed, *reason names why as Node's TLS errors do
// (ERR_SSL_…, or ECONNRESET for a client that left).
TlsStep TlsHandshake(ssl_st* ssl, std::string* reason);

// Decrypted bytes into buf (up to cap, several records at a time): > 0 the count, 0 the client's
// close_notify or EOF, -1 with errno (EAGAIN: nothing yet; EPROTO: a TLS error). *drained: the
// socket was read to its end, so new bytes raise a new edge.
ssize_t TlsRead(ssl_st* ssl, char* buf, size_t cap, bool* drained);
// Encrypts data[*off, len) to the socket until all is written or it is full, advancing *off;
// 0 or the errno of a failed write (as WriteSome).
int TlsWrite(ssl_st* ssl, const char* data, size_t len, size_t* off);
// Sends close_notify (once; best effort: a full socket drops it, the FIN follows anyway).
void TlsCloseNotify(ssl_st* ssl);
// The negotiated protocol ("TLSv1.3"), cipher (OpenSSL's name), SNI name, ALPN protocol, and
// whether the session was resumed.
void TlsInfo(ssl_st* ssl, std::string* protocol, std::string* cipher, std::string* servername, std::string* alpn, bool* resumed);
// The bytes read from the socket so far (RequestReadTimeout's handshake stage counts them, as
// Node's path counts the raw socket's bytesRead).
uint64_t TlsBytesRead(ssl_st* ssl);
// Sessions made and handshakes completed since the process started (a test can tell that a
// connection went the native way).
void TlsCounts(double* sessions, double* handshakes);

}  // namespace wsgate

#endif  // WSGATE_TLS_H_
