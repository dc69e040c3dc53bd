"""vlmr1"""
