"""The pure-Python twin's parts, file for file beside the kernel's
(``fasttape/_kernel/``): sweeps, recorder, layout and var; ``fasttape/twin.py``
holds its Program, as ``fasttape/_core.pyx`` holds the kernel's.
"""
