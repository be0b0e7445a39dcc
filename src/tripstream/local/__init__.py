"""Running tripstream on a laptop: the embedded AWS emulator and the local Lambda runtime."""
