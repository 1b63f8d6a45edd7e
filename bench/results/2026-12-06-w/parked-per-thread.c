#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
static pthread_barrier_t bar;
static void *w(void *a) { (void)a; void *b[16]; for (int i = 0; i < 16; i++) memset(b[i] = malloc(1000), 4, 1000);
  pthread_barrier_wait(&bar); pthread_barrier_wait(&bar); for (int i = 0; i < 16; i++) free(b[i]); return NULL; }
int main(void) {
  int n = atoi(getenv("N")); pthread_t *th = calloc(n, sizeof *th); pthread_attr_t at; pthread_attr_init(&at); pthread_attr_setstacksize(&at, 64 << 10);
  pthread_barrier_init(&bar, NULL, n + 1);
  for (int i = 0; i < n; i++) pthread_create(&th[i], &at, w, NULL);
  pthread_barrier_wait(&bar);
  FILE *f = fopen("/proc/self/status", "r"); char line[256]; while (fgets(line, sizeof line, f)) if (!strncmp(line, "VmRSS", 5)) printf("%d %s", n, line);
  pthread_barrier_wait(&bar);
  for (int i = 0; i < n; i++) pthread_join(th[i], NULL);
  return 0;
}
