// The progress display (train/metrics.h Progress) as a person sees it: driven through a
// pseudo-terminal, its bytes interpreted into the screen a terminal would show; plain lines
// when the output is a pipe.
#include <fcntl.h>
#include <pty.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "train/metrics.h"

namespace ll {
namespace {

// The rows a terminal `columns` wide shows after `bytes`: printable characters go at the
// cursor (the next row once a row is full), \r returns to column 0, \n moves down a row,
// ESC [ K erases from the cursor to the row's end. Anything else fails the test: the progress
// must not emit what this interpreter does not know.
std::vector<std::string> screen_after(std::string_view bytes, size_t columns) {
  std::vector<std::string> rows(1);
  size_t row = 0, col = 0;
  for (size_t i = 0; i < bytes.size(); ++i) {
    const char c = bytes[i];
    if (c == '\r') {
      col = 0;
    } else if (c == '\n') {
      if (++row == rows.size()) rows.emplace_back();
    } else if (c == '\033') {
      EXPECT_EQ(bytes.substr(i, 3), "\033[K") << "unknown escape sequence at byte " << i;
      if (rows[row].size() > col) rows[row].resize(col);
      i += 2;
    } else {
      EXPECT_TRUE(c >= 0x20 && c < 0x7f) << "control byte " << int(c) << " at byte " << i;
      if (col == columns) {
        col = 0;
        if (++row == rows.size()) rows.emplace_back();
      }
      if (rows[row].size() < col + 1) rows[row].resize(col + 1, ' ');
      rows[row][col++] = c;
    }
  }
  return rows;
}

// A pseudo-terminal `columns` wide: progress writes to `out`, the test reads what the
// terminal got from the master side.
class PseudoTerminal {
 public:
  explicit PseudoTerminal(unsigned short columns) {
    struct winsize size {};
    size.ws_row = 24;
    size.ws_col = columns;
    int slave = -1;
    if (openpty(&master_, &slave, nullptr, nullptr, &size) != 0) {
      ADD_FAILURE() << "openpty: " << std::strerror(errno);
      return;
    }
    out = fdopen(slave, "w");
  }
  ~PseudoTerminal() {
    if (out) std::fclose(out);
    if (master_ >= 0) close(master_);
  }
  PseudoTerminal(const PseudoTerminal&) = delete;
  PseudoTerminal& operator=(const PseudoTerminal&) = delete;

  // Closes the terminal's writing side and returns every byte it received.
  std::string received() {
    std::fclose(out);
    out = nullptr;
    std::string bytes;
    char buffer[4096];
    for (;;) {
      const ssize_t n = read(master_, buffer, sizeof buffer);
      if (n <= 0) break;  // EIO once the slave side is closed and drained
      bytes.append(buffer, static_cast<size_t>(n));
    }
    return bytes;
  }

  std::FILE* out = nullptr;

 private:
  int master_ = -1;
};

ProgressFigures figures_at(int64_t step) {
  ProgressFigures f;
  f.step = step;
  f.total = 4;
  f.loss = 3.0 - 0.5 * static_cast<double>(step);
  f.learning_rate = 0.001;
  f.tokens_per_s = 1234;
  f.eta_s = static_cast<double>(4 - step) * 5;
  f.memory_bytes = 1 << 20;
  return f;
}

// Four steps, logged at 2 and 4, an evaluation message after step 2, then the end.
void run_four_steps(Progress& progress) {
  progress.on_step(figures_at(1), StepLogged::No);
  progress.on_step(figures_at(2), StepLogged::Yes);
  progress.message("[train] step 2 eval_loss 1.9000");
  progress.on_step(figures_at(3), StepLogged::No);
  progress.on_step(figures_at(4), StepLogged::Yes);
  progress.finish();
}

TEST(ScreenAfter, InterpretsCarriageReturnEraseAndWrap) {
  EXPECT_EQ(screen_after("abcdef\rX\033[K", 80), std::vector<std::string>{"X"});
  EXPECT_EQ(screen_after("abc\r\nde", 80), (std::vector<std::string>{"abc", "de"}));
  EXPECT_EQ(screen_after("abcdefg", 3), (std::vector<std::string>{"abc", "def", "g"}));
}

TEST(Progress, FormatsEveryFigure) {
  EXPECT_EQ(format_progress(figures_at(2)),
            "2/4 loss 2.0000 lr 0.001 tok/s 1,234 ETA 10s mem 1.0 MiB");
}

TEST(Progress, OnATerminalOneLineIsRedrawnInPlaceAndMessagesStayAbove) {
  PseudoTerminal terminal(100);
  ASSERT_NE(terminal.out, nullptr);
  ASSERT_EQ(progress_style_for(terminal.out), ProgressStyle::Bar);
  Progress progress(progress_style_for(terminal.out), terminal.out);
  progress.message("[train] 8 sequences");
  run_four_steps(progress);
  const std::string bytes = terminal.received();
  // The pty turns each \n into \r\n (ONLCR), as a real terminal shows it.
  EXPECT_NE(bytes.find("\r\n"), std::string::npos);
  EXPECT_EQ(
      screen_after(bytes, 100),
      (std::vector<std::string>{
          "[train] 8 sequences", "[train] step 2 eval_loss 1.9000",
          "[########################] 4/4 loss 1.0000 lr 0.001 tok/s 1,234 ETA 0s mem 1.0 MiB",
          ""}));
}

TEST(Progress, OnANarrowTerminalTheBarIsCutSoThatItNeverWraps) {
  PseudoTerminal terminal(40);
  ASSERT_NE(terminal.out, nullptr);
  Progress progress(ProgressStyle::Bar, terminal.out);
  progress.on_step(figures_at(1), StepLogged::No);
  progress.on_step(figures_at(2), StepLogged::No);
  const std::string bytes = terminal.received();
  // One row of 39 columns: the second step drew over the first.
  EXPECT_EQ(screen_after(bytes, 40),
            std::vector<std::string>{"[############............] 2/4 loss 2.0"});
}

TEST(Progress, NotOnATerminalPlainLinesForLoggedStepsOnly) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  std::FILE* out = fdopen(fds[1], "w");
  ASSERT_NE(out, nullptr);
  ASSERT_EQ(progress_style_for(out), ProgressStyle::Lines);
  {
    Progress progress(progress_style_for(out), out);
    run_four_steps(progress);
  }
  std::fclose(out);
  std::string bytes;
  char buffer[4096];
  for (ssize_t n; (n = read(fds[0], buffer, sizeof buffer)) > 0;) bytes.append(buffer, n);
  close(fds[0]);
  EXPECT_EQ(bytes,
            "[train] step 2/4 loss 2.0000 lr 0.001 tok/s 1,234 ETA 10s mem 1.0 MiB\n"
            "[train] step 2 eval_loss 1.9000\n"
            "[train] step 4/4 loss 1.0000 lr 0.001 tok/s 1,234 ETA 0s mem 1.0 MiB\n");
}

TEST(Progress, QuietWritesNothing) {
  PseudoTerminal terminal(80);
  ASSERT_NE(terminal.out, nullptr);
  Progress progress(ProgressStyle::Quiet, terminal.out);
  progress.on_step(figures_at(1), StepLogged::Yes);
  progress.message("[train] hidden");
  progress.finish();
  EXPECT_EQ(terminal.received(), "");
}

}  // namespace
}  // namespace ll
