"""The kernel's parts, included by ``fasttape/_core.pyx`` (which the build
compiles): the sweeps, the recorder, call layouts, the C half of ``ft.Var``,
dot blocks and their register tiles, vectorizable elementary functions, and
``codegen.py``, which writes ``ops.pxi`` from the op and kind tables. The
twin's parts mirror them file for file in ``fasttape/_twin/``.
"""
