"""The embedded AWS emulator: moto server in its own process (patched in moto_patches/), DynamoDB Local and its
install, and the launcher that starts, awaits and stops their child processes."""
