// fit's progress display (frontend/keras/progbar.h): the exact text on a terminal and elsewhere,
// the throttling of redraws, and the one-line-per-epoch output of fit itself.
#include <catch2/catch.hpp>

#include <kiln/kiln.h>

#include <iostream>
#include <regex>
#include <sstream>

#include "model_test_util.h"

namespace k = kiln;

namespace {

// A clock the test moves by hand.
struct FakeClock {
  double now = 0;
  k::Progbar::Clock fn() {
    return [this] { return now; };
  }
};

// Captures std::cout while it lives.
struct CoutCapture {
  std::ostringstream text;
  std::streambuf* previous = std::cout.rdbuf(text.rdbuf());
  ~CoutCapture() { std::cout.rdbuf(previous); }
};

const std::string kErase = "\x1b[K";

}  // namespace

TEST_CASE("Progbar on a terminal redraws one line in place, at most every 0.1 s", "[progbar]") {
  std::ostringstream out;
  FakeClock clock;
  k::Progbar bar(4, 1, "Epoch 1/2", out, clock.fn(), /*terminal=*/true);
  CHECK(out.str() == "Epoch 1/2\n");
  out.str("");

  clock.now = 1.0;
  bar.update(1, {{"loss", 0.5}});
  CHECK(out.str() ==
        "\r1/4 [======>.......................] - ETA: 3s - 1s/step - loss: 0.5000" + kErase);
  out.str("");

  clock.now = 1.0625;  // 62.5 ms after the last redraw: skipped
  bar.update(2, {{"loss", 0.4}});
  CHECK(out.str().empty());

  // Steps after the first are timed from its end: (1.75 - 1.0) / 2 = 375 ms a step.
  clock.now = 1.75;
  bar.update(3, {{"loss", 0.3}});
  CHECK(out.str() ==
        "\r3/4 [=====================>........] - ETA: 0s - 375ms/step - loss: 0.3000" + kErase);
  out.str("");

  clock.now = 1.8125;  // throttled again
  bar.update(4, {{"loss", 0.25}});
  CHECK(out.str().empty());

  // The end is always drawn, with the epoch's time, the time per step up to the last step
  // ((1.8125 - 1.0) / 3 = 271 ms; validation after it does not count) and a newline.
  clock.now = 2.0;
  bar.update(4, {{"loss", 0.25}, {"val_loss", 0.0005}}, /*finalize=*/true);
  CHECK(out.str() ==
        "\r4/4 [==============================] - 2s 271ms/step - loss: 0.2500 - "
        "val_loss: 5.0000e-04" +
            kErase + "\n");
}

TEST_CASE("Progbar pads the step count and shows an unknown target as Unknown", "[progbar]") {
  std::ostringstream out;
  FakeClock clock;
  k::Progbar bar(std::nullopt, 1, "", out, clock.fn(), true);
  CHECK(out.str().empty());  // no prefix, no header line
  clock.now = 1;
  bar.update(1, {{"loss", 2.0}});
  CHECK(out.str() == "\r1/Unknown - 1s 1s/step - loss: 2.0000" + kErase);
  out.str("");
  clock.now = 2;
  bar.update(2, {{"loss", 1.0}});
  out.str("");
  bar.update(2, {{"loss", 1.0}}, true);
  CHECK(out.str() ==
        "\r2/2 [==============================] - 2s 1s/step - loss: 1.0000" + kErase + "\n");

  std::ostringstream wide;
  k::Progbar big(1875, 1, "", wide, clock.fn(), true);
  big.update(12, {});
  CHECK(wide.str().rfind("\r  12/1875 [..............................] - ETA: ", 0) == 0);
}

TEST_CASE("Progbar elsewhere, or with verbose 2, prints one line per epoch; verbose 0 nothing",
          "[progbar]") {
  FakeClock clock;
  for (auto [verbose, terminal] : {std::pair{1, false}, std::pair{2, true}, std::pair{2, false}}) {
    std::ostringstream out;
    clock.now = 0;
    k::Progbar bar(4, verbose, "Epoch 3/5", out, clock.fn(), terminal);
    for (int step = 1; step <= 4; ++step) {
      clock.now = 0.5 + 0.5 * step;  // steps 2..4 take 500 ms each
      bar.update(step, {{"loss", 0.5}, {"accuracy", 0.75}});
    }
    CHECK(out.str().empty());
    clock.now = 3.5;
    bar.update(4, {{"loss", 0.5}, {"accuracy", 0.75}, {"val_loss", 0.625}}, true);
    CHECK(out.str() ==
          "Epoch 3/5 - 4/4 - 4s - 500ms/step - loss: 0.5000 - accuracy: 0.7500 - "
          "val_loss: 0.6250\n");
  }
  std::ostringstream silent;
  k::Progbar quiet(4, 0, "Epoch 1/1", silent, clock.fn(), true);
  quiet.update(1, {{"loss", 1.0}});
  quiet.update(4, {{"loss", 1.0}}, true);
  CHECK(silent.str().empty());
}

TEST_CASE("Progbar formats durations as Keras does", "[progbar]") {
  CHECK(k::detail::format_eta(5.9) == "5s");
  CHECK(k::detail::format_eta(65) == "1:05");
  CHECK(k::detail::format_eta(3725) == "1:02:05");
  CHECK(k::detail::format_per_step(3.0) == "3s/step");
  CHECK(k::detail::format_per_step(0.002) == "2ms/step");
  CHECK(k::detail::format_per_step(2e-5) == "20us/step");
  CHECK(k::detail::format_values({{"loss", 0.25}, {"tiny", 0.0}}) ==
        " - loss: 0.2500 - tiny: 0.0000e+00");
}

TEST_CASE("fit with verbose 2 prints one line per epoch with the epoch, steps, time and logs",
          "[progbar][model]") {
  auto [x, y] = k::testing::blobs(20, 3);
  k::Sequential model({k::layers::Dense(3, "softmax", k::Shape{2})});
  model.compile("sgd", "sparse_categorical_crossentropy", {"accuracy"});
  std::string text;
  {
    CoutCapture capture;
    model.fit(x, y, {.epochs = 2, .batch_size = 16, .validation_split = 0.2, .verbose = 2});
    text = capture.text.str();
  }
  INFO(text);
  // 48 training samples in batches of 16: 3 steps.
  std::regex line(
      "Epoch (1|2)/2 - 3/3 - [0-9]+s - [0-9]+(us|ms|s)/step - loss: [0-9.]+ - accuracy: [0-9.]+ - "
      "val_loss: [0-9.]+ - val_accuracy: [0-9.]+\n");
  auto begin = std::sregex_iterator(text.begin(), text.end(), line);
  CHECK(std::distance(begin, std::sregex_iterator()) == 2);
  CHECK(text.find('\r') == std::string::npos);
  CHECK(std::count(text.begin(), text.end(), '\n') == 2);

  CoutCapture silent;
  model.fit(x, y, {.epochs = 1, .verbose = 0});
  CHECK(silent.text.str().empty());
}
