"""Training: the loop, its callbacks, and running one recorded run."""
