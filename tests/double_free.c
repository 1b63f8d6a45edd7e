/* A program with a double free, run with vtmalloc preloaded by preload-programs.sh. */
#include <stdio.h>
#include <stdlib.h>

int main(void)
{
    char *volatile p = malloc(64);
    free(p);
    free(p);
    puts("survived");
    return 0;
}
