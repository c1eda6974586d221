// TLS sessions of the native front (tls.h says what is here and why).

#include "tls.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <string.h>

#include <memory>
#include <unordered_map>

namespace wsgate {

namespace {

struct CtxFree {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
std::unordered_map<uint32_t, std::unique_ptr<SSL_CTX, CtxFree>> g_contexts;
uint32_t g_next_context = 1;
double g_sessions = 0;
double g_handshakes = 0;

// What a session carries besides OpenSSL's state: the ALPN protocol JavaScript chose, and whether
// the socket's last read returned less than was asked (the socket was emptied then: like a plain
// side's short read, no read is needed to learn that it is drained).
struct SessionData {
  std::string alpn;
  bool short_read = false;
};

// Watches the reads of a session's socket BIO (its callback argument is the SessionData).
long WatchRead(BIO* b, int oper, const char*, size_t len, int, long, int ret, size_t* processed) {
  if (oper == (BIO_CB_READ | BIO_CB_RETURN)) {
    auto* d = reinterpret_cast<SessionData*>(BIO_get_callback_arg(b));
    d->short_read = ret <= 0 || processed == nullptr || *processed < len;
  }
  return oper & BIO_CB_RETURN ? ret : 1;
}

// Selects the protocol JavaScript chose (selectAlpn, as Node's ALPNCallback does) among those the
// client offered; none chosen: no ALPN in the answer.
int SelectAlpn(SSL* ssl, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned int inlen, void*) {
  auto* d = static_cast<SessionData*>(SSL_get_app_data(ssl));
  if (d == nullptr || d->alpn.empty()) return SSL_TLSEXT_ERR_NOACK;
  for (unsigned int i = 0; i < inlen;) {
    unsigned int n = in[i];
    if (i + 1 + n > inlen) break;
    if (n == d->alpn.size() && memcmp(in + i + 1, d->alpn.data(), n) == 0) {
      *out = in + i + 1;
      *outlen = static_cast<unsigned char>(n);
      return SSL_TLSEXT_ERR_OK;
    }
    i += 1 + n;
  }
  return SSL_TLSEXT_ERR_NOACK;
}

// The first error on OpenSSL's queue in Node's words: code ERR_SSL_<REASON> and the message.
std::string ErrorReason() {
  unsigned long err = ERR_peek_error();
  if (err == 0) return "EPROTO";
  const char* reason = ERR_reason_error_string(err);
  std::string code = "ERR_SSL_";
  for (const char* p = reason != nullptr ? reason : "unknown"; *p != 0; p++)
    code.push_back(*p == ' ' ? '_' : char(toupper(static_cast<unsigned char>(*p))));
  char text[256];
  ERR_error_string_n(err, text, sizeof text);
  ERR_clear_error();
  return code + "\t" + text;
}

bool UseChain(SSL_CTX* ctx, const std::string& pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), int(pem.size()));
  if (bio == nullptr) return false;
  bool ok = false;
  X509* leaf = PEM_read_bio_X509_AUX(bio, nullptr, nullptr, nullptr);
  if (leaf != nullptr && SSL_CTX_use_certificate(ctx, leaf) == 1) {
    ok = true;
    // The rest of the file (SSLCertificateChainFile's certificates) is sent after it.
    while (X509* extra = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
      if (SSL_CTX_add0_chain_cert(ctx, extra) != 1) {
        X509_free(extra);
        ok = false;
        break;
      }
    }
    ERR_clear_error();  // the end of the file reads as an error
  }
  X509_free(leaf);
  BIO_free(bio);
  return ok;
}

bool UseKey(SSL_CTX* ctx, const std::string& pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), int(pem.size()));
  if (bio == nullptr) return false;
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
  bool ok = key != nullptr && SSL_CTX_use_PrivateKey(ctx, key) == 1 && SSL_CTX_check_private_key(ctx) == 1;
  EVP_PKEY_free(key);
  BIO_free(bio);
  return ok;
}

}  // namespace

// What one read of a TLS socket may take: four records of the most plaintext (16 KiB) with their
// header and AEAD tag.
constexpr size_t kReadAhead = 4 * (16384 + 256);

