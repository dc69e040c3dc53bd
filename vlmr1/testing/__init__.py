"""Test and demo helpers: tiny offline models and the references the fast code is checked against."""
