// game.h: the plugin host of the embedding example (game.cc).
#pragma once

// Runs the game loop over its plugins, printing what happens; 0 when everything behaved
// as expected.
int runGame();
