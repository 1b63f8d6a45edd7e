/* One block of argv[1] bytes, allocated, touched and freed a million times; then the resident
 * size of every mapping of the process (from /proc/self/smaps), KiB, one line each.
 * gcc -O2 -o smaps-loop smaps-loop.c && LD_PRELOAD=... ./smaps-loop 40960 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    size_t size = argc > 1 ? strtoul(argv[1], NULL, 0) : 40960;
    for (int i = 0; i < 1000000; i++) {
        volatile char *p = malloc(size);
        p[0] = 1;
        free((void *)p);
    }
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[512], mapping[512] = "";
    unsigned long lo, hi;
    int kb;
    while (f != NULL && fgets(line, sizeof line, f) != NULL) {
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2)
            strcpy(mapping, line); /* a mapping's first line: its range, modes and file */
        else if (sscanf(line, "Rss: %d kB", &kb) == 1 && kb > 0)
            printf("%6d %s", kb, mapping);
    }
    return 0;
}
