/*
 * fork_early.c - libforkearly.so: registers fork_handlers.c's allocating handlers from its
 * constructor, before vtmalloc registers its own (test_fork.c loads it so that its constructor
 * runs first). Those handlers then run inside vtmalloc's: the prepare handler after vtmalloc
 * has taken its locks, the parent and child handlers before it releases them.
 */
#include <stdlib.h>

void fork_handlers_register(int phases);

__attribute__((constructor)) static void register_early(void)
{
    const char *phases = getenv("PHASES");
    if (getenv("FORK_EARLY") != NULL)
        fork_handlers_register(phases ? atoi(phases) : 7);
}
