"""Test and demo helpers: format-exact fixture datasets with planted defects, and the demo's inputs."""
