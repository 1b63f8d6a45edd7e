/* fixture.h - the declarations of the clean fixture's files. */
extern __thread int base_depth;
extern const int base_table[4];
int base_value(int x);
int mid_value(int x);
int peer_value(int x);
