#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <fcntl.h>
#include <unistd.h>
int main(void){
  for (int i=0;i<100000;i++){ char*p=malloc(40960); p[0]=1; free(p);}
  FILE*f=fopen("/proc/self/maps","r"); char line[512]; int pm=open("/proc/self/pagemap",O_RDONLY);
  while(fgets(line,sizeof line,f)){
    if(!strstr(line,"libc.so.6")) continue;
    unsigned long a,b,off; char perm[8]; sscanf(line,"%lx-%lx %7s %lx",&a,&b,perm,&off);
    printf("%s off=%lx:", perm, off);
    for(unsigned long x=a;x<b;x+=4096){ uint64_t e; pread(pm,&e,8,(x/4096)*8); if(e>>63) printf(" %lx",(x-a+off)/4096);} printf("\n"); }
  return 0; }
