/* Trains the main job's MLP on Fashion-MNIST from plain C: no Kiln, no C++, only the library
   examples/aot_train_step.cpp compiled (its model instance holds the weights and RMSprop's
   state and updates them on every run), its header and zlib (to read the dataset).

     build/examples/aot_train_step out
     cc -O2 examples/aot_train.c -Iout -Lout -lmnist_train -lz -Wl,-rpath,'$ORIGIN' -o out/train
     out/train /usr/share/datasets/fashion-mnist 3 out/trained.safetensors

   Each epoch runs over the 60 000 training images in order, one batch of
   MNIST_TRAIN_INPUT0_SHAPE[0] per call, and prints the mean loss and the accuracy of the
   predictions made while training; the weights (and the optimizer's state) are saved at the
   end. */
#define _POSIX_C_SOURCE 199309L /* clock_gettime */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "fashion_idx.h"
#include "mnist_train.h"

#if MNIST_TRAIN_NUM_INPUTS != 2 || MNIST_TRAIN_NUM_OUTPUTS != 2
#error "aot_train wants a step from (u8 images, u8 labels) to (loss, correct count)"
#endif

static const int64_t kImagesShape[] = MNIST_TRAIN_INPUT0_SHAPE;

int main(int argc, char** argv) {
  const long n = 60000, pixels = 28 * 28;
  const long batch = (long)kImagesShape[0], steps = n / batch;
  unsigned char *images, *labels;
  mnist_train_model* model;
  int epochs, epoch;
  long s;

  if (argc != 4 || (epochs = atoi(argv[2])) <= 0) {
    fprintf(stderr, "usage: %s FASHION_MNIST_DIR EPOCHS WEIGHTS_OUT\n", argv[0]);
    return 2;
  }
  images = read_idx(argv[1], "train-images-idx3-ubyte.gz", 16, n * pixels);
  labels = read_idx(argv[1], "train-labels-idx1-ubyte.gz", 8, n);
  if (images == NULL || labels == NULL) return 1;

  model = mnist_train_create();
  if (model == NULL) {
    fprintf(stderr, "mnist_train_create: %s\n", mnist_train_last_error(NULL));
    return 1;
  }
  for (epoch = 0; epoch < epochs; ++epoch) {
    double loss_sum = 0, correct_sum = 0, seconds;
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (s = 0; s < steps; ++s) {
      float loss, correct;
      if (mnist_train_run(model, images + s * batch * pixels, labels + s * batch, &loss,
                          &correct) != 0) {
        fprintf(stderr, "mnist_train_run: %s\n", mnist_train_last_error(model));
        return 1;
      }
      loss_sum += loss;
      correct_sum += correct;
    }
    clock_gettime(CLOCK_MONOTONIC, &end);
    seconds = (double)(end.tv_sec - start.tv_sec) + 1e-9 * (double)(end.tv_nsec - start.tv_nsec);
    printf("epoch %d: loss %.4f, accuracy %.4f, %.2f s\n", epoch + 1, loss_sum / (double)steps,
           correct_sum / (double)(steps * batch), seconds);
  }
  if (mnist_train_save_weights(model, argv[3]) != 0) {
    fprintf(stderr, "mnist_train_save_weights: %s\n", mnist_train_last_error(model));
    return 1;
  }
  printf("wrote %s\n", argv[3]);
  mnist_train_destroy(model);
  free(images);
  free(labels);
  return 0;
}
