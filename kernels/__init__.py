"""Kernel implementations under test (Triton, CUDA C++, W4A16)."""
