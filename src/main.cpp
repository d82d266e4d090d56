// The llama-lora binary: parses the command line and runs one subcommand.
#include "app/cli.h"

int main(int argc, char** argv) { return ll::run_cli(argc, argv); }
