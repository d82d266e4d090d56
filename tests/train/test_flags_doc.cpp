// docs/FLAGS.md is training_flags_markdown(), the flag table written out: this fails when the
// committed file differs (after a flag, default, note or status changed), and every option
// `llama-lora train` parses must appear in it. LL_WRITE_FLAGS_DOC=1 rewrites the file instead
// (then review and commit it).
#include <gtest/gtest.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <string>

#include "core/file.h"
#include "test_util.h"
#include "train/training_args.h"
#include "train/training_fields.h"

namespace ll {
namespace {

fs::path flags_doc() {
  return test::fixtures().parent_path().parent_path() / "docs" / "FLAGS.md";  // tests/fixtures
}

TEST(FlagsDoc, CommittedFileIsUpToDate) {
  const std::string expected = training_flags_markdown();
  if (const char* write = std::getenv("LL_WRITE_FLAGS_DOC"); write && std::string(write) == "1") {
    write_file_atomic(flags_doc(), expected);
  }
  ASSERT_TRUE(fs::exists(flags_doc())) << flags_doc();
  EXPECT_TRUE(read_file(flags_doc()) == expected)
      << flags_doc().string()
      << " is out of date with src/train/training_fields.cpp: rewrite it with "
         "LL_WRITE_FLAGS_DOC=1 build/release/tests/test_train --gtest_filter='FlagsDoc.*'";
}

TEST(FlagsDoc, ListsEveryOptionOfTrain) {
  CLI::App app{"test"};
  TrainingArgs args;
  add_training_flags(app, args);
  const std::string doc = training_flags_markdown();
  int options = 0;
  for (const CLI::Option* option : app.get_options()) {
    for (const std::string& name : option->get_lnames()) {
      if (name == "help") continue;
      ++options;
      EXPECT_NE(doc.find("`--" + name + "`"), std::string::npos) << "--" << name;
    }
  }
  EXPECT_GT(options, 50);
}

// CLI11's --help does not list a text flag's values, so its help text must.
TEST(FlagsDoc, HelpNamesEveryValueOfAListedFlag) {
  for (const Field& field : training_fields()) {
    for (const std::string_view choice : field.choices) {
      EXPECT_NE(field.help.find(choice), std::string_view::npos) << field.name << ": " << choice;
    }
  }
}

}  // namespace
}  // namespace ll
