/* The gzipped IDX files of the Debian package dataset-fashion-mnist, read from plain C with
   zlib: what examples/aot_classify.c and examples/aot_train.c feed their libraries. */
#ifndef KILN_EXAMPLES_FASHION_IDX_H
#define KILN_EXAMPLES_FASHION_IDX_H

#include <stdio.h>
#include <stdlib.h>

#include <zlib.h>

/* The `count` payload bytes of DIR/FILE after its `header_bytes` header (16 for images, 8 for
   labels), malloc'ed; NULL with a message on stderr when the file is missing or short. */
static unsigned char* read_idx(const char* dir, const char* file, int header_bytes, long count) {
  char path[4096];
  unsigned char header[16];
  unsigned char* data;
  gzFile in;
  snprintf(path, sizeof path, "%s/%s", dir, file);
  in = gzopen(path, "rb");
  if (in == NULL) {
    fprintf(stderr, "cannot open %s\n", path);
    return NULL;
  }
  data = malloc((size_t)count);
  if (data == NULL || gzread(in, header, (unsigned)header_bytes) != header_bytes ||
      gzread(in, data, (unsigned)count) != (int)count) {
    fprintf(stderr, "%s is shorter than expected\n", path);
    free(data);
    gzclose(in);
    return NULL;
  }
  gzclose(in);
  return data;
}

#endif
