/*
 * ref_server: the C reference server of the simple-ipc benchmark.
 *
 * The shape of the protocol's server (docs/protocol.md#the-server) done
 * plainly and fast: an accept thread (main), a FIFO of accepted
 * connections, N worker threads doing blocking I/O. A worker reads the
 * whole request (pkt-line), answers, writes the flush and closes.
 *
 * Threads: main thread = accept loop only; workers touch the queue under
 * q_lock, the buffer pool under pool_lock (never both at once) and their
 * own connection. The reply data is built before any thread starts and
 * only read afterwards.
 *
 * usage: ref_server -p PATH [-t THREADS] [-m app|pong] [-q QUEUE] [-b BACKLOG] [-F]
 *   -t  worker threads (default 4)
 *   -m  app  (default): request "big50" -> 50,000,000-byte reply in one
 *            chunk; "chunks" -> 10000 chunks of 81 bytes (the test app's
 *            "big: <75 digits>\n" lines), each written as it is produced
 *            ("chunksq" is the same: the Node servers' variant);
 *            anything else -> "pong"
 *       pong: "pong" to every request
 *   -q  FIFO capacity (default 100 x threads, as Git); a connection that
 *       finds it full is closed at once
 *   -b  listen backlog (default 1024; the kernel caps it at somaxconn)
 *   -F  fresh request buffer for every request (freed after it) instead of
 *       reusing buffers: shows what first-touch page faults cost, which a
 *       library that returns a new Buffer per message pays
 * Prints "ready" on stdout once listening; SIGTERM/SIGINT stop it and
 * remove the socket file.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "pktline.h"

#define BIG_REPLY_SIZE 50000000u
#define CHUNK_COUNT 10000
#define CHUNK_SIZE 81

static int mode_pong;
static int fresh_buffers;
static unsigned char *big_reply;
static char *chunk_data; /* CHUNK_COUNT x CHUNK_SIZE */

static pthread_mutex_t q_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t q_cond = PTHREAD_COND_INITIALIZER;
static int *q_fds;
static size_t q_cap, q_head, q_count;

static int stop_pipe[2];

/* Request buffers, shared by the workers as a LIFO pool (under pool_lock):
 * the buffer that just held a big request is the next one handed out, so
 * a big buffer is grown once, not once per worker. */
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static pkt_buf *pool;
static int pool_n;

static pkt_buf pool_get(void)
{
	pthread_mutex_lock(&pool_lock);
	pkt_buf b = pool[--pool_n];
	pthread_mutex_unlock(&pool_lock);
	return b;
}

static void pool_put(pkt_buf b)
{
	pthread_mutex_lock(&pool_lock);
	pool[pool_n++] = b;
	pthread_mutex_unlock(&pool_lock);
}

static void on_signal(int sig)
{
	(void)sig;
	int saved = errno;
	ssize_t r = write(stop_pipe[1], "x", 1);
	(void)r;
	errno = saved;
}

/* Reply data is built on first use (pthread_once), so a server that never
 * sends it does not carry it in its resident size. */
static pthread_once_t big_once = PTHREAD_ONCE_INIT, chunks_once = PTHREAD_ONCE_INIT;

static void build_big(void)
{
	big_reply = malloc(BIG_REPLY_SIZE);
	if (!big_reply) {
		perror("malloc");
		exit(1);
	}
	for (size_t i = 0; i < BIG_REPLY_SIZE; i++)
		big_reply[i] = (unsigned char)('a' + i % 26);
}

static void build_chunks(void)
{
	chunk_data = malloc((size_t)CHUNK_COUNT * CHUNK_SIZE + 1);
	if (!chunk_data) {
		perror("malloc");
		exit(1);
	}
	for (int i = 0; i < CHUNK_COUNT; i++)
		snprintf(chunk_data + (size_t)i * CHUNK_SIZE, CHUNK_SIZE + 1, "big: %075d\n", i);
}

static void respond(int fd, const pkt_buf *req)
{
	if (!mode_pong && req->len == 5 && memcmp(req->data, "big50", 5) == 0) {
		pthread_once(&big_once, build_big);
		pkt_send(fd, big_reply, BIG_REPLY_SIZE, 1);
	} else if (!mode_pong && ((req->len == 6 && memcmp(req->data, "chunks", 6) == 0) ||
				  (req->len == 7 && memcmp(req->data, "chunksq", 7) == 0))) {
		pthread_once(&chunks_once, build_chunks);
		/* A streamed reply: every chunk is sent when it is produced
		 * (one sendmsg each); the last one carries the flush. */
		for (int i = 0; i < CHUNK_COUNT; i++)
			if (pkt_send(fd, chunk_data + (size_t)i * CHUNK_SIZE, CHUNK_SIZE,
				     i == CHUNK_COUNT - 1) < 0)
				return;
	} else {
		static const char pong[] = "0008pong0000";
		struct iovec iov = { (void *)pong, 12 };
		pkt_send_iov(fd, &iov, 1);
	}
}

