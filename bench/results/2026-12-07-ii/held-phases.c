#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
int main(){ static void*h[3000]; double t0=now();
 for(int i=0;i<3000;i++){h[i]=malloc(1<<20);((char*)h[i])[0]=1;}
 double t1=now(); for(int i=0;i<100000;i++){char*p=malloc(512<<10);p[0]=1;free(p);}
 double t2=now(); for(int i=0;i<3000;i++)free(h[i]); double t3=now();
 printf("alloc %.1f loop %.1f free %.1f ms\n",(t1-t0)*1e3,(t2-t1)*1e3,(t3-t2)*1e3);}
