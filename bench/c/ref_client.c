/*
 * ref_client: the C reference client of the simple-ipc benchmark.
 *
 * Runs requests at a given concurrency (one thread per concurrent client),
 * each on a new connection: connect, send the request as pkt-lines + flush
 * (one sendmsg), read the response up to its flush into a contiguous
 * buffer (as a library would hand it to its caller), close. Prints one
 * JSON object on stdout.
 *
 * usage: ref_client -p PATH [options]
 *   -n N       timed requests (default 1000; with -d, ignored)
 *   -c C       concurrency: client threads (default 1)
 *   -w W       warm-up requests before timing (default 0)
 *   -d SECS    time-bounded: run for SECS seconds instead of N requests
 *   -T MS      per-call timeout (SO_RCVTIMEO/SO_SNDTIMEO); 0 = none
 *   -s MIN:MAX request sizes drawn from MIN..MAX bytes (default 64:2048)
 *   -r STRING  send this exact request instead (e.g. big50, chunks)
 *   -B BYTES   send a request of BYTES bytes (bulk upload)
 *   -e BYTES   expected response length; any other length is an error
 *   -F         fresh response buffer for every request (freed after it)
 *              instead of reusing one per thread: shows the cost of
 *              first-touch page faults that a new Buffer per message pays
 *
 * Request sizes come from a xorshift32 sequence seeded with 12345, the
 * same as the Node clients of the harness, so every client sends the same
 * bytes: request i has size MIN + x_i % (MAX - MIN + 1).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "pktline.h"

static struct sockaddr_un addr;
static long n_requests = 1000, warmup;
static int concurrency = 1, timeout_ms;
static double duration_s;
static size_t min_size = 64, max_size = 2048;
static const char *fixed_req;
static size_t bulk_size;
static long expect_len = -1;
static int fresh_buffers;

static unsigned char *payload; /* max request bytes */
static size_t *sizes;          /* per request index, small-request mode */
static long sizes_n;

static atomic_long next_index;
static long phase_total;  /* requests in this phase (count mode) */
static uint64_t deadline; /* time-bounded mode, 0 = off */
static int recording;

static pthread_mutex_t err_lock = PTHREAD_MUTEX_INITIALIZER;
static char first_error[160];

typedef struct {
	double *lat; /* ms */
	long n, cap;
	long ok, errors, timeouts;
	uint64_t bytes_out, bytes_in;
	/* Kept across phases so warm-up really warms the buffers. */
	pkt_reader r;
	pkt_buf resp;
} thread_stats;

static void note_error(const char *what, int err)
{
	pthread_mutex_lock(&err_lock);
	if (!first_error[0])
		snprintf(first_error, sizeof first_error, "%s: %s", what, strerror(err));
	pthread_mutex_unlock(&err_lock);
}

static size_t request_size(long i)
{
	if (fixed_req)
		return strlen(fixed_req);
	if (bulk_size)
		return bulk_size;
	return sizes[i % sizes_n];
}

/* One request on a new connection. Returns 0, or -1 with errno set. */
static int one_request(long i, pkt_reader *r, pkt_buf *resp, thread_stats *st)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (timeout_ms > 0) {
		struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	}
	if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		note_error("connect", e);
		return -1;
	}
	const void *req = fixed_req ? (const void *)fixed_req : (const void *)payload;
	size_t len = request_size(i);
	if (pkt_send(fd, req, len, 1) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		note_error("send", e);
		return -1;
	}
	pkt_reader_reset(r);
	if (pkt_read_message(fd, r, resp) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		note_error("receive", e);
		return -1;
	}
	close(fd);
	if (expect_len >= 0 && (long)resp->len != expect_len) {
		char msg[80];
		snprintf(msg, sizeof msg, "response length %zu, expected %ld", resp->len, expect_len);
		pthread_mutex_lock(&err_lock);
		if (!first_error[0])
			snprintf(first_error, sizeof first_error, "%s", msg);
		pthread_mutex_unlock(&err_lock);
		errno = EBADMSG;
		return -1;
	}
	if (recording) {
		st->bytes_out += len;
		st->bytes_in += resp->len;
	}
	return 0;
}

static void *client_thread(void *arg)
{
	thread_stats *st = arg;
	if (!st->r.buf && pkt_reader_init(&st->r) < 0) {
		perror("malloc");
		exit(1);
	}
	for (;;) {
		long i;
		if (deadline) {
			if (now_ns() >= deadline)
				break;
			i = atomic_fetch_add(&next_index, 1);
		} else {
			i = atomic_fetch_add(&next_index, 1);
			if (i >= phase_total)
				break;
		}
		uint64_t t0 = now_ns();
		int rc = one_request(i, &st->r, &st->resp, st);
		if (fresh_buffers)
			pkt_buf_release(&st->resp);
		uint64_t t1 = now_ns();
		if (!recording)
			continue;
		if (rc == 0) {
			st->ok++;
			if (st->n == st->cap) {
				st->cap = st->cap ? st->cap * 2 : 1024;
				st->lat = realloc(st->lat, (size_t)st->cap * sizeof *st->lat);
			}
			st->lat[st->n++] = (double)(t1 - t0) / 1e6;
		} else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ETIMEDOUT) {
			st->timeouts++;
		} else {
			st->errors++;
		}
		if (rc != 0 && deadline)
			usleep(10000); /* do not spin on a server that refuses */
	}
	return NULL;
}