uint32_t TlsContextNew(const TlsContextOptions& o, std::string* error) {
  ERR_clear_error();
  std::unique_ptr<SSL_CTX, CtxFree> ctx(SSL_CTX_new(TLS_server_method()));
  if (ctx == nullptr) {
    *error = ErrorReason();
    return 0;
  }
  SSL_CTX* c = ctx.get();
  uint64_t options = SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF;
  if (o.honor_cipher_order) options |= SSL_OP_CIPHER_SERVER_PREFERENCE;
  if (o.no_tickets) options |= SSL_OP_NO_TICKET;
  SSL_CTX_set_options(c, options);
  // Partial writes with a buffer that moves: a tunnel keeps what the socket did not take in its
  // pending vector and retries from there. Idle sessions give their buffers back.
  SSL_CTX_set_mode(c, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
  // Resumption is by tickets only (docs/behaviour.md): no session-ID cache. OpenSSL's default one
  // keeps every session (and, in TLS 1.3, a copy per stateful ticket) for the session timeout:
  // memory and lookups per handshake for resumptions wsgate does not offer. Session IDs are still
  // given out, as Node's server does (its mode), and never found again.
  SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL | SSL_SESS_CACHE_NO_AUTO_CLEAR);
  static const unsigned char kSid[] = "wsgate";
  SSL_CTX_set_session_id_context(c, kSid, sizeof kSid - 1);
  // With tickets off TLS 1.3 would still send two stateful tickets, which nothing can resume
  // without that cache: none is sent (two records, two writes and their key derivations fewer).
  if (o.no_tickets) SSL_CTX_set_num_tickets(c, 0);
  SSL_CTX_set_timeout(c, o.session_timeout_s);
  // Whole records (several when they came together) in one read instead of a header read and a
  // body read each; the buffer goes back when empty (SSL_MODE_RELEASE_BUFFERS), and every reader
  // here reads until OpenSSL asks for the socket (WANT_READ), so nothing waits in it unseen.
  SSL_CTX_set_read_ahead(c, 1);
  // Room for four full records per read (a 16 KiB message is two: 16 KiB and its last bytes).
  SSL_CTX_set_default_read_buffer_len(c, kReadAhead);
  bool ok = SSL_CTX_set_min_proto_version(c, o.min_version) == 1 && SSL_CTX_set_max_proto_version(c, o.max_version) == 1 &&
            (o.cipher_list.empty() || SSL_CTX_set_cipher_list(c, o.cipher_list.c_str()) == 1) &&
            (o.cipher_suites.empty() || SSL_CTX_set_ciphersuites(c, o.cipher_suites.c_str()) == 1) &&
            (o.groups.empty() || SSL_CTX_set1_groups_list(c, o.groups.c_str()) == 1) &&
            (o.sigalgs.empty() || SSL_CTX_set1_sigalgs_list(c, o.sigalgs.c_str()) == 1) && UseChain(c, o.cert) && UseKey(c, o.key);
  if (!ok) {
    *error = ErrorReason();
    return 0;
  }
  SSL_CTX_set_alpn_select_cb(c, SelectAlpn, nullptr);
  uint32_t id = g_next_context++;
  g_contexts[id] = std::move(ctx);
  return id;
}

bool TlsContextFree(uint32_t id) {
  return g_contexts.erase(id) == 1;  // sessions hold their own reference
}

ssl_st* TlsSessionNew(uint32_t ctx_id, int fd, const std::string& alpn) {
  auto it = g_contexts.find(ctx_id);
  if (it == g_contexts.end()) return nullptr;
  SSL* ssl = SSL_new(it->second.get());
  if (ssl == nullptr) return nullptr;
  if (SSL_set_fd(ssl, fd) != 1) {
    SSL_free(ssl);
    return nullptr;
  }
  SSL_set_accept_state(ssl);
  auto* d = new SessionData{alpn};
  SSL_set_app_data(ssl, d);
  BIO* rbio = SSL_get_rbio(ssl);
  BIO_set_callback_arg(rbio, reinterpret_cast<char*>(d));
  BIO_set_callback_ex(rbio, WatchRead);
  g_sessions++;
  return ssl;
}

void TlsSessionFree(ssl_st* ssl) {
  delete static_cast<SessionData*>(SSL_get_app_data(ssl));
  SSL_free(ssl);
}

