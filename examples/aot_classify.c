/* Classifies the Fashion-MNIST test set with a model compiled ahead of time, in plain C: no
   Kiln, no C++, only the library `kiln aot` wrote, its header and zlib (to read the dataset).

     build/tools/kiln aot fashion_mnist_out/mlp_model -o out/libfashion.so
     cc -O2 examples/aot_classify.c -Iout -Lout -lfashion -lz -Wl,-rpath,'$ORIGIN' -o out/classify
     out/classify /usr/share/datasets/fashion-mnist

   The model takes f32 images scaled to [0, 1] in batches of FASHION_INPUT0_SHAPE[0] and returns
   one score per class; the program prints the test accuracy and the time per image. */
#define _POSIX_C_SOURCE 199309L /* clock_gettime */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fashion.h"
#include "fashion_idx.h"

#if FASHION_NUM_INPUTS != 1 || FASHION_NUM_OUTPUTS != 1 || FASHION_INPUT0_RANK != 3 || \
    FASHION_OUTPUT0_RANK != 2
#error "aot_classify wants a model from f32[batch, 28, 28] images to f32[batch, classes] scores"
#endif

static const int64_t kInputShape[] = FASHION_INPUT0_SHAPE;
static const int64_t kOutputShape[] = FASHION_OUTPUT0_SHAPE;

int main(int argc, char** argv) {
  const long n = 10000, pixels = 28 * 28;
  const int64_t batch = kInputShape[0], classes = kOutputShape[1];
  unsigned char *images, *labels;
  float *x, *scores;
  fashion_model* model;
  long correct = 0, done = 0, i;
  int64_t b, c;
  struct timespec start, end;
  double seconds;

  if (argc != 2) {
    fprintf(stderr, "usage: %s FASHION_MNIST_DIR\n", argv[0]);
    return 2;
  }
  images = read_idx(argv[1], "t10k-images-idx3-ubyte.gz", 16, n * pixels);
  labels = read_idx(argv[1], "t10k-labels-idx1-ubyte.gz", 8, n);
  if (images == NULL || labels == NULL) return 1;

  model = fashion_create();
  if (model == NULL) {
    fprintf(stderr, "fashion_create: %s\n", fashion_last_error(NULL));
    return 1;
  }
  x = malloc(sizeof(float) * FASHION_INPUT0_SIZE);
  scores = malloc(sizeof(float) * FASHION_OUTPUT0_SIZE);
  if (x == NULL || scores == NULL) return 1;

  clock_gettime(CLOCK_MONOTONIC, &start);
  for (; done + batch <= n; done += batch) {
    for (i = 0; i < batch * pixels; ++i) x[i] = (float)images[done * pixels + i] / 255.f;
    if (fashion_run(model, x, scores) != 0) {
      fprintf(stderr, "fashion_run: %s\n", fashion_last_error(model));
      return 1;
    }
    for (b = 0; b < batch; ++b) {
      int64_t best = 0;
      for (c = 1; c < classes; ++c)
        if (scores[b * classes + c] > scores[b * classes + best]) best = c;
      correct += best == labels[done + b];
    }
  }
  clock_gettime(CLOCK_MONOTONIC, &end);
  seconds = (double)(end.tv_sec - start.tv_sec) + 1e-9 * (double)(end.tv_nsec - start.tv_nsec);

  printf("test accuracy %.4f (%ld of %ld images), %.1f us per image\n",
         (double)correct / (double)done, correct, done, 1e6 * seconds / (double)done);
  fashion_destroy(model);
  free(x);
  free(scores);
  free(images);
  free(labels);
  return 0;
}
