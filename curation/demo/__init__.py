"""The demo and testbed kit the product runs: fixture datasets in the real formats, the demo's inputs, tiny
random-weight models, the learnable shapes testbed. Built offline, never downloaded."""