static void *worker(void *arg)
{
	(void)arg;
	pkt_reader r;
	if (pkt_reader_init(&r) < 0) {
		perror("malloc");
		exit(1);
	}
	for (;;) {
		pthread_mutex_lock(&q_lock);
		while (q_count == 0)
			pthread_cond_wait(&q_cond, &q_lock);
		int fd = q_fds[q_head];
		q_head = (q_head + 1) % q_cap;
		q_count--;
		pthread_mutex_unlock(&q_lock);

		pkt_reader_reset(&r);
		pkt_buf req = pool_get();
		if (pkt_read_message(fd, &r, &req) == 0)
			respond(fd, &req);
		/* read or protocol error: close without a response */
		close(fd);
		if (fresh_buffers)
			pkt_buf_release(&req);
		pool_put(req);
	}
	return NULL;
}

static void enqueue(int fd)
{
	pthread_mutex_lock(&q_lock);
	if (q_count == q_cap) {
		pthread_mutex_unlock(&q_lock);
		close(fd); /* queue full: drop, as the protocol's server does */
		return;
	}
	q_fds[(q_head + q_count) % q_cap] = fd;
	q_count++;
	pthread_cond_signal(&q_cond);
	pthread_mutex_unlock(&q_lock);
}

static void usage(void)
{
	fprintf(stderr, "usage: ref_server -p PATH [-t THREADS] [-m app|pong] [-q QUEUE] [-b BACKLOG] [-F]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *path = NULL;
	int threads = 4, backlog = 1024;
	long qcap = -1;
	int opt;
	while ((opt = getopt(argc, argv, "p:t:m:q:b:F")) != -1) {
		switch (opt) {
		case 'p': path = optarg; break;
		case 't': threads = atoi(optarg); break;
		case 'm':
			if (strcmp(optarg, "pong") == 0)
				mode_pong = 1;
			else if (strcmp(optarg, "app") != 0)
				usage();
			break;
		case 'q': qcap = atol(optarg); break;
		case 'b': backlog = atoi(optarg); break;
		case 'F': fresh_buffers = 1; break;
		default: usage();
		}
	}
	if (!path || threads < 1)
		usage();
	q_cap = qcap > 0 ? (size_t)qcap : (size_t)threads * 100;
	q_fds = malloc(q_cap * sizeof *q_fds);
	pool = calloc((size_t)threads, sizeof *pool); /* all empty buffers */
	pool_n = threads;

	/* Many idle clients at once (the slow-client scenario): lift the
	 * soft descriptor limit to the hard one. */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}

	if (!q_fds || !pool) {
		perror("malloc");
		return 1;
	}

	signal(SIGPIPE, SIG_IGN); /* belt and braces; sends use MSG_NOSIGNAL */
	if (pipe2(stop_pipe, O_CLOEXEC) < 0) {
		perror("pipe2");
		return 1;
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	struct sockaddr_un addr;
	memset(&addr, 0, sizeof addr);
	addr.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof addr.sun_path) {
		fprintf(stderr, "ref_server: path too long: %s\n", path);
		return 1;
	}
	strcpy(addr.sun_path, path);
	struct stat st;
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(path); /* stale socket */
	int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0 ||
	    listen(lfd, backlog) < 0) {
		perror("ref_server: listen");
		return 1;
	}

	/* Workers block SIGTERM/SIGINT so the handler runs on this thread. */
	sigset_t block, old;
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	for (int i = 0; i < threads; i++) {
		pthread_t t;
		pthread_attr_t at;
		pthread_attr_init(&at);
		pthread_attr_setstacksize(&at, 256 * 1024);
		if (pthread_create(&t, &at, worker, NULL) != 0) {
			perror("pthread_create");
			return 1;
		}
		pthread_attr_destroy(&at);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);

	printf("ready\n");
	fflush(stdout);

	struct pollfd pfd[2] = { { lfd, POLLIN, 0 }, { stop_pipe[0], POLLIN, 0 } };
	for (;;) {
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			perror("poll");
			break;
		}
		if (pfd[1].revents)
			break;
		if (pfd[0].revents) {
			/* Drain the backlog: accept until it would block. */
			for (;;) {
				/* The listening socket is non-blocking; accepted
				 * sockets are blocking (Linux does not inherit
				 * O_NONBLOCK through accept). */
				int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
				if (fd < 0) {
					if (errno == EINTR || errno == ECONNABORTED)
						continue;
					if (errno == EMFILE || errno == ENFILE)
						usleep(1000);
					break;
				}
				enqueue(fd);
			}
		}
	}
	/* Stop: the socket file goes; workers die with the process (a worker
	 * may be parked on a silent client, which is this design's flaw). */
	close(lfd);
	unlink(path);
	return 0;
}
