// Round-trip time of a wake-up between two threads: one thread sets a
// futex word and wakes the other, which sets it back and wakes the first,
// 20,000 times. On a VM whose idle vCPUs halt, a wake-up of a sleeping
// thread on the other vCPU costs an inter-processor interrupt through the
// hypervisor; pinned to one vCPU, or with the waiter spinning first, it
// does not. docs/benchmarks.md ("Committer wake-ups deferred ...") cites it.
//
//   gcc -O2 -pthread scripts/dev/futex_pingpong.c -o /tmp/futex_pingpong
//   /tmp/futex_pingpong            # both threads sleep in FUTEX_WAIT
//   taskset -c 0 /tmp/futex_pingpong
//   /tmp/futex_pingpong 1000       # the second thread spins 1000 pauses first
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static atomic_int turn = 0;
static const int rounds = 20000;
static int spin = 0;

static void futex_wait(atomic_int *word, int value) {
  syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, value, NULL, NULL, 0);
}

static void futex_wake(atomic_int *word) {
  syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void *other(void *arg) {
  (void)arg;
  for (int i = 0; i < rounds; i++) {
    for (int s = 0; s < spin && atomic_load(&turn) == 0; s++) {
      __builtin_ia32_pause();
    }
    while (atomic_load(&turn) == 0) {
      futex_wait(&turn, 0);
    }
    atomic_store(&turn, 0);
    futex_wake(&turn);
  }
  return NULL;
}

int main(int argc, char **argv) {
  if (argc > 1) {
    spin = atoi(argv[1]);
  }
  pthread_t thread;
  pthread_create(&thread, NULL, other, NULL);
  struct timespec start, end;
  clock_gettime(CLOCK_MONOTONIC, &start);
  for (int i = 0; i < rounds; i++) {
    atomic_store(&turn, 1);
    futex_wake(&turn);
    while (atomic_load(&turn) == 1) {
      futex_wait(&turn, 1);
    }
  }
  clock_gettime(CLOCK_MONOTONIC, &end);
  pthread_join(thread, NULL);
  double ns = (end.tv_sec - start.tv_sec) * 1e9 + (end.tv_nsec - start.tv_nsec);
  printf("round trip %.1f us\n", ns / 1e3 / rounds);
  return 0;
}
