# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, nonecheck=False
# The same kernel as _core, compiled for x86-64 CPUs with AVX-512 (see setup.py):
# lane loops run eight doubles wide. The backend picks it where the CPU has it.
include "_core.pyx"
