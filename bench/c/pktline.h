/*
 * pkt-line framing for the C reference server and client of the benchmark
 * (docs/protocol.md#pkt-line-framing). Written for speed, blocking sockets:
 *
 *  - reading: a large receive buffer; when a packet's payload is not yet
 *    in the buffer, one readv() puts the rest of the payload straight into
 *    the message buffer and anything after it (the next headers) into the
 *    receive buffer, so big messages are copied once (kernel -> message).
 *  - writing: header/payload pairs gathered into one sendmsg() (iovecs, no
 *    copy), MSG_NOSIGNAL so a vanished peer gives EPIPE, never SIGPIPE.
 *
 * Reader rules: 0000 ends the message; 0001, 0002 and 0004 end it too (as
 * Git's reader does); 0003, a non-hex header or a length > 65520 is a
 * protocol error (EPROTO); EOF before the end packet is an error.
 */
#ifndef BENCH_PKTLINE_H
#define BENCH_PKTLINE_H

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>

#define PKT_MAX 65520u
#define PKT_MAX_PAYLOAD 65516u
#define PKT_RBUF_SIZE (256u * 1024u)

#ifndef IOV_MAX
#define IOV_MAX 1024
#endif

static inline uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Receive-side state kept across messages on one thread. */
typedef struct {
	unsigned char *buf;
	size_t pos, end, cap;
} pkt_reader;

/* A growable message buffer, reused from one message to the next. */
typedef struct {
	unsigned char *data;
	size_t len, cap;
} pkt_buf;

static inline int pkt_reader_init(pkt_reader *r)
{
	r->buf = malloc(PKT_RBUF_SIZE);
	r->pos = r->end = 0;
	r->cap = PKT_RBUF_SIZE;
	return r->buf ? 0 : -1;
}

static inline void pkt_reader_reset(pkt_reader *r)
{
	r->pos = r->end = 0;
}

/* Drop a message buffer's memory (for the fresh-buffer mode, -F). */
static inline void pkt_buf_release(pkt_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

static inline int pkt_buf_reserve(pkt_buf *b, size_t extra)
{
	size_t want = b->len + extra;
	if (want <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 4096;
	while (cap < want)
		cap *= 2;
	unsigned char *p = realloc(b->data, cap);
	if (!p)
		return -1;
	b->data = p;
	b->cap = cap;
	return 0;
}

static inline int pkt_hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * Read one whole message from fd into out (out->len = its length).
 * Returns 0 on success, -1 on error with errno set (EPROTO: protocol
 * error; ECONNRESET: EOF before the end packet; else the socket error,
 * EAGAIN on SO_RCVTIMEO expiry). Bytes after the end packet stay in r.
 */
static inline int pkt_read_message(int fd, pkt_reader *r, pkt_buf *out)
{
	out->len = 0;
	for (;;) {
		while (r->end - r->pos < 4) {
			if (r->pos) {
				memmove(r->buf, r->buf + r->pos, r->end - r->pos);
				r->end -= r->pos;
				r->pos = 0;
			}
			ssize_t n = recv(fd, r->buf + r->end, r->cap - r->end, 0);
			if (n < 0) {
				if (errno == EINTR)
					continue;
				return -1;
			}
			if (n == 0) {
				errno = ECONNRESET;
				return -1;
			}
			r->end += (size_t)n;
		}
		const unsigned char *h = r->buf + r->pos;
		int a = pkt_hexval(h[0]), b = pkt_hexval(h[1]);
		int c = pkt_hexval(h[2]), d = pkt_hexval(h[3]);
		if ((a | b | c | d) < 0) {
			errno = EPROTO;
			return -1;
		}
		size_t len = (size_t)((a << 12) | (b << 8) | (c << 4) | d);
		r->pos += 4;
		if (len <= 4) {
			if (len == 3) {
				errno = EPROTO;
				return -1;
			}
			return 0; /* 0000, 0001, 0002, 0004 */
		}
		if (len > PKT_MAX) {
			errno = EPROTO;
			return -1;
		}
		size_t need = len - 4;
		if (pkt_buf_reserve(out, need) < 0) {
			errno = ENOMEM;
			return -1;
		}
		size_t avail = r->end - r->pos;
		size_t take = avail < need ? avail : need;
		memcpy(out->data + out->len, r->buf + r->pos, take);
		out->len += take;
		r->pos += take;
		need -= take;
		if (need == 0)
			continue;
		/* Receive buffer is empty: payload straight into out, the rest
		 * (following headers and packets) into the receive buffer. */
		r->pos = r->end = 0;
		while (need) {
			struct iovec iov[2] = {
				{ out->data + out->len, need },
				{ r->buf, r->cap },
			};
			ssize_t n = readv(fd, iov, 2);
			if (n < 0) {
				if (errno == EINTR)
					continue;
				return -1;
			}
			if (n == 0) {
				errno = ECONNRESET;
				return -1;
			}
			if ((size_t)n <= need) {
				out->len += (size_t)n;
				need -= (size_t)n;
			} else {
				out->len += need;
				r->end = (size_t)n - need;
				need = 0;
			}
		}
	}
}

/* sendmsg() the whole iovec array, MSG_NOSIGNAL, coping with partial writes.
 * Modifies iov. Returns 0 or -1 with errno. */
static inline int pkt_send_iov(int fd, struct iovec *iov, int cnt)
{
	while (cnt > 0) {
		struct msghdr mh;
		memset(&mh, 0, sizeof mh);
		mh.msg_iov = iov;
		mh.msg_iovlen = (size_t)(cnt > IOV_MAX ? IOV_MAX : cnt);
		ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		size_t left = (size_t)n;
		while (cnt > 0 && left >= iov->iov_len) {
			left -= iov->iov_len;
			iov++;
			cnt--;
		}
		if (cnt > 0) {
			iov->iov_base = (char *)iov->iov_base + left;
			iov->iov_len -= left;
		}
	}
	return 0;
}

static inline void pkt_header(char h[4], size_t len)
{
	static const char hex[] = "0123456789abcdef";
	h[0] = hex[(len >> 12) & 15];
	h[1] = hex[(len >> 8) & 15];
	h[2] = hex[(len >> 4) & 15];
	h[3] = hex[len & 15];
}

/*
 * Write data as data packets (at most 65516 payload bytes each, never an
 * empty one), followed by the flush packet if flush is set. Up to 511
 * packets go out per sendmsg().
 */
static inline int pkt_send(int fd, const void *data, size_t len, int flush)
{
	enum { BATCH = 511 };
	static const char flush_pkt[4] = { '0', '0', '0', '0' };
	char hdrs[BATCH][4];
	struct iovec iov[2 * BATCH + 1];
	const char *p = data;
	size_t off = 0;
	do {
		int k = 0;
		for (int i = 0; i < BATCH && off < len; i++) {
			size_t pl = len - off < PKT_MAX_PAYLOAD ? len - off : PKT_MAX_PAYLOAD;
			pkt_header(hdrs[i], pl + 4);
			iov[k].iov_base = hdrs[i];
			iov[k++].iov_len = 4;
			iov[k].iov_base = (void *)(p + off);
			iov[k++].iov_len = pl;
			off += pl;
		}
		if (off >= len && flush) {
			iov[k].iov_base = (void *)flush_pkt;
			iov[k++].iov_len = 4;
		}
		if (k && pkt_send_iov(fd, iov, k) < 0)
			return -1;
	} while (off < len);
	return 0;
}

#endif
