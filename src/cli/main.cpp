// webmon: the admin CLI (migrate, stats). The logic lives in cli.cpp and stats.cpp.
#include <iostream>

#include "cli.hpp"

int main(int argc, char** argv) { return webmon::cli::run(argc, argv, std::cout, std::cerr); }
