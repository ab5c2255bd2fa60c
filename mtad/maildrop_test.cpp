// placeholder, filled below
#include <catch2/catch.hpp>