/* Run one phase with `concurrency` threads; returns elapsed seconds. */
static double run_phase(thread_stats *stats, long total, double secs)
{
	pthread_t *t = calloc((size_t)concurrency, sizeof *t);
	atomic_store(&next_index, 0);
	phase_total = total;
	uint64_t t0 = now_ns();
	deadline = secs > 0 ? t0 + (uint64_t)(secs * 1e9) : 0;
	for (int k = 0; k < concurrency; k++) {
		pthread_attr_t at;
		pthread_attr_init(&at);
		pthread_attr_setstacksize(&at, 256 * 1024);
		if (pthread_create(&t[k], &at, client_thread, &stats[k]) != 0) {
			perror("pthread_create");
			exit(1);
		}
		pthread_attr_destroy(&at);
	}
	for (int k = 0; k < concurrency; k++)
		pthread_join(t[k], NULL);
	free(t);
	return (double)(now_ns() - t0) / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array. */
static double pct(const double *v, long n, double p)
{
	if (n == 0)
		return -1;
	long k = (long)((p * (double)n) + 0.999999999) - 1;
	if (k < 0)
		k = 0;
	if (k >= n)
		k = n - 1;
	return v[k];
}

static void usage(void)
{
	fprintf(stderr, "usage: ref_client -p PATH [-n N] [-c C] [-w W] [-d SECS] [-T MS] "
			"[-s MIN:MAX] [-r STRING] [-B BYTES] [-e BYTES] [-F]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *path = NULL;
	int opt;
	while ((opt = getopt(argc, argv, "p:n:c:w:d:T:s:r:B:e:F")) != -1) {
		switch (opt) {
		case 'p': path = optarg; break;
		case 'n': n_requests = atol(optarg); break;
		case 'c': concurrency = atoi(optarg); break;
		case 'w': warmup = atol(optarg); break;
		case 'd': duration_s = atof(optarg); break;
		case 'T': timeout_ms = atoi(optarg); break;
		case 's':
			if (sscanf(optarg, "%zu:%zu", &min_size, &max_size) != 2 || min_size > max_size)
				usage();
			break;
		case 'r': fixed_req = optarg; break;
		case 'B': bulk_size = (size_t)atoll(optarg); break;
		case 'e': expect_len = atol(optarg); break;
		case 'F': fresh_buffers = 1; break;
		default: usage();
		}
	}
	if (!path || concurrency < 1)
		usage();
	signal(SIGPIPE, SIG_IGN);
	memset(&addr, 0, sizeof addr);
	addr.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof addr.sun_path) {
		fprintf(stderr, "ref_client: path too long\n");
		return 2;
	}
	strcpy(addr.sun_path, path);

	/* Request bytes, built before timing. */
	size_t maxlen = bulk_size ? bulk_size : max_size;
	payload = malloc(maxlen ? maxlen : 1);
	for (size_t i = 0; i < maxlen; i++)
		payload[i] = (unsigned char)('a' + i % 26);
	sizes_n = 65536;
	sizes = malloc((size_t)sizes_n * sizeof *sizes);
	uint32_t x = 12345;
	for (long i = 0; i < sizes_n; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		sizes[i] = min_size + x % (uint32_t)(max_size - min_size + 1);
	}

	thread_stats *stats = calloc((size_t)concurrency, sizeof *stats);
	if (warmup > 0) {
		recording = 0;
		run_phase(stats, warmup, 0);
	}
	recording = 1;
	double secs = run_phase(stats, n_requests, duration_s);

	long total = 0, ok = 0, errors = 0, timeouts = 0;
	uint64_t bin = 0, bout = 0;
	for (int k = 0; k < concurrency; k++)
		total += stats[k].n;
	double *all = malloc((size_t)(total ? total : 1) * sizeof *all);
	long m = 0;
	for (int k = 0; k < concurrency; k++) {
		memcpy(all + m, stats[k].lat, (size_t)stats[k].n * sizeof *all);
		m += stats[k].n;
		ok += stats[k].ok;
		errors += stats[k].errors;
		timeouts += stats[k].timeouts;
		bin += stats[k].bytes_in;
		bout += stats[k].bytes_out;
	}
	qsort(all, (size_t)m, sizeof *all, cmp_double);
	double sum = 0;
	for (long i = 0; i < m; i++)
		sum += all[i];

	printf("{\"impl\":\"c\",\"requests\":%ld,\"ok\":%ld,\"errors\":%ld,\"timeouts\":%ld,"
	       "\"seconds\":%.6f,\"rps\":%.1f,\"p50_ms\":%.4f,\"p99_ms\":%.4f,\"mean_ms\":%.4f,"
	       "\"max_ms\":%.4f,\"bytes_out\":%llu,\"bytes_in\":%llu,\"mbps\":%.1f,\"first_error\":",
	       ok + errors + timeouts, ok, errors, timeouts, secs, secs > 0 ? ok / secs : 0,
	       pct(all, m, 0.50), pct(all, m, 0.99), m ? sum / m : -1, m ? all[m - 1] : -1,
	       (unsigned long long)bout, (unsigned long long)bin,
	       secs > 0 ? (double)(bin + bout) / secs / 1e6 : 0);
	if (first_error[0])
		printf("\"%s\"}\n", first_error); /* strerror text: no quotes or backslashes */
	else
		printf("null}\n");
	return 0;
}
