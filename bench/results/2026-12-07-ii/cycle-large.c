#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
int main(int argc,char**argv){ int N=atoi(argv[1]); static char*h[1000]; size_t sz=(size_t)2<<20;
 for(int i=0;i<N;i++){h[i]=malloc(sz); memset(h[i],1,sz);} double t0=now();
 for(int r=0;r<200;r++){ for(int i=0;i<N;i++) free(h[i]); for(int i=0;i<N;i++){h[i]=malloc(sz); memset(h[i],1,sz);} }
 printf("N=%d %.2f ms/cycle\n",N,(now()-t0)*1e3/200);}