TlsStep TlsHandshake(ssl_st* ssl, std::string* reason) {
  ERR_clear_error();
  int r = SSL_do_handshake(ssl);
  if (r == 1) {
    g_handshakes++;
    return TlsStep::kDone;
  }
  int err = SSL_get_error(ssl, r);
  if (err == SSL_ERROR_WANT_READ) return TlsStep::kWantRead;
  if (err == SSL_ERROR_WANT_WRITE) return TlsStep::kWantWrite;
  if (err == SSL_ERROR_SYSCALL || err == SSL_ERROR_ZERO_RETURN) {
    // The client closed or reset its connection mid-handshake (Node's code for it).
    *reason = "ECONNRESET";
    ERR_clear_error();
  } else {
    *reason = ErrorReason();
  }
  return TlsStep::kFailed;
}

ssize_t TlsRead(ssl_st* ssl, char* buf, size_t cap, bool* drained) {
  size_t got = 0;
  *drained = false;
  const auto* d = static_cast<const SessionData*>(SSL_get_app_data(ssl));
  while (got < cap) {
    ERR_clear_error();
    size_t n = 0;
    int r = SSL_read_ex(ssl, buf + got, cap - got, &n);
    if (r == 1) {
      got += n;
      // Nothing left in OpenSSL's buffers and the socket emptied by its last read: done, without
      // the read that would only say EAGAIN (new bytes raise a new edge).
      if (d->short_read && SSL_has_pending(ssl) == 0) {
        *drained = true;
        break;
      }
      continue;
    }
    int err = SSL_get_error(ssl, r);
    if (err == SSL_ERROR_WANT_READ) {
      *drained = true;  // the socket said EAGAIN
      break;
    }
    if (err == SSL_ERROR_WANT_WRITE) break;  // (a key update's answer waits for room)
    if (got > 0) break;                      // the EOF or error is met again at the next read
    if (err == SSL_ERROR_ZERO_RETURN) return 0;
    if (err == SSL_ERROR_SYSCALL) {
      int e = errno;
      ERR_clear_error();
      if (e == 0) return 0;
      errno = e;
      return -1;
    }
    ERR_clear_error();
    errno = EPROTO;
    return -1;
  }
  if (got == 0) {
    errno = EAGAIN;
    return -1;
  }
  return ssize_t(got);
}

int TlsWrite(ssl_st* ssl, const char* data, size_t len, size_t* off) {
  while (*off < len) {
    ERR_clear_error();
    size_t n = 0;
    int r = SSL_write_ex(ssl, data + *off, len - *off, &n);
    if (r == 1) {
      *off += n;
      continue;
    }
    int err = SSL_get_error(ssl, r);
    if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) return 0;
    int e = err == SSL_ERROR_SYSCALL ? errno : EPROTO;
    ERR_clear_error();
    return e != 0 ? e : EPIPE;
  }
  return 0;
}

void TlsCloseNotify(ssl_st* ssl) {
  if ((SSL_get_shutdown(ssl) & SSL_SENT_SHUTDOWN) != 0 || !SSL_is_init_finished(ssl)) return;
  ERR_clear_error();
  SSL_shutdown(ssl);
  ERR_clear_error();
}

void TlsInfo(ssl_st* ssl, std::string* protocol, std::string* cipher, std::string* servername, std::string* alpn, bool* resumed) {
  *resumed = SSL_session_reused(ssl) == 1;
  *protocol = SSL_get_version(ssl);
  const SSL_CIPHER* c = SSL_get_current_cipher(ssl);
  *cipher = c != nullptr ? SSL_CIPHER_get_name(c) : "";
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  *servername = name != nullptr ? name : "";
  const unsigned char* a = nullptr;
  unsigned int alen = 0;
  SSL_get0_alpn_selected(ssl, &a, &alen);
  alpn->assign(reinterpret_cast<const char*>(a != nullptr ? a : reinterpret_cast<const unsigned char*>("")), alen);
}

uint64_t TlsBytesRead(ssl_st* ssl) {
  BIO* rbio = SSL_get_rbio(ssl);
  return rbio != nullptr ? BIO_number_read(rbio) : 0;
}

void TlsCounts(double* sessions, double* handshakes) {
  *sessions = g_sessions;
  *handshakes = g_handshakes;
}

}  // namespace wsgate
